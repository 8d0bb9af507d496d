/* metrics.h - counters and histograms, rendered in the Prometheus text format */
#ifndef AEI_SERVER_METRICS_H
#define AEI_SERVER_METRICS_H

#include "common/buf.h"

#include <stdbool.h>
#include <stddef.h>

/* Thread-safe: called by the writer thread after each commit. */
void metrics_observe_commit(double seconds);
void metrics_observe_batch(size_t size, bool ok);

/* Loop thread only. */
void metrics_count_heartbeat(void);
/* Counts one answered HTTP request; route is a template such as "/api/v0/agents/{agent_id}". */
void metrics_count_http(const char *method, const char *route, int code);

/* Appends every metric in the Prometheus text format (0.0.4). agents_by_status holds one count
 * per status in the order of hb_status_names. Loop thread only. */
void metrics_render(struct buf *out, const size_t *agents_by_status);

#endif
