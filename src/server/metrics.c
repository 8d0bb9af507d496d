/* metrics.c - counters and histograms, rendered in the Prometheus text format */
#include "server/metrics.h"
#include "server/heartbeat.h"
#include "server/retention.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 14

/* A histogram whose observations may come from any thread. */
struct histogram {
    const double *bounds; /* NBUCKETS upper bounds; +Inf is implied */
    atomic_uint_fast64_t counts[NBUCKETS + 1];
    atomic_uint_fast64_t sum_micro; /* sum of observations times 1e6 */
};

static const double latency_bounds[NBUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};
static const double batch_bounds[NBUCKETS] = {1,   2,   4,   8,    16,   32,   64,
                                              128, 256, 512, 1024, 2048, 4096, 8192};

/* Exports run from milliseconds (a small tree) to seconds (100,000 decisions). */
static const double export_bounds[NBUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                               0.25,  0.5,    1,     2.5,  5,     10,   30};
/* Retention runs take from milliseconds to many minutes (steps interleave with ingest). */
static const double run_bounds[NBUCKETS] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1,
                                            5,     10,    30,   60,   300, 900, 3600};

static struct histogram commit_latency = {.bounds = latency_bounds};
static struct histogram push_latency = {.bounds = latency_bounds};
static struct histogram batch_size = {.bounds = batch_bounds};
static struct histogram trace_batch_size = {.bounds = batch_bounds};
static struct histogram trace_queries[TRACE_QUERY_COUNT] = {
    {.bounds = latency_bounds}, {.bounds = latency_bounds}, {.bounds = latency_bounds}};
static const char *const trace_query_names[TRACE_QUERY_COUNT] = {"executions", "execution",
                                                                 "decisions"};
static uint64_t decisions_stored, decisions_duplicate;
static struct histogram export_latency = {.bounds = export_bounds};
static uint64_t decisions_exported;
static atomic_uint_fast64_t batch_failures;
static uint64_t heartbeats_received;
static uint64_t agent_deaths, ws_messages, ws_frames, ws_bytes, ws_slow_closes;
static struct histogram retention_duration = {.bounds = run_bounds};
static struct histogram retention_step_time = {.bounds = latency_bounds};
static uint64_t retention_runs, retention_failures, retention_rolled_up, retention_deleted[3],
    retention_partitions_made, retention_partitions_dropped;
static uint64_t ws_snapshots_subscribe, ws_snapshots_behind, ws_resumed, ws_resume_failed;

struct http_count {
    const char *method, *route;
    int code;
    uint64_t n;
};
static struct http_count *http_counts;
static size_t http_len, http_cap;

/* The bucket of h that v falls in (the last one is +Inf). */
static int bucket_of(const struct histogram *h, double v)
{
    int i = 0;
    while (i < NBUCKETS && v > h->bounds[i])
        i++;
    return i;
}

static void observe(struct histogram *h, double v)
{
    int i = bucket_of(h, v);
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_micro, (uint_fast64_t)(v * 1e6), memory_order_relaxed);
}

/* observe() for a histogram that one thread alone observes: plain loads and stores of its
 * counters (other threads only read them), without the locked instructions. */
