/* proc.h - reading other processes under /proc: their files and the CPU time they used */
#ifndef AEI_CLI_PROC_H
#define AEI_CLI_PROC_H

#include <stddef.h>
#include <stdint.h>

/*
 * Reads up to cap - 1 bytes of the file at `path` (under /proc: such files have no size) into
 * `buf`, NUL-terminated. Returns the length, or AEI_ENOTFOUND when it cannot be opened.
 */
int proc_read_file(const char *path, char *buf, size_t cap);

/*
 * Returns, from the text of a /proc/PID/stat file, the clock ticks the process spent in user and
 * system mode (utime + stime) and those of its children it has waited for (cutime + cstime), or
 * AEI_EINVAL when the text is not such a file. The process name may hold spaces and ')'.
 */
int proc_parse_stat_ticks(const char *text, size_t len, uint64_t *ticks);

/* Returns the CPU time (user and system, in seconds) this process has used so far. */
double proc_own_cpu_s(void);

/*
 * Sets *secs to the CPU time used by process `pid`, all its threads and its descendants alive
 * now, plus the children each of them has waited for: the difference of two readings is the CPU
 * the whole process tree used in between (a PostgreSQL server's, from its postmaster's pid).
 * *nprocs (optional) gets the number of processes read. Returns 0, or AEI_ENOTFOUND when `pid`
 * itself is gone or cannot be read.
 */
int proc_cpu_tree(int pid, double *secs, unsigned *nprocs);

#endif
