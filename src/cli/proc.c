/* proc.c - reading other processes under /proc: their files and the CPU time they used */
#include "cli/proc.h"

#include "aei/error.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* A process tree larger than this is read in part: far more than a server under test has. */
#define TREE_MAX 4096

int proc_read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return AEI_ENOTFOUND;
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return (int)len;
}

int proc_parse_stat_ticks(const char *text, size_t len, uint64_t *ticks)
{
    /* "PID (NAME) STATE PPID ...": fields counted from STATE, which is field 3; utime, stime,
     * cutime and cstime are fields 14 to 17. NAME ends at the last ')'. */
    size_t p = len;
    while (p > 0 && text[p - 1] != ')')
        p--;
    if (p == 0)
        return AEI_EINVAL;
    uint64_t sum = 0;
    for (int field = 3; field <= 17; field++) {
        if (p >= len || text[p] != ' ')
            return AEI_EINVAL;
        p++;
        size_t start = p;
        uint64_t v = 0;
        if (field < 14) { /* state, pids, flags, faults: skipped */
            while (p < len && text[p] != ' ')
                p++;
        } else {
            while (p < len && text[p] >= '0' && text[p] <= '9' && p - start < 19)
                v = v * 10 + (uint64_t)(text[p++] - '0');
        }
        if (p == start || (p < len && text[p] != ' ' && text[p] != '\n'))
            return AEI_EINVAL;
        if (field >= 14)
            sum += v;
    }
    *ticks = sum;
    return 0;
}

double proc_own_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Appends the pids listed in /proc/PID/task/TID/children of every thread of `pid`. */
static void add_children(int pid, int *pids, unsigned *n)
{
    char path[64], buf[65536];
    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) && *n < TREE_MAX) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char cpath[300];
        snprintf(cpath, sizeof(cpath), "/proc/%d/task/%s/children", pid, e->d_name);
        if (proc_read_file(cpath, buf, sizeof(buf)) <= 0)
            continue;
        for (char *s = buf, *end; *n < TREE_MAX; s = end) {
            long child = strtol(s, &end, 10);
            if (end == s)
                break;
            if (child > 0)
                pids[(*n)++] = (int)child;
        }
    }
    closedir(d);
}

int proc_cpu_tree(int pid, double *secs, unsigned *nprocs)
{
    int *pids = malloc(TREE_MAX * sizeof(*pids));
    if (!pids)
        return AEI_ENOMEM;
    long hz = sysconf(_SC_CLK_TCK);
    uint64_t ticks = 0;
    unsigned n = 0, read = 0;
    pids[n++] = pid;
    /* Breadth first: pids[] is both the queue and the list of the tree's processes. */
    for (unsigned i = 0; i < n; i++) {
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/stat", pids[i]);
        int len = proc_read_file(path, buf, sizeof(buf));
        uint64_t t;
        if (len < 0 || proc_parse_stat_ticks(buf, (size_t)len, &t) < 0) {
            if (i == 0)
                break;
            continue; /* a descendant that exited meanwhile */
        }
        ticks += t;
        read++;
        add_children(pids[i], pids, &n);
    }
    free(pids);
    if (!read)
        return AEI_ENOTFOUND;
    *secs = (double)ticks / (double)(hz > 0 ? hz : 100);
    if (nprocs)
        *nprocs = read;
    return 0;
}