static void observe_owned(struct histogram *h, double v)
{
    int i = bucket_of(h, v);
    atomic_store_explicit(&h->counts[i],
                          atomic_load_explicit(&h->counts[i], memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&h->sum_micro,
                          atomic_load_explicit(&h->sum_micro, memory_order_relaxed) +
                              (uint_fast64_t)(v * 1e6),
                          memory_order_relaxed);
}

void metrics_observe_commit(double seconds)
{
    observe(&commit_latency, seconds);
}

void metrics_observe_batch(size_t size, bool ok)
{
    observe(&batch_size, (double)size);
    if (!ok)
        atomic_fetch_add_explicit(&batch_failures, 1, memory_order_relaxed);
}

void metrics_count_heartbeat(void)
{
    heartbeats_received++;
}

void metrics_count_agent_death(void)
{
    agent_deaths++;
}

void metrics_count_ws_sent(size_t messages, size_t bytes)
{
    ws_frames++;
    ws_messages += messages;
    ws_bytes += bytes;
}

void metrics_count_ws_slow_close(void)
{
    ws_slow_closes++;
}

void metrics_count_ws_snapshot(const char *reason)
{
    if (strcmp(reason, "behind") == 0)
        ws_snapshots_behind++;
    else
        ws_snapshots_subscribe++;
}

void metrics_count_ws_resume(bool recovered)
{
    if (recovered)
        ws_resumed++;
    else
        ws_resume_failed++;
}

void metrics_observe_export(double seconds, uint64_t decisions)
{
    observe(&export_latency, seconds);
    decisions_exported += decisions;
}

void metrics_observe_push(double seconds)
{
    observe_owned(&push_latency, seconds); /* the loop thread's */
}

void metrics_count_decisions(size_t stored, size_t duplicates)
{
    decisions_stored += stored;
    decisions_duplicate += duplicates;
    observe(&trace_batch_size, (double)(stored + duplicates));
}

void metrics_observe_trace_query(enum trace_query q, double seconds)
{
    observe(&trace_queries[q], seconds);
}

void metrics_observe_retention_step(double seconds)
{
    observe(&retention_step_time, seconds);
}

void metrics_count_retention_progress(const struct retention_stats *now,
                                      struct retention_stats *seen)
{
    retention_rolled_up += (uint64_t)(now->rolled_up - seen->rolled_up);
    retention_deleted[0] += (uint64_t)(now->heartbeats_deleted - seen->heartbeats_deleted);
    retention_deleted[1] += (uint64_t)(now->decisions_deleted - seen->decisions_deleted);
    retention_deleted[2] += (uint64_t)(now->executions_deleted - seen->executions_deleted);
    retention_partitions_made += (uint64_t)(now->partitions_made - seen->partitions_made);
    retention_partitions_dropped += (uint64_t)(now->partitions_dropped - seen->partitions_dropped);
    *seen = *now;
}

void metrics_count_retention_run(double seconds, bool ok)
{
    observe(&retention_duration, seconds);
    retention_runs++;
    retention_failures += !ok;
}

/* Appends a counter or gauge with no labels. */
static void render_one(struct buf *out, const char *name, const char *type, const char *help,
                       uint64_t value)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
               (unsigned long long)value);
}

void metrics_count_http(const char *method, const char *route, int code)
{
    for (size_t i = 0; i < http_len; i++) {
        struct http_count *c = &http_counts[i];
        if (c->code == code && strcmp(c->route, route) == 0 && strcmp(c->method, method) == 0) {
            c->n++;
            return;
        }
    }
    if (http_len == http_cap) {
        http_cap = http_cap ? http_cap * 2 : 32;
        http_counts = realloc(http_counts, http_cap * sizeof(*http_counts));
        if (!http_counts)
            abort();
    }
    http_counts[http_len++] = (struct http_count){method, route, code, 1};
}

/* Adds h's buckets into counts[] and its sum into *sum_micro. */
static void add_counts(struct histogram *h, uint64_t *counts, uint64_t *sum_micro)
{
    for (int i = 0; i <= NBUCKETS; i++)
        counts[i] += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
    *sum_micro += atomic_load_explicit(&h->sum_micro, memory_order_relaxed);
}

/* The upper bound, in ms, of the bucket holding quantile q; -1 for the last bucket or none. */
static double quantile_ms(const double *bounds, const uint64_t *counts, uint64_t total, double q)
{
    uint64_t cumulative = 0;
    for (int i = 0; total && i < NBUCKETS; i++) {
        cumulative += counts[i];
        if ((double)cumulative >= q * (double)total)
            return bounds[i] * 1e3;
    }
    return -1;
}

void metrics_latency_summary(enum metrics_latency which, struct latency_summary *out)
{
    uint64_t counts[NBUCKETS + 1] = {0}, sum_micro = 0, total = 0;
    if (which == METRICS_LATENCY_COMMIT)
        add_counts(&commit_latency, counts, &sum_micro);
    else if (which == METRICS_LATENCY_PUSH)
        add_counts(&push_latency, counts, &sum_micro);
    else
        for (int q = 0; q < TRACE_QUERY_COUNT; q++)
            add_counts(&trace_queries[q], counts, &sum_micro);
    for (int i = 0; i <= NBUCKETS; i++)
        total += counts[i];
    out->count = total;
    out->mean_ms = total ? (double)sum_micro / 1e3 / (double)total : -1;
    out->p50_ms = quantile_ms(latency_bounds, counts, total, 0.5);
    out->p99_ms = quantile_ms(latency_bounds, counts, total, 0.99);
}

