/* server.h - aeid's configuration and its HTTP service */
#ifndef AEI_SERVER_SERVER_H
#define AEI_SERVER_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Everything aeid is started with, after options and environment are read. */
struct config {
    char http_host[256];
    int http_port;
    char ws_host[256];
    int ws_port;
    const char *db_url;
    const char *token; /* the bootstrap admin token; never logged */
    size_t max_body;
    int request_timeout;          /* seconds from a request's headers to the end of its body */
    bool epoll;                   /* --event-loop epoll: lws on libev (decision 0013) */
    const char *ws_origins;       /* browser origins allowed on WebSocket: NULL (same), "*", list */
    const char *web_root;         /* directory of the built dashboard, served at / */
    size_t ws_client_buffer;      /* bytes a subscriber may lag before it gets a snapshot */
    int64_t slow_consumer_us;     /* how long a subscriber may stay behind */
    int64_t stale_after_us;       /* no heartbeat for this long: stale */
    int64_t dead_after_us;        /* ... and for this long: dead */
    double price_per_1k_tokens;   /* for estimating the cost of agents that report none */
    int heartbeat_retention_days; /* raw heartbeats: whole UTC days kept before today */
    int trace_retention_days;     /* executions: kept this long after their last activity */
    int64_t retention_interval_us;
    int retention_batch;               /* rows per retention step; 0 for the store's default */
    int64_t retention_clock_offset_us; /* tests only: added to the clock retention works by */
    const char *audit_key_file;        /* the audit log's hash key; NULL for the default path */
    const char *audit_checkpoint;      /* the checkpoint file of chain heads, or NULL */
    int64_t audit_checkpoint_every_us; /* how often the heads are checked and appended */
};

/* Opens the store, listens and serves until server_stop(). Returns 0 after a clean stop, or a
 * negative AEI_E* code with a one-line reason in err if it could not start. */
int server_run(const struct config *cfg, char *err, size_t errlen);
/* Asks a running server to finish what it accepted and return; safe from a signal handler. */
void server_stop(void);

#endif
