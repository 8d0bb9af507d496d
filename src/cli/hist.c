/* hist.c - log-linear latency histogram with bounded relative error */
#include "cli/hist.h"

#include <math.h>
#include <string.h>

void hist_init(struct hist *h)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        atomic_init(&h->counts[i], 0);
    atomic_init(&h->total, 0);
    atomic_init(&h->sum, 0);
    atomic_init(&h->max, 0);
}

unsigned hist_index(uint64_t ns)
{
    if (ns < HIST_SUB)
        return (unsigned)ns;
    unsigned msb = 63u - (unsigned)__builtin_clzll(ns);
    unsigned shift = msb - HIST_SUB_BITS + 1;
    if (shift > HIST_MAX_SHIFT)
        return HIST_BUCKETS - 1;
    /* Top HIST_SUB_BITS + 1 bits: a mantissa in [HIST_SUB, 2 * HIST_SUB). */
    unsigned mant = (unsigned)(ns >> (shift - 1));
    return shift * HIST_SUB + (mant - HIST_SUB);
}

uint64_t hist_value(unsigned i)
{
    if (i < HIST_SUB)
        return i;
    unsigned shift = i / HIST_SUB;
    uint64_t mant = HIST_SUB + i % HIST_SUB;
    uint64_t lo = mant << (shift - 1);
    uint64_t width = (uint64_t)1 << (shift - 1);
    return lo + width / 2;
}

void hist_record(struct hist *h, uint64_t ns)
{
    atomic_fetch_add_explicit(&h->counts[hist_index(ns)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->total, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, ns, memory_order_relaxed);
    /* Only the owner thread writes, so a plain load/compare/store is race-free. */
    if (ns > atomic_load_explicit(&h->max, memory_order_relaxed))
        atomic_store_explicit(&h->max, ns, memory_order_relaxed);
}

void hist_snap_init(struct hist_snap *s)
{
    memset(s, 0, sizeof(*s));
}

void hist_snap_add(struct hist_snap *s, const struct hist *h)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        s->counts[i] += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
    /* Recompute the total from the buckets so that percentiles never walk past the end. */
    uint64_t total = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        total += s->counts[i];
    s->total = total;
    s->sum += atomic_load_explicit(&h->sum, memory_order_relaxed);
    uint64_t m = atomic_load_explicit(&h->max, memory_order_relaxed);
    if (m > s->max)
        s->max = m;
}

uint64_t hist_percentile(const struct hist_snap *s, double p)
{
    if (s->total == 0)
        return 0;
    if (!(p >= 0)) /* also NaN */
        p = 0;
    if (p > 100)
        p = 100;
    uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)s->total);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += s->counts[i];
        if (seen >= rank) {
            uint64_t v = hist_value(i);
            /* A midpoint may exceed the largest value actually seen; never report that. */
            return v > s->max && s->max > 0 ? s->max : v;
        }
    }
    return s->max;
}