/* Appends the lines of one histogram series; `label` is "" or a label pair such as
 * query="decisions". */
static void render_series(struct buf *out, const char *name, const char *label, struct histogram *h)
{
    const char *sep = label[0] ? "," : "";
    uint64_t cumulative = 0;
    for (int i = 0; i <= NBUCKETS; i++) {
        cumulative += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (i < NBUCKETS)
            buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, label, sep, h->bounds[i],
                       (unsigned long long)cumulative);
        else
            buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, label, sep,
                       (unsigned long long)cumulative);
    }
    const char *open = label[0] ? "{" : "", *close = label[0] ? "}" : "";
    buf_printf(out, "%s_sum%s%s%s %.6f\n%s_count%s%s%s %llu\n", name, open, label, close,
               (double)atomic_load_explicit(&h->sum_micro, memory_order_relaxed) / 1e6, name, open,
               label, close, (unsigned long long)cumulative);
}

static void render_histogram(struct buf *out, const char *name, const char *help,
                             struct histogram *h)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    render_series(out, name, "", h);
}

void metrics_render(struct buf *out, const struct metrics_gauges *g)
{
    render_one(out, "aei_heartbeats_received_total", "counter", "Valid heartbeats received.",
               heartbeats_received);
    render_histogram(out, "aei_heartbeat_commit_latency_seconds",
                     "Time from receiving a heartbeat to committing it.", &commit_latency);
    render_histogram(out, "aei_store_batch_size", "Heartbeats committed per transaction.",
                     &batch_size);
    render_one(out, "aei_store_batch_failures_total", "counter",
               "Heartbeat transactions that failed.", atomic_load(&batch_failures));
    buf_puts(out, "# HELP aei_agents Known agents by their last reported status.\n"
                  "# TYPE aei_agents gauge\n");
    for (int i = 0; i < HB_STATUS_COUNT; i++)
        buf_printf(out, "aei_agents{status=\"%s\"} %zu\n", hb_status_names[i],
                   g->agents_by_status[i]);
    buf_puts(out, "# HELP aei_agents_by_liveness Known agents by whether they still send "
                  "heartbeats.\n"
                  "# TYPE aei_agents_by_liveness gauge\n");
    for (int i = 0; i < HB_LIVENESS_COUNT; i++)
        buf_printf(out, "aei_agents_by_liveness{liveness=\"%s\"} %zu\n", hb_liveness_names[i],
                   g->agents_by_liveness[i]);
    render_one(out, "aei_agent_deaths_total", "counter",
               "Times an agent was marked dead for want of heartbeats.", agent_deaths);
    render_one(out, "aei_ws_connections", "gauge", "Open WebSocket connections.",
               g->ws_connections);
    render_one(out, "aei_ws_messages_sent_total", "counter",
               "Messages sent to WebSocket subscribers.", ws_messages);
    render_one(out, "aei_ws_frames_sent_total", "counter",
               "WebSocket frames sent; a frame may pack several messages.", ws_frames);
    render_one(out, "aei_ws_bytes_sent_total", "counter",
               "Payload bytes sent to WebSocket subscribers.", ws_bytes);
    render_one(out, "aei_ws_slow_consumer_closes_total", "counter",
               "Subscribers closed with 4008 for staying behind.", ws_slow_closes);
    buf_printf(out,
               "# HELP aei_ws_snapshots_sent_total Snapshots sent, on subscribing or to a "
               "subscriber that fell behind.\n"
               "# TYPE aei_ws_snapshots_sent_total counter\n"
               "aei_ws_snapshots_sent_total{reason=\"subscribe\"} %llu\n"
               "aei_ws_snapshots_sent_total{reason=\"behind\"} %llu\n",
               (unsigned long long)ws_snapshots_subscribe, (unsigned long long)ws_snapshots_behind);
    buf_printf(out,
               "# HELP aei_ws_resumes_total Subscriptions that asked to resume, by outcome.\n"
               "# TYPE aei_ws_resumes_total counter\n"
               "aei_ws_resumes_total{outcome=\"recovered\"} %llu\n"
               "aei_ws_resumes_total{outcome=\"snapshot\"} %llu\n",
               (unsigned long long)ws_resumed, (unsigned long long)ws_resume_failed);
    render_histogram(out, "aei_ws_push_latency_seconds",
                     "Time from receiving a heartbeat to writing its delta to a subscriber.",
                     &push_latency);
    buf_printf(out,
               "# HELP aei_trace_decisions_received_total Valid decisions received, by whether "
               "they were new.\n"
               "# TYPE aei_trace_decisions_received_total counter\n"
               "aei_trace_decisions_received_total{result=\"stored\"} %llu\n"
               "aei_trace_decisions_received_total{result=\"duplicate\"} %llu\n",
               (unsigned long long)decisions_stored, (unsigned long long)decisions_duplicate);
    render_histogram(out, "aei_trace_batch_size", "Decisions per stored POST /api/v0/traces.",
                     &trace_batch_size);
    buf_puts(out, "# HELP aei_trace_query_seconds Time to read and render a trace query, by "
                  "query.\n# TYPE aei_trace_query_seconds histogram\n");
    for (int q = 0; q < TRACE_QUERY_COUNT; q++) {
        char label[32];
        snprintf(label, sizeof(label), "query=\"%s\"", trace_query_names[q]);
        render_series(out, "aei_trace_query_seconds", label, &trace_queries[q]);
    }
    render_histogram(out, "aei_trace_export_seconds",
                     "Time a whole trace export took, from its request to its last byte written.",
                     &export_latency);
    render_one(out, "aei_trace_exported_decisions_total", "counter",
               "Decisions written by finished trace exports.", decisions_exported);
    buf_printf(out,
               "# HELP aei_retention_runs_total Retention runs, by outcome.\n"
               "# TYPE aei_retention_runs_total counter\n"
               "aei_retention_runs_total{outcome=\"ok\"} %llu\n"
               "aei_retention_runs_total{outcome=\"failed\"} %llu\n",
               (unsigned long long)(retention_runs - retention_failures),
               (unsigned long long)retention_failures);
    render_histogram(out, "aei_retention_run_duration_seconds",
                     "Time from the start of a retention run to its end, its steps interleaved "
                     "with ingest.",
                     &retention_duration);
    render_histogram(out, "aei_retention_step_duration_seconds",
                     "Time the writer spent on one retention step (one transaction), during "
                     "which heartbeats wait.",
                     &retention_step_time);
    buf_printf(out,
               "# HELP aei_retention_rows_deleted_total Rows deleted by retention one by one, by "
               "kind (heartbeats of dropped partitions are not counted).\n"
               "# TYPE aei_retention_rows_deleted_total counter\n"
               "aei_retention_rows_deleted_total{kind=\"heartbeats\"} %llu\n"
               "aei_retention_rows_deleted_total{kind=\"decisions\"} %llu\n"
               "aei_retention_rows_deleted_total{kind=\"executions\"} %llu\n",
               (unsigned long long)retention_deleted[0], (unsigned long long)retention_deleted[1],
               (unsigned long long)retention_deleted[2]);
    render_one(out, "aei_retention_heartbeats_rolled_up_total", "counter",
               "Heartbeats added to the daily rollups.", retention_rolled_up);
    render_one(out, "aei_retention_partitions_created_total", "counter",
               "Daily heartbeat partitions made ahead (PostgreSQL).", retention_partitions_made);
    render_one(out, "aei_retention_partitions_dropped_total", "counter",
               "Daily heartbeat partitions dropped whole (PostgreSQL).",
               retention_partitions_dropped);
    buf_puts(out, "# HELP aei_http_requests_total HTTP requests answered, by route and code.\n"
                  "# TYPE aei_http_requests_total counter\n");
    for (size_t i = 0; i < http_len; i++)
        buf_printf(out, "aei_http_requests_total{method=\"%s\",route=\"%s\",code=\"%d\"} %llu\n",
                   http_counts[i].method, http_counts[i].route, http_counts[i].code,
                   (unsigned long long)http_counts[i].n);
}
