/* test_hist.c - log-linear latency histogram: bucketing, error bound, percentiles */
#include "cli/hist.h"

#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

/* The bound hist.h documents: a bucket is at most 1/128 of its lower bound wide and reports its
 * midpoint, so a value is off by at most 1/256 of itself (under 0.4%). */
static bool within_bound(uint64_t got, uint64_t exact)
{
    uint64_t diff = got > exact ? got - exact : exact - got;
    return diff * 256 <= exact;
}

/* xorshift64*: deterministic data without libc's rand(). */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static struct hist *hist_new(void)
{
    struct hist *h = malloc(sizeof(*h));
    cr_assert_not_null(h);
    hist_init(h);
    return h;
}

static struct hist_snap *snap_of(const struct hist *h)
{
    struct hist_snap *s = malloc(sizeof(*s));
    cr_assert_not_null(s);
    hist_snap_init(s);
    hist_snap_add(s, h);
    return s;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted `v` (n values) at `pm` parts per million, in integers. */
static uint64_t exact_percentile(const uint64_t *v, size_t n, uint64_t pm)
{
    uint64_t rank = (pm * n + 999999) / 1000000;
    if (rank < 1)
        rank = 1;
    return v[rank - 1];
}

/* Percentiles checked everywhere, in parts per million (so that the exact rank needs no floats). */
static const uint64_t PERCENTILES_PM[] = {0,      10000,  100000, 250000, 500000, 750000,
                                          900000, 950000, 990000, 999000, 999900, 1000000};

/* Records `v` into a fresh histogram and checks every percentile against the exact one. */
static void check_percentiles(const uint64_t *v, size_t n, bool exact)
{
    struct hist *h = hist_new();
    uint64_t *sorted = malloc(n * sizeof(*sorted));
    cr_assert_not_null(sorted);
    uint64_t sum = 0, max = 0;
    for (size_t i = 0; i < n; i++) {
        hist_record(h, v[i]);
        sorted[i] = v[i];
        sum += v[i];
        if (v[i] > max)
            max = v[i];
    }
    qsort(sorted, n, sizeof(*sorted), cmp_u64);
    struct hist_snap *s = snap_of(h);
    cr_assert_eq(s->total, n);
    cr_assert_eq(s->sum, sum);
    cr_assert_eq(s->max, max, "max is kept exactly");
    for (size_t i = 0; i < sizeof(PERCENTILES_PM) / sizeof(PERCENTILES_PM[0]); i++) {
        uint64_t pm = PERCENTILES_PM[i];
        uint64_t want = exact_percentile(sorted, n, pm);
        uint64_t got = hist_percentile(s, (double)pm / 10000.0);
        if (exact)
            cr_assert_eq(got, want, "p%g of %zu values: got %llu, exact %llu", (double)pm / 10000.0,
                         n, (unsigned long long)got, (unsigned long long)want);
        else
            cr_assert(within_bound(got, want),
                      "p%g of %zu values: got %llu, exact %llu (over 1/256)", (double)pm / 10000.0,
                      n, (unsigned long long)got, (unsigned long long)want);
        cr_assert_leq(got, max, "p%g never exceeds the largest value", (double)pm / 10000.0);
    }
    free(s);
    free(sorted);
    free(h);
}

Test(hist, empty_histogram_reports_zero)
{
    struct hist *h = hist_new();
    struct hist_snap *s = snap_of(h);
    cr_assert_eq(s->total, 0);
    cr_assert_eq(s->sum, 0);
    cr_assert_eq(s->max, 0);
    for (double p = -10; p <= 110; p += 10)
        cr_assert_eq(hist_percentile(s, p), 0, "p%g of an empty histogram", p);
    cr_assert_eq(hist_percentile(s, 99.9), 0);

    struct hist_snap *fresh = malloc(sizeof(*fresh));
    cr_assert_not_null(fresh);
    memset(fresh, 0xa5, sizeof(*fresh));
    hist_snap_init(fresh);
    cr_assert_eq(fresh->total, 0);
    cr_assert_eq(hist_percentile(fresh, 50), 0);
    free(fresh);
    free(s);
    free(h);
}

Test(hist, small_values_are_exact)
{
    /* Below 2 * HIST_SUB every bucket is one nanosecond wide. */
    for (uint64_t ns = 0; ns < 2 * HIST_SUB; ns++) {
        cr_assert_eq(hist_index(ns), ns);
        cr_assert_eq(hist_value(hist_index(ns)), ns);
    }
    uint64_t v[2 * HIST_SUB];
    for (size_t i = 0; i < 2 * HIST_SUB; i++)
        v[i] = (i * 37) % (2 * HIST_SUB); /* every value once, out of order */
    check_percentiles(v, 2 * HIST_SUB, true);
}

Test(hist, buckets_are_ordered_and_round_trip)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        uint64_t mid = hist_value(i);
        cr_assert_eq(hist_index(mid), i, "the midpoint of bucket %u lands in it", i);
        if (i > 0)
            cr_assert_gt(mid, hist_value(i - 1), "bucket %u after bucket %u", i, i - 1);
    }
}

