/* metrics.h - counters and histograms, rendered in the Prometheus text format */
#ifndef AEI_SERVER_METRICS_H
#define AEI_SERVER_METRICS_H

#include "common/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Thread-safe: called by the writer thread after each commit. */
void metrics_observe_commit(double seconds);
void metrics_observe_batch(size_t size, bool ok);

/* Loop thread only. */
void metrics_count_heartbeat(void);
/* Counts one answered HTTP request; route is a template such as "/api/v0/agents/{agent_id}". */
void metrics_count_http(const char *method, const char *route, int code);

/* The hub and its WebSocket subscribers. Loop thread only. */
void metrics_count_agent_death(void);
/* Counts one frame of `messages` messages and `bytes` bytes sent to a subscriber. */
void metrics_count_ws_sent(size_t messages, size_t bytes);
void metrics_count_ws_slow_close(void);
/* Counts a snapshot sent, by reason: "subscribe" or "behind". */
void metrics_count_ws_snapshot(const char *reason);
void metrics_count_ws_resume(bool recovered);
/* Observes the time a whole trace export took, from its request to its last byte written, and
 * counts the decisions in it. Loop thread only. */
void metrics_observe_export(double seconds, uint64_t decisions);
/* Observes the time from a heartbeat's arrival to the write of its delta to a subscriber. Loop
 * thread only. */
void metrics_observe_push(double seconds);

/* Decision traces. Loop thread: one stored POST /api/v0/traces. */
void metrics_count_decisions(size_t stored, size_t duplicates);
/* Thread-safe: the reader's time to query and render, by query. */
enum trace_query {
    TRACE_QUERY_EXECUTIONS,
    TRACE_QUERY_EXECUTION,
    TRACE_QUERY_DECISIONS,
    TRACE_QUERY_COUNT
};
void metrics_observe_trace_query(enum trace_query q, double seconds);
/* Thread-safe: called by the writer after each retention step, the time ingest waited for it. */
void metrics_observe_retention_step(double seconds);
/* Counts what a retention run did since the last call (seen, which this updates), so that the
 * counters rise during a long run; and a finished run. Loop thread only. */
struct retention_stats;
void metrics_count_retention_progress(const struct retention_stats *now,
                                      struct retention_stats *seen);
void metrics_count_retention_run(double seconds, bool ok);

/* A latency histogram in brief, for the health page: the quantiles are the upper bounds of the
 * buckets that hold them, negative when that is the open-ended last bucket or there is no data. */
struct latency_summary {
    uint64_t count;
    double mean_ms, p50_ms, p99_ms;
};
enum metrics_latency {
    METRICS_LATENCY_COMMIT, /* the writer's heartbeat commits */
    METRICS_LATENCY_READ,   /* the reader's trace queries, all three kinds */
    METRICS_LATENCY_PUSH,   /* heartbeat arrival to its delta written to a subscriber */
};
/* Thread-safe. */
void metrics_latency_summary(enum metrics_latency which, struct latency_summary *out);

/* Values that live elsewhere, read when rendering. */
struct metrics_gauges {
    const size_t *agents_by_status;   /* indexed like hb_status_names */
    const size_t *agents_by_liveness; /* indexed like hb_liveness_names */
    size_t ws_connections;
};

/* Appends every metric in the Prometheus text format (0.0.4). Loop thread only. */
void metrics_render(struct buf *out, const struct metrics_gauges *g);

#endif
