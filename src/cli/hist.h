/* hist.h - log-linear latency histogram with bounded relative error */
#ifndef AEI_CLI_HIST_H
#define AEI_CLI_HIST_H

#include <stdatomic.h>
#include <stdint.h>

/*
 * Values (nanoseconds) below 2^HIST_SUB_BITS are stored exactly. Above that, every power of two
 * is split into 2^HIST_SUB_BITS equal sub-buckets, so a bucket is at most 1/128 of its lower
 * bound wide; reporting its midpoint keeps the relative error under 0.4%. Values up to 2^41 ns
 * (about 36 minutes) are kept; larger ones land in the last bucket. Counters are relaxed atomics
 * so that a progress thread may read a histogram while its owner writes it.
 */
#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_MAX_SHIFT 34
#define HIST_BUCKETS ((HIST_MAX_SHIFT + 1) * HIST_SUB)

struct hist {
    _Atomic uint64_t counts[HIST_BUCKETS];
    _Atomic uint64_t total;
    _Atomic uint64_t sum;
    _Atomic uint64_t max;
};

/* A plain copy of one or more histograms, for computing percentiles. */
struct hist_snap {
    uint64_t counts[HIST_BUCKETS];
    uint64_t total;
    uint64_t sum;
    uint64_t max;
};

/* Zeroes `h`; the caller allocates it. */
void hist_init(struct hist *h);

/* Records one value in nanoseconds. Only one thread may record into a given histogram. */
void hist_record(struct hist *h, uint64_t ns);

/* Zeroes `s`. */
void hist_snap_init(struct hist_snap *s);

/* Adds the current contents of `h` to `s`. */
void hist_snap_add(struct hist_snap *s, const struct hist *h);

/* Returns the value at percentile `p` (0-100) in nanoseconds, or 0 if `s` is empty. */
uint64_t hist_percentile(const struct hist_snap *s, double p);

/* Returns the bucket index of `ns`; exposed for tests. */
unsigned hist_index(uint64_t ns);

/* Returns the midpoint of bucket `i` in nanoseconds; exposed for tests. */
uint64_t hist_value(unsigned i);

#endif
