/* bench_ws.h - `aei bench` WebSocket subscribers: push latency, slow readers, reconnect storms */
#ifndef AEI_CLI_BENCH_WS_H
#define AEI_CLI_BENCH_WS_H

#include "cli/rss.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

enum ws_scenario {
    WS_STEADY,          /* every subscriber reads */
    WS_SLOW_SUBSCRIBER, /* one of them stops reading once subscribed */
    WS_RECONNECT_STORM, /* steady subscribers, plus connections opened and closed at a rate */
    WS_SOAK,            /* steady, for long, watching the server's memory */
};

/* How many seconds of calm the reconnect storm has before and after it. */
#define WS_STORM_CALM_S 5.0

struct ws_opts {
    unsigned subscribers; /* steady subscribers (the slow one included); 0: no WebSocket part */
    unsigned threads;     /* threads sharing the steady subscribers */
    enum ws_scenario scenario;
    double storm_rate;    /* storm connects per second */
    double slow_resume_s; /* the slow subscriber reads again this long after it stopped; 0: once
                           * the window is over */
    bool subscribe;       /* send {"op":"subscribe","topic":"agents:all"} after the handshake */
    const char *path;
    const char *token; /* borrowed; may be NULL */
    double timeout;    /* connect and handshake timeout, seconds */
    bool quiet;
    char authority[272]; /* HOST:PORT for the Host header and messages */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int family;
};

/* The measurement window, in CLOCK_MONOTONIC nanoseconds. */
struct ws_window {
    uint64_t warm_end, end;
    uint64_t storm_start, storm_end; /* both 0 outside the storm scenario */
};

struct ws_bench;

/*
 * Starts the subscriber threads, which connect, upgrade and subscribe at once. `wall_off_ns` is
 * CLOCK_REALTIME minus CLOCK_MONOTONIC as the agents use it to write each heartbeat's timestamp,
 * so that push latency is measured on the monotonic clock. Borrows `o` for the life of the
 * result. Returns NULL (after saying why on stderr) when threads or memory run out. Caller
 * frees with ws_bench_free().
 */
struct ws_bench *ws_bench_start(const struct ws_opts *o, int64_t wall_off_ns);

/*
 * Waits until every subscriber has subscribed (or, without subscribing, upgraded), up to
 * `timeout_s`. Returns 0, or AEI_EUNAVAILABLE after saying on stderr what went wrong (the
 * server's answer to the handshake when it refused it).
 */
int ws_bench_wait_ready(struct ws_bench *b, double timeout_s);

/* Publishes the measurement window; the storm (if any) starts at w->storm_start. */
void ws_bench_go(struct ws_bench *b, const struct ws_window *w);

/* For the progress line: deltas delivered so far and the p99 push latency (ms) so far. */
void ws_bench_progress(struct ws_bench *b, uint64_t *delivered, double *p99_ms);

/*
 * After the agents stopped: waits until the subscribers have the deltas of the `committed`
 * heartbeats (or none arrived for a second, at most `drain_s`), lets the slow subscriber drain
 * what it left unread, then closes every connection and joins the threads.
 */
void ws_bench_finish(struct ws_bench *b, uint64_t committed, double drain_s);

/* Prints the WebSocket part of the summary. `secs` is the window's length; `rss` may be NULL. */
void ws_bench_print(const struct ws_bench *b, double secs, const struct rss_series *rss);

/* Writes the "ws" member of the JSON results (a key and an object, no separators around). */
void ws_bench_json(FILE *f, const struct ws_bench *b, double secs, const struct rss_series *rss);

/* True when some subscriber ever subscribed; false means the WebSocket part never ran. */
bool ws_bench_is_connected(const struct ws_bench *b);

/* Stops the threads if still running and frees everything. NULL is a no-op. */
void ws_bench_free(struct ws_bench *b);

#endif
