/* test_proc.c - reading /proc: a stat line's CPU ticks, and the CPU time of a process tree */
#include "cli/proc.h"

#include "aei/error.h"

#include <criterion/criterion.h>

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char stat_line[] =
    "4242 (aeid) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 7 3 20 0 5 0 100 0 0\n";

Test(proc, stat_ticks_are_utime_stime_and_waited_children)
{
    uint64_t t = 0;
    cr_assert_eq(proc_parse_stat_ticks(stat_line, strlen(stat_line), &t), 0);
    cr_assert_eq(t, 250 + 50 + 7 + 3);
}

Test(proc, a_name_with_spaces_and_parentheses_is_skipped_whole)
{
    const char *s = "77 (a (b) c) R 1 77 77 0 -1 0 0 0 0 0 11 22 0 1 20 0 1 0 5 0 0\n";
    uint64_t t = 0;
    cr_assert_eq(proc_parse_stat_ticks(s, strlen(s), &t), 0);
    cr_assert_eq(t, 34);
}

Test(proc, text_that_is_not_a_stat_line_is_refused)
{
    const char *bad[] = {
        "",
        "no parenthesis at all",
        "1 (x)",                                        /* nothing after the name */
        "1 (x) S 1 1 1 0 -1 0 0 0 0 0 11 22",           /* cut before cutime */
        "1 (x) S 1 1 1 0 -1 0 0 0 0 0 11 abc 0 0 20",   /* not a number */
        "1 (x) S 1 1 1 0 -1 0 0 0 0 0 11 22 -5 0 20\n", /* negative children's time */
        "1 (x) S 1 1 1 0 -1 0 0 0 0 0 99999999999999999999 1 0 0 20\n", /* 20 digits */
        "1 (x)  S 1 1 1 0 -1 0 0 0 0 0 11 22 0 0 20\n",                 /* two spaces */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t t = 12345;
        cr_expect_eq(proc_parse_stat_ticks(bad[i], strlen(bad[i]), &t), AEI_EINVAL, "'%s'", bad[i]);
        cr_expect_eq(t, 12345, "'%s' changed the result", bad[i]);
    }
}

Test(proc, read_file_cuts_at_capacity_and_says_when_missing)
{
    char buf[8];
    int n = proc_read_file("/proc/self/stat", buf, sizeof(buf));
    cr_assert_eq(n, 7);
    cr_assert_eq(buf[7], '\0');
    cr_assert_eq(proc_read_file("/proc/self/no-such-file", buf, sizeof(buf)), AEI_ENOTFOUND);
}

static double spin(double secs)
{
    struct timespec a, b;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    volatile unsigned long x = 0;
    do {
        for (int i = 0; i < 100000; i++)
            x += (unsigned long)i;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    } while ((double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9 < secs);
    return (double)x;
}

/* A child that burns CPU counts while it runs, and (waited for) after it exits. */
Test(proc, the_tree_counts_live_children_and_waited_ones)
{
    double before;
    unsigned n = 0;
    cr_assert_eq(proc_cpu_tree(getpid(), &before, &n), 0);
    cr_assert_eq(n, 1);
    int go[2];
    cr_assert_eq(pipe(go), 0);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        spin(0.3);
        char c = 1;
        (void)!write(go[1], &c, 1);
        pause();
        _exit(0);
    }
    char c;
    cr_assert_eq(read(go[0], &c, 1), 1);
    double live;
    cr_assert_eq(proc_cpu_tree(getpid(), &live, &n), 0);
    cr_assert_eq(n, 2, "the child is part of the tree");
    cr_assert_geq(live - before, 0.25, "the live child's 0.3 s, got %.3f", live - before);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    double after;
    cr_assert_eq(proc_cpu_tree(getpid(), &after, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_geq(after - before, 0.25, "the waited child's time stays, got %.3f", after - before);
    close(go[0]);
    close(go[1]);
}

Test(proc, a_missing_process_is_not_found)
{
    double s = -1;
    cr_assert_eq(proc_cpu_tree(0x3FFFFFFF, &s, NULL), AEI_ENOTFOUND);
    cr_assert_eq(s, -1);
}

Test(proc, own_cpu_time_grows_with_the_work_done)
{
    double before = proc_own_cpu_s();
    spin(0.2);
    double after = proc_own_cpu_s();
    cr_assert_geq(after - before, 0.19, "0.2 s of spinning, got %.3f", after - before);
    cr_assert_lt(after - before, 5, "got %.3f", after - before);
}
