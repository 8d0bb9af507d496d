/* rss.c - a server's resident memory over time, read from /proc, and its trend */
#include "cli/rss.h"

#include "cli/proc.h"

#include "aei/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rss_parse_status(const char *text, size_t len, uint64_t *kib)
{
    static const char key[] = "VmRSS:";
    size_t k = sizeof(key) - 1;
    for (size_t i = 0; i + k <= len; i++) {
        if ((i > 0 && text[i - 1] != '\n') || memcmp(text + i, key, k) != 0)
            continue;
        size_t p = i + k;
        while (p < len && (text[p] == ' ' || text[p] == '\t'))
            p++;
        uint64_t v = 0;
        size_t start = p;
        while (p < len && text[p] >= '0' && text[p] <= '9' && p - start < 18)
            v = v * 10 + (uint64_t)(text[p++] - '0');
        if (p == start || p + 3 > len || memcmp(text + p, " kB", 3) != 0)
            return AEI_EINVAL;
        *kib = v;
        return 0;
    }
    return AEI_EINVAL;
}

int rss_read(int pid, uint64_t *kib)
{
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    int len = proc_read_file(path, buf, sizeof(buf));
    if (len < 0)
        return AEI_ENOTFOUND;
    return rss_parse_status(buf, (size_t)len, kib) < 0 ? AEI_ENOTFOUND : 0;
}

int rss_add(struct rss_series *s, double t_s, uint64_t kib)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        struct rss_sample *v = realloc(s->v, cap * sizeof(*v));
        if (!v)
            return AEI_ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (struct rss_sample){t_s, kib};
    return 0;
}

double rss_slope_kib_per_min(const struct rss_sample *v, size_t n)
{
    if (n < 2)
        return 0;
    /* Centred sums: exact enough for hours of samples in doubles. */
    double mt = 0, mk = 0;
    for (size_t i = 0; i < n; i++) {
        mt += v[i].t_s;
        mk += (double)v[i].kib;
    }
    mt /= (double)n;
    mk /= (double)n;
    double sxy = 0, sxx = 0;
    for (size_t i = 0; i < n; i++) {
        double dt = v[i].t_s - mt;
        sxy += dt * ((double)v[i].kib - mk);
        sxx += dt * dt;
    }
    if (sxx <= 0)
        return 0;
    return sxy / sxx * 60.0;
}

void rss_summarize(const struct rss_series *s, double from_s, double to_s, struct rss_summary *out)
{
    memset(out, 0, sizeof(*out));
    size_t first = 0;
    while (first < s->n && s->v[first].t_s < from_s)
        first++;
    size_t last = first;
    while (last < s->n && s->v[last].t_s <= to_s)
        last++;
    if (last == first)
        return;
    out->n = last - first;
    out->start = s->v[first].kib;
    out->end = s->v[last - 1].kib;
    out->min = out->max = out->start;
    for (size_t i = first; i < last; i++) {
        if (s->v[i].kib > out->max)
            out->max = s->v[i].kib;
        if (s->v[i].kib < out->min)
            out->min = s->v[i].kib;
    }
    out->slope_kib_per_min = rss_slope_kib_per_min(s->v + first, out->n);
    /* Start-up growth (buffers filling to their bounds) weighs on the whole span's slope; the
     * second half shows whether memory still grows once the server is warm. */
    double mid = s->v[first].t_s + (s->v[last - 1].t_s - s->v[first].t_s) / 2;
    size_t half = first;
    while (half < last && s->v[half].t_s < mid)
        half++;
    out->slope_late_kib_per_min = rss_slope_kib_per_min(s->v + half, last - half);
}

void rss_series_free(struct rss_series *s)
{
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}
