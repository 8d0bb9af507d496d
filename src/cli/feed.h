/* feed.h - reads the hub's WebSocket messages (or a relay's raw heartbeats) for the load generator
 */
#ifndef AEI_CLI_FEED_H
#define AEI_CLI_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum feed_type {
    FEED_OTHER,      /* a message with a "type" this reader has no use for */
    FEED_DELTA,      /* {"type":"delta",...}: `ts_us` is changed.agent_ts when present */
    FEED_SNAPSHOT,   /* {"type":"snapshot",...} */
    FEED_SUBSCRIBED, /* {"type":"subscribed",...} */
    FEED_EVENT,      /* {"type":"event",...} */
    FEED_TOTALS,     /* {"type":"totals",...} */
    FEED_ERROR,      /* {"type":"error",...} */
    FEED_HEARTBEAT,  /* no "type" but a top-level "timestamp": a relayed heartbeat */
};

struct feed_msg {
    enum feed_type type;
    bool has_ts; /* delta: changed.agent_ts; heartbeat: timestamp; as a valid RFC 3339 time */
    int64_t ts_us;
    bool has_seq; /* a top-level "seq" that is a whole number */
    uint64_t seq;
};

typedef void (*feed_fn)(void *arg, const struct feed_msg *m);

/*
 * Calls `fn` once for each message of one text frame: a JSON object, or a JSON array of objects.
 * Only the top-level "type", "seq" and "timestamp" and the "agent_ts" inside a top-level "changed"
 * object are looked at, so the agent_ts of the agents inside a snapshot is never taken for a
 * delta's. Returns the number of messages, or AEI_EINVAL when the frame is not such JSON (after
 * calling `fn` for the messages before the fault).
 */
int feed_scan(const char *p, size_t n, feed_fn fn, void *arg);

#endif