Test(hist, every_value_is_within_the_documented_bound)
{
    /* Exhaustively up to 2^20 ns, then around every power of two and at random up to 2^41 ns. */
    for (uint64_t ns = 0; ns < (1u << 20); ns++)
        cr_assert(within_bound(hist_value(hist_index(ns)), ns), "%llu ns -> %llu",
                  (unsigned long long)ns, (unsigned long long)hist_value(hist_index(ns)));
    for (unsigned b = 1; b < 41; b++) {
        uint64_t p = (uint64_t)1 << b;
        uint64_t around[] = {p - 1, p, p + 1, p + p / 2, 2 * p - 1};
        for (size_t k = 0; k < sizeof(around) / sizeof(around[0]); k++) {
            uint64_t ns = around[k];
            cr_assert(within_bound(hist_value(hist_index(ns)), ns), "%llu ns -> %llu",
                      (unsigned long long)ns, (unsigned long long)hist_value(hist_index(ns)));
        }
    }
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < 1000000; i++) {
        uint64_t ns = rng_next(&seed) >> 23; /* below 2^41 */
        cr_assert(within_bound(hist_value(hist_index(ns)), ns), "%llu ns -> %llu",
                  (unsigned long long)ns, (unsigned long long)hist_value(hist_index(ns)));
    }
}

Test(hist, values_past_the_range_land_in_the_last_bucket)
{
    uint64_t top = (uint64_t)1 << 41;
    cr_assert_eq(hist_index(top - 1), HIST_BUCKETS - 1, "2^41 - 1 ns is the last kept value");
    cr_assert(within_bound(hist_value(hist_index(top - 1)), top - 1));
    cr_assert_eq(hist_index(top), HIST_BUCKETS - 1);
    cr_assert_eq(hist_index(UINT64_MAX), HIST_BUCKETS - 1);

    struct hist *h = hist_new();
    hist_record(h, UINT64_MAX);
    struct hist_snap *s = snap_of(h);
    cr_assert_eq(s->total, 1);
    cr_assert_eq(s->max, UINT64_MAX, "max stays exact past the range");
    cr_assert_eq(hist_percentile(s, 50), hist_value(HIST_BUCKETS - 1));
    free(s);
    free(h);
}

Test(hist, percentiles_of_log_uniform_latencies)
{
    /* 1 us to about 17 s, spread evenly over the powers of two as real latencies are. */
    enum { N = 100000 };
    uint64_t *v = malloc(N * sizeof(*v));
    cr_assert_not_null(v);
    uint64_t seed = 42;
    for (size_t i = 0; i < N; i++) {
        unsigned b = 10 + (unsigned)(rng_next(&seed) % 24);
        uint64_t lo = (uint64_t)1 << b;
        v[i] = lo + rng_next(&seed) % lo;
    }
    check_percentiles(v, N, false);
    /* Fewer values than percentile steps: ranks round up. */
    for (size_t n = 1; n <= 7; n++)
        check_percentiles(v, n, false);
    free(v);
}

