/* test_rss.c - resident memory samples: reading VmRSS and the least-squares trend */
#include "cli/rss.h"

#include "aei/error.h"

#include <criterion/criterion.h>

#include <string.h>
#include <unistd.h>

Test(rss, parse_status)
{
    const char *s = "Name:\taeid\nVmPeak:\t  200000 kB\nVmRSS:\t   12345 kB\nRssAnon:\t 1 kB\n";
    uint64_t kib = 0;
    cr_assert_eq(rss_parse_status(s, strlen(s), &kib), 0);
    cr_assert_eq(kib, 12345);
    /* Only a line that starts with VmRSS. */
    const char *other = "XVmRSS:\t 5 kB\nVmRSS: 7 kB\n";
    cr_assert_eq(rss_parse_status(other, strlen(other), &kib), 0);
    cr_assert_eq(kib, 7);
    const char *none = "Name:\tkthreadd\nState:\tS (sleeping)\n";
    cr_assert_eq(rss_parse_status(none, strlen(none), &kib), AEI_EINVAL);
    const char *bad = "VmRSS:\t kB\n";
    cr_assert_eq(rss_parse_status(bad, strlen(bad), &kib), AEI_EINVAL);
    const char *cut = "VmRSS:\t 123";
    cr_assert_eq(rss_parse_status(cut, strlen(cut), &kib), AEI_EINVAL);
}

Test(rss, read_own_process)
{
    uint64_t kib = 0;
    cr_assert_eq(rss_read(getpid(), &kib), 0);
    cr_assert_gt(kib, 0);
    cr_assert_eq(rss_read(0x3FFFFFFF, &kib), AEI_ENOTFOUND);
}

Test(rss, slope_of_a_line_is_exact)
{
    struct rss_sample v[61];
    /* 100 KiB/min = 100/60 KiB/s, sampled every 10 s for 10 minutes. */
    for (int i = 0; i <= 60; i++)
        v[i] = (struct rss_sample){i * 10.0, (uint64_t)(50000 + i * 10 * 100 / 60.0 + 0.5)};
    cr_assert_float_eq(rss_slope_kib_per_min(v, 61), 100.0, 0.1);
    for (int i = 0; i <= 60; i++)
        v[i].kib = 80000;
    cr_assert_float_eq(rss_slope_kib_per_min(v, 61), 0.0, 1e-9);
}

Test(rss, slope_fits_noise_and_decline)
{
    /* +-1000 KiB in a +,-,-,+ pattern (uncorrelated with time) around a decline of 30 KiB/min:
     * the fit sees through the noise. */
    struct rss_sample v[200];
    for (int i = 0; i < 200; i++) {
        int k = i % 4;
        double noise = k == 0 || k == 3 ? 1000 : -1000;
        v[i] = (struct rss_sample){i * 1.0, (uint64_t)(100000 - i * 0.5 + noise)};
    }
    cr_assert_float_eq(rss_slope_kib_per_min(v, 200), -30.0, 1.0);
}

Test(rss, slope_degenerate)
{
    struct rss_sample one = {0, 5};
    cr_assert_eq(rss_slope_kib_per_min(&one, 1), 0);
    cr_assert_eq(rss_slope_kib_per_min(NULL, 0), 0);
    struct rss_sample same[2] = {{3, 5}, {3, 50}};
    cr_assert_eq(rss_slope_kib_per_min(same, 2), 0);
}

Test(rss, series_and_summary)
{
    struct rss_series s = {0};
    for (int i = -2; i <= 200; i++)
        cr_assert_eq(rss_add(&s, i, (uint64_t)(1000 + (i == 50 ? 500 : i))), 0);
    struct rss_summary r;
    rss_summarize(&s, 0, 100, &r);
    cr_assert_eq(r.n, 101);
    cr_assert_eq(r.start, 1000);
    cr_assert_eq(r.end, 1100);
    cr_assert_eq(r.max, 1500);
    cr_assert_eq(r.min, 1000);
    rss_summarize(&s, 40, 160, &r);
    cr_assert_eq(r.n, 121);
    cr_assert_float_eq(r.slope_late_kib_per_min, 60.0, 1e-6); /* 1 KiB/s from t = 100 on */
    rss_summarize(&s, 500, 600, &r);
    cr_assert_eq(r.n, 0);
    rss_series_free(&s);
    cr_assert_eq(s.n, 0);
    rss_series_free(&s);
}
