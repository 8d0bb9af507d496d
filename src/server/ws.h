/* ws.h - WebSocket subscribers of the hub: subscriptions, resume, fan-out and backpressure */
#ifndef AEI_SERVER_WS_H
#define AEI_SERVER_WS_H

#include "server/health.h"
#include "server/hub.h"

#include <libwebsockets.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Close codes, documented in docs/api/asyncapi.yaml. */
#define WS_CLOSE_SLOW_CONSUMER 4008
/* The close code for a connection whose token was revoked. */
#define WS_CLOSE_TOKEN_REVOKED 4401
#define WS_CLOSE_TOO_MANY_MESSAGES 4029

/* The most bytes given to one lws_write(), of an HTTP answer or a WebSocket frame; also the
 * protocol's tx_packet_size, without which lws send()s 4 KiB of a write and keeps the rest for
 * later turns of the loop, one more send() and poll() each (docs/decisions/0004). */
#define WS_WRITE_MAX 65536

struct ws_settings {
    size_t client_buffer;     /* bytes of updates a client may lag before it gets a snapshot */
    int64_t slow_consumer_us; /* how long a client may stay behind before it is closed */
};

struct ws;
struct ws_client;

/* Returns the subscriber set of a hub. Caller frees with ws_free() after the lws context is
 * gone. Loop thread only, like every function below. */
struct ws *ws_new(struct hub *hub, const struct ws_settings *settings);
void ws_free(struct ws *ws);

/* Learns of a new hub update and wakes the clients it concerns (a hub_publish_fn). */
void ws_publish(struct ws *ws, const struct hub_update *u);

/* Handles the lws callbacks of an upgraded connection; *client is its per-session slot.
 * Returns what the lws callback should return. */
int ws_callback(struct ws *ws, struct lws *wsi, enum lws_callback_reasons reason,
                struct ws_client **client, void *in, size_t len);

/* Confines a client to what its caller may see: one team's agents and streams (team NULL: every
 * team), and for an agent's token (agent_id not NULL) that agent's topics alone. authorization
 * is the credentials it connected with (an Authorization header's value), for ws_recheck(). */
void ws_client_set_principal(struct ws_client *c, const char *team, const char *agent_id,
                             const char *authorization);

/* Whether credentials still hold; false closes the connections that use them. */
typedef bool (*ws_still_allowed_fn)(void *arg, const char *authorization);
/* Asks about each open connection's credentials, and closes with WS_CLOSE_TOKEN_REVOKED those
 * that no longer hold. */
void ws_recheck(struct ws *ws, ws_still_allowed_fn still_allowed, void *arg);

/* Sends coalesced totals and closes clients that stayed behind too long; call a few times a
 * second. */
void ws_tick(struct ws *ws, int64_t now_mono);

/* Closes every client with 1001 (going away), as the server stops. */
void ws_close_all(struct ws *ws);

size_t ws_connections(const struct ws *ws);
/* Counts the connections and the topics they hold, for the health page. */
void ws_count_subscribers(const struct ws *ws, struct health_ws *out);
/* Whether some client holds the topic execution:<execution_id>: only then is it published. */
bool ws_watches_execution(const struct ws *ws, const char *execution_id);

#endif