Test(hist, percentiles_of_a_step_pick_the_right_side)
{
    /* 990 fast requests (1 us) and 10 slow ones (5 ms): p99 is fast, anything above it is slow. */
    enum { N = 1000 };
    uint64_t v[N];
    for (size_t i = 0; i < N; i++)
        v[i] = i % 100 == 7 ? 5000000 : 1000;
    check_percentiles(v, N, false);
    struct hist *h = hist_new();
    for (size_t i = 0; i < N; i++)
        hist_record(h, v[i]);
    struct hist_snap *s = snap_of(h);
    cr_assert(within_bound(hist_percentile(s, 50), 1000));
    cr_assert(within_bound(hist_percentile(s, 99), 1000), "p99 = %llu",
              (unsigned long long)hist_percentile(s, 99));
    cr_assert(within_bound(hist_percentile(s, 99.1), 5000000), "p99.1 = %llu",
              (unsigned long long)hist_percentile(s, 99.1));
    cr_assert(within_bound(hist_percentile(s, 99.9), 5000000));
    cr_assert(within_bound(hist_percentile(s, 100), 5000000));
    free(s);
    free(h);
}

Test(hist, a_single_value_is_reported_exactly_or_within_bound)
{
    uint64_t values[] = {0, 1, 127, 128, 255, 256, 1000, 1003, 123456789, 999999999999ULL};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        struct hist *h = hist_new();
        hist_record(h, values[i]);
        struct hist_snap *s = snap_of(h);
        cr_assert_eq(s->max, values[i]);
        uint64_t p100 = hist_percentile(s, 100);
        cr_assert_leq(p100, values[i], "p100 of {%llu} is not above the value",
                      (unsigned long long)values[i]);
        cr_assert(within_bound(p100, values[i]));
        cr_assert_eq(hist_percentile(s, 0), p100, "one value: every percentile is the same");
        free(s);
        free(h);
    }
}

Test(hist, out_of_range_percentiles_are_clamped)
{
    struct hist *h = hist_new();
    for (uint64_t ns = 100; ns <= 200; ns++)
        hist_record(h, ns);
    struct hist_snap *s = snap_of(h);
    cr_assert_eq(hist_percentile(s, -1), 100);
    cr_assert_eq(hist_percentile(s, 0), 100);
    cr_assert_eq(hist_percentile(s, 100), 200);
    cr_assert_eq(hist_percentile(s, 1000), 200);
    free(s);
    free(h);
}

Test(hist, snapshots_merge_histograms)
{
    struct hist *a = hist_new(), *b = hist_new(), *all = hist_new();
    uint64_t seed = 7;
    for (int i = 0; i < 5000; i++) {
        uint64_t ns = rng_next(&seed) % 50000000;
        hist_record(i % 3 ? a : b, ns);
        hist_record(all, ns);
    }
    struct hist_snap *merged = snap_of(a);
    hist_snap_add(merged, b);
    struct hist_snap *one = snap_of(all);
    cr_assert_eq(merged->total, 5000);
    cr_assert_eq(merged->total, one->total);
    cr_assert_eq(merged->sum, one->sum);
    cr_assert_eq(merged->max, one->max);
    cr_assert_eq(memcmp(merged->counts, one->counts, sizeof(one->counts)), 0);
    for (size_t i = 0; i < sizeof(PERCENTILES_PM) / sizeof(PERCENTILES_PM[0]); i++) {
        double p = (double)PERCENTILES_PM[i] / 10000.0;
        cr_assert_eq(hist_percentile(merged, p), hist_percentile(one, p), "p%g", p);
    }
    /* Adding the same histogram again doubles every count and keeps the max. */
    hist_snap_add(merged, a);
    hist_snap_add(merged, b);
    cr_assert_eq(merged->total, 10000);
    cr_assert_eq(merged->sum, 2 * one->sum);
    cr_assert_eq(merged->max, one->max);
    free(one);
    free(merged);
    free(all);
    free(b);
    free(a);
}
