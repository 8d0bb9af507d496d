/* health.h - what GET /api/v0/debug/health reports: heartbeat and decision rates over the last
 * minute, the last error answers, a timed store probe and the newest audit rows */
#ifndef AEI_SERVER_HEALTH_H
#define AEI_SERVER_HEALTH_H

#include "server/audit_api.h"
#include "server/store.h"

#include <stddef.h>
#include <stdint.h>

/* Seconds of per-second counts kept: the longest rate window reported. */
#define HEALTH_RATE_SECONDS 60
/* Error answers kept, the newest last. */
#define HEALTH_ERRORS_MAX 50
/* Audit rows shown as a sample. */
#define HEALTH_AUDIT_SAMPLE 10

/* Events counted per second over the last HEALTH_RATE_SECONDS seconds: slot i counts the
 * second second[i]; a slot whose second is too old counts nothing. */
struct health_rate {
    int64_t second[HEALTH_RATE_SECONDS];
    uint64_t count[HEALTH_RATE_SECONDS];
};

/* One error answered (or one failure of the server's own work, with status 0). */
struct health_error {
    int64_t ts;     /* server time, microseconds */
    char where[96]; /* "GET /api/v0/agents/{agent_id}", or what the server was doing */
    int status;
    char code[40];
    char message[240];
};

/* The loop thread's part of the health page. Loop thread only, like every function below that
 * takes it. */
struct health {
    int64_t started_mono, started_ts;
    const char *store_backend; /* "sqlite" or "postgres" */
    struct health_rate heartbeats, decisions;
    struct health_error errors[HEALTH_ERRORS_MAX]; /* a ring: errors[n_errors % MAX] is next */
    uint64_t n_errors;                             /* every error noted since start */
};

/* What the hub's subscribers hold, for the page. */
struct health_ws {
    size_t connections;
    size_t subscribed; /* connections holding at least one topic */
    size_t agents_all, agent_topics, execution_topics, command_topics;
};

void health_init(struct health *h, const char *db_url);

/* Counts n events in second now_s (any monotonic second count). */
void health_rate_add(struct health_rate *r, int64_t now_s, uint64_t n);
/* Events per second over the `seconds` seconds ending with now_s (the current, partial second
 * included), 1 <= seconds <= HEALTH_RATE_SECONDS. */
double health_rate_per_second(const struct health_rate *r, int64_t now_s, int seconds);

/* Counts heartbeats received and decisions stored, now. */
void health_count_heartbeats(struct health *h, uint64_t n);
void health_count_decisions(struct health *h, uint64_t n);

/* Notes an error answer: status 400 or more, with its body (the {"error": {...}} document, or
 * anything else, whose code is then "http_<status>"). `route` is a route template. */
void health_note_answer(struct health *h, const char *method, const char *route, int status,
                        const char *body, size_t len);
/* Notes a failure of the server's own work, outside any request: `what` it was doing and the
 * AEI_E* code it failed with. */
void health_note_failure(struct health *h, const char *what, int rc);

/* The reader's part (reader thread): times a cheap query (one agent row), reads the newest
 * HEALTH_AUDIT_SAMPLE audit rows and writes both into *fragment as the JSON object
 * {"probe": {...}, "audit_sample": {...}}; a store that fails is reported there, not returned.
 * Caller frees *fragment. Returns 0. */
int health_probe(struct store *s, struct audit_job *a, char **fragment);

/* The whole page as JSON, from the loop thread's state, the subscribers and the reader's
 * fragment. Caller frees. */
char *health_render(const struct health *h, const struct health_ws *ws, const char *fragment);

#endif
