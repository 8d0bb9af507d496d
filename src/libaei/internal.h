/* internal.h - libaei's shared state, between agent.c (threads, queue) and wire.c (HTTP). */
#ifndef LIBAEI_INTERNAL_H
#define LIBAEI_INTERNAL_H

#include "aei/agent.h"

#include <pthread.h>
#include <stdbool.h>

#include <curl/curl.h>
#include <jansson.h>

struct queued {
    struct queued *next;
    char *json; /* one decision, serialised */
};

#define SEEN_COMMANDS 1000

/* A command passed on: its acknowledgement, kept to send again while the server hands the
 * command out. */
struct seen_command {
    char *id;
    int status;   /* enum aei_command_status, or -1 while on_command runs */
    char *result; /* JSON text, or NULL */
};

struct aei_agent {
    struct aei_agent_config cfg; /* strings point into the copies below */
    char *server_url, *token, *agent_id, *name, *parent_agent_id, *auth_header;

    pthread_mutex_t lock;
    pthread_cond_t wake; /* on CLOCK_MONOTONIC: queue grew, batch acknowledged, stopping */
    char status[16];
    double metrics[5];
    bool metric_set[5];

    struct queued *head, *tail;
    size_t queue_len; /* including the in-flight ones at the front */
    size_t in_flight;
    int flushers; /* callers of aei_agent_flush() waiting: send without waiting to fill */
    double drop_logged_at;

    bool started, stopping;
    double stop_by; /* cfg.now() deadline for the last sends */
    pthread_t hb_thread, tr_thread;

    struct seen_command seen[SEEN_COMMANDS]; /* commands delivered, a ring */
    size_t seen_next;
    bool paused, terminated; /* what pause, resume and terminate said last */

    struct aei_stats stats;
    /* The jitter's own generator, under the lock: seeded per agent from getrandom() so that
     * agents in different processes never retry in step, and without touching the host
     * application's random() state. */
    uint64_t rng;
};

/* wire.c: one request, retried per the policy. On AEI_OK *answer holds the answer's JSON
 * (the caller decrefs; NULL for an empty body). attempts 0 uses cfg.max_attempts. Once the
 * agent is stopping, retries go on until the stop's deadline when `until_stop_deadline` (data
 * that would be lost), else end at once (a late heartbeat carries no news). */
int aei__request(struct aei_agent *a, CURL *curl, const char *method, const char *path,
                 const char *body, int attempts, bool until_stop_deadline, json_t **answer,
                 struct aei_error *err);
void aei__log(struct aei_agent *a, enum aei_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void aei__set_error(struct aei_error *err, int http_status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
double aei__now(struct aei_agent *a);

#endif
