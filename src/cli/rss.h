/* rss.h - a server's resident memory over time, read from /proc, and its trend */
#ifndef AEI_CLI_RSS_H
#define AEI_CLI_RSS_H

#include <stddef.h>
#include <stdint.h>

struct rss_sample {
    double t_s;   /* seconds since the start of the run */
    uint64_t kib; /* VmRSS */
};

/* A growing list of samples; zero-initialise it, release it with rss_series_free(). */
struct rss_series {
    struct rss_sample *v;
    size_t n, cap;
};

/* Returns the VmRSS (KiB) of the text of a /proc/PID/status file, or AEI_EINVAL without one. */
int rss_parse_status(const char *text, size_t len, uint64_t *kib);

/* Reads the VmRSS of process `pid`. Returns 0, or AEI_ENOTFOUND when the process is gone or
 * its status cannot be read. */
int rss_read(int pid, uint64_t *kib);

/* Appends a sample. Returns 0 or AEI_ENOMEM. */
int rss_add(struct rss_series *s, double t_s, uint64_t kib);

/*
 * Returns the least-squares slope of kib over time of the `n` samples at `v`, in KiB per minute;
 * 0 when fewer than two samples or all at one time.
 */
double rss_slope_kib_per_min(const struct rss_sample *v, size_t n);

struct rss_summary {
    size_t n; /* samples summarised; the rest is 0 when none */
    uint64_t start, end, min, max;
    double slope_kib_per_min;
    double slope_late_kib_per_min; /* over the samples of the second half of the span only */
};

/* Summarises the samples with from_s <= t_s <= to_s. */
void rss_summarize(const struct rss_series *s, double from_s, double to_s, struct rss_summary *out);

/* Frees the samples; the series is empty afterwards. */
void rss_series_free(struct rss_series *s);

#endif
