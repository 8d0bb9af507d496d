/* ws.c - WebSocket subscribers of the hub: subscriptions, resume, fan-out and backpressure */
#include "server/ws.h"
#include "common/buf.h"
#include "common/json.h"
#include "common/log.h"
#include "common/time.h"
#include "server/metrics.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Pending messages are packed into frames of about this size; a larger message goes alone. */
#define FRAME_MAX 65536
/* The largest client message. */
#define RX_MAX 65536
#define TOPICS_MAX 1000
/* A client may send a burst of this many messages, then this many a second. */
#define RX_BURST 100
#define RX_PER_SECOND 50
/* How long a client being closed has to take its close frame before the connection is cut. */
#define CLOSE_GRACE_S 5
/* A client being closed for what it sends gets its close frame once it has been quiet this long,
 * or after QUIET_MAX_US at the latest: closing while it still sends would reset the connection
 * and lose the close frame. */
#define QUIET_US 150000
#define QUIET_MAX_US 2000000
/* After this many connections have closed, and at most this often, freed memory goes back to
 * the system: aeid keeps freed memory for reuse (M_TRIM_THRESHOLD, main.c), so a storm of
 * reconnects would otherwise leave the process at its peak size. */
#define TRIM_AFTER_CLOSES 256
#define TRIM_INTERVAL_US 2000000
/* Totals go out at most this often. */
#define TOTALS_INTERVAL_US 250000

/* The totals of every agent (team "" with all set) or of one team's, as last sent. */
struct totals {
    char team[AEI_ID_MAX + 1];
    bool all;
    json_t *last;
    char *text; /* the latest totals message */
    size_t len;
    uint64_t version;
};

struct ws {
    struct hub *hub;
    struct ws_settings settings;
    struct ws_client *clients;
    size_t n_clients;
    json_t *watched;       /* "execution:<id>" -> how many clients hold that topic */
    struct totals *totals; /* [0] every agent's, then teams' as their members subscribe */
    size_t n_totals;
    int64_t totals_at; /* when totals were last rendered */
    size_t closes;     /* connections closed since memory was last trimmed */
    int64_t trimmed_at;
};

struct ws_client {
    struct ws *ws;
    struct lws *wsi;
    struct ws_client *prev, *next;
    bool all;          /* subscribed to agents:all ... */
    uint64_t all_from; /* ... with updates after this sequence number */
    size_t totals;     /* ... and the totals it gets (an index of ws->totals) */
    json_t *topics;    /* agent_id -> the sequence number its agent:<id> updates start after */
    json_t *streams;   /* "execution:<id>" or "commands:<id>" -> likewise */
    bool scoped;       /* sees one team's agents only ... */
    char team[AEI_ID_MAX + 1];  /* ... this one */
    char agent[AEI_ID_MAX + 1]; /* an agent's connection: its id, which alone it may follow */
    char *authorization;        /* the credentials it connected with */
    uint64_t cursor;            /* the next update to consider */
    uint64_t backlog;           /* bytes of wanted updates from the cursor on */
    struct buf control;         /* messages to send before updates, each ended by '\n' */
    size_t control_off;
    struct buf out; /* LWS_PRE spare bytes, then the frame being written */
    size_t out_off;
    bool out_started;     /* some of the frame has been written (fragments follow) */
    bool wake_asked;      /* a WRITEABLE callback is due */
    uint64_t totals_seen; /* the totals version last sent */
    int64_t behind_since; /* monotonic time it first fell behind since last caught up, or 0 */
    int close_code;       /* set when it is being closed */
    const char *close_reason;
    int refuse_code; /* set when it is to be closed for what it sent, once quiet */
    const char *refuse_reason;
    int64_t refused_at, last_rx;
    struct buf rx; /* a client message being received */
    bool rx_binary;
    double rx_tokens; /* flood control: a token bucket */
    int64_t rx_refill_at;
};

struct ws *ws_new(struct hub *hub, const struct ws_settings *settings)
{
    struct ws *ws = calloc(1, sizeof(*ws));
    if (!ws)
        abort();
    ws->hub = hub;
    ws->settings = *settings;
    if (!(ws->watched = json_object()) || !(ws->totals = calloc(1, sizeof(*ws->totals))))
        abort();
    ws->totals[0].all = true;
    ws->n_totals = 1;
    return ws;
}

void ws_client_set_principal(struct ws_client *c, const char *team, const char *agent_id,
                             const char *authorization)
{
    c->scoped = team != NULL;
    snprintf(c->team, sizeof(c->team), "%s", team ? team : "");
    snprintf(c->agent, sizeof(c->agent), "%s", agent_id ? agent_id : "");
    free(c->authorization);
    if (!(c->authorization = strdup(authorization)))
        abort();
}

/* The team whose updates the client may see, or NULL for every team. */
static const char *scope(const struct ws_client *c)
{
    return c->scoped ? c->team : NULL;
}

/* The totals slot of a client's scope, made on first use. */
static size_t totals_slot(struct ws *ws, const struct ws_client *c)
{
    for (size_t i = 0; i < ws->n_totals; i++)
        if (ws->totals[i].all == !c->scoped && strcmp(ws->totals[i].team, c->team) == 0)
            return i;
    ws->totals = realloc(ws->totals, (ws->n_totals + 1) * sizeof(*ws->totals));
    if (!ws->totals)
        abort();
    struct totals *t = &ws->totals[ws->n_totals];
    memset(t, 0, sizeof(*t));
    snprintf(t->team, sizeof(t->team), "%s", c->team);
    return ws->n_totals++;
}

void ws_free(struct ws *ws)
{
    if (!ws)
        return;
    for (size_t i = 0; i < ws->n_totals; i++) {
        json_decref(ws->totals[i].last);
        free(ws->totals[i].text);
    }
    free(ws->totals);
    json_decref(ws->watched);
    free(ws);
}

size_t ws_connections(const struct ws *ws)
{
    return ws->n_clients;
}

void ws_count_subscribers(const struct ws *ws, struct health_ws *out)
{
    memset(out, 0, sizeof(*out));
    out->connections = ws->n_clients;
    for (const struct ws_client *c = ws->clients; c; c = c->next) {
        size_t agents = json_object_size(c->topics), streams = json_object_size(c->streams);
        out->subscribed += c->all || agents || streams;
        out->agents_all += c->all;
        out->agent_topics += agents;
        const char *topic;
        json_t *v;
        json_object_foreach(c->streams, topic, v)
        {
            if (strncmp(topic, "execution:", 10) == 0)
                out->execution_topics++;
            else
                out->command_topics++;
        }
    }
}

bool ws_watches_execution(const struct ws *ws, const char *execution_id)
{
    char topic[AEI_ID_MAX + 16];
    snprintf(topic, sizeof(topic), "execution:%s", execution_id);
    return json_object_get(ws->watched, topic) != NULL;
}

/* Counts the clients holding a stream topic, up or down by one. */
static void watch(struct ws *ws, const char *topic, int by)
{
    json_t *n = json_object_get(ws->watched, topic);
    json_int_t count = (n ? json_integer_value(n) : 0) + by;
    if (count > 0)
        json_object_set_new(ws->watched, topic, json_integer(count));
    else
        json_object_del(ws->watched, topic);
}

static size_t topic_count(const struct ws_client *c)
{
    return c->all + json_object_size(c->topics) + json_object_size(c->streams);
}

static bool has_topics(const struct ws_client *c)
{
    return topic_count(c) > 0;
}

static bool wants(const struct ws_client *c, const struct hub_update *u)
{
    if (!hub_team_sees(scope(c), u))
        return false;
    if (!u->agent) {
        json_t *from = json_object_get(c->streams, u->topic);
        return from && u->seq > (uint64_t)json_integer_value(from);
    }
    if (c->all && u->seq > c->all_from)
        return true;
    json_t *from = json_object_get(c->topics, hub_agent_id(u->agent));
    return from && u->seq > (uint64_t)json_integer_value(from);
}

static void wake(struct ws_client *c)
{
    if (c->wake_asked || c->close_code)
        return;
    c->wake_asked = true;
    lws_callback_on_writable(c->wsi);
}

void ws_publish(struct ws *ws, const struct hub_update *u)
{
    for (struct ws_client *c = ws->clients; c; c = c->next) {
        if (wants(c, u)) {
            c->backlog += u->len;
            wake(c);
        } else if (c->cursor == u->seq)
            c->cursor++; /* caught up, and not interested: stays caught up */
    }
}

static void queue_text(struct ws_client *c, const char *text, size_t len)
{
    buf_append(&c->control, text, len);
    buf_puts(&c->control, "\n");
}

/* Queues a message built with json_pack (takes ownership of msg). */
static void queue_json(struct ws_client *c, json_t *msg)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (!text)
        abort();
    queue_text(c, text, strlen(text));
    free(text);
}

static void queue_error(struct ws_client *c, const char *code, const char *message,
                        const char *topic)
{
    json_t *msg = json_pack("{s:s, s:s, s:o}", "type", "error", "code", code, "message",
                            json_string_lossy(message));
    if (topic)
        json_object_set_new(msg, "topic", json_string_lossy(topic));
    queue_json(c, msg);
    wake(c);
}

static void queue_snapshot(struct ws_client *c, const char *topic, const char *agent_id,
                           const char *reason)
{
    size_t len;
    char *text = hub_render_snapshot(c->ws->hub, topic, scope(c), agent_id, &len);
    queue_text(c, text, len);
    free(text);
    metrics_count_ws_snapshot(reason);
}

/* Queues what a stream topic's subscriber starts from: an execution's state is its stored
 * decisions, which the client reloads over HTTP; an agent's commands are its open ones. */
static void queue_stream_state(struct ws_client *c, const char *topic)
{
    struct hub *hub = c->ws->hub;
    if (strncmp(topic, "execution:", 10) == 0) {
        queue_json(c, json_pack("{s:s, s:s, s:s, s:I}", "type", "reload", "topic", topic, "epoch",
                                hub_epoch(hub), "seq", (json_int_t)hub_head(hub)));
        return;
    }
    struct hub_agent *a = hub_agent_find(hub, topic + 9); /* commands:<agent_id> */
    struct buf b = {0};
    buf_puts(&b, "{\"type\":\"snapshot\",\"topic\":");
    json_write_string(&b, topic);
    buf_printf(&b, ",\"epoch\":\"%s\",\"seq\":%llu,\"commands\":", hub_epoch(hub),
               (unsigned long long)hub_head(hub));
    if (a && (!c->scoped || strcmp(c->team, hub_agent_team(a)) == 0))
        hub_commands_write(a, &b, SIZE_MAX, NULL, NULL);
    else
        buf_puts(&b, "[]");
    buf_puts(&b, "}");
    queue_text(c, b.data, b.len);
    buf_free(&b);
}

/* Replaces a backlog that grew too long with a snapshot of each topic. */
static void resync(struct ws_client *c)
{
    uint64_t head = hub_head(c->ws->hub);
    if (c->all) {
        queue_snapshot(c, "agents:all", NULL, "behind");
        c->all_from = head;
    }
    const char *id;
    json_t *from;
    char topic[AEI_ID_MAX + 8];
    json_object_foreach(c->topics, id, from)
    {
        snprintf(topic, sizeof(topic), "agent:%s", id);
        queue_snapshot(c, topic, id, "behind");
        json_integer_set(from, (json_int_t)head);
    }
    json_object_foreach(c->streams, id, from)
    {
        queue_stream_state(c, id);
        json_integer_set(from, (json_int_t)head);
    }
    c->cursor = head + 1;
    c->backlog = 0;
    c->totals_seen = c->ws->totals[c->totals].version; /* the snapshots hold the totals */
}

/* Bytes of updates the client waits for: unbounded when its next update is no longer kept. */
static uint64_t backlog(const struct ws_client *c)
{
    struct hub *hub = c->ws->hub;
    if (c->cursor > hub_head(hub))
        return 0;
    return hub_update_at(hub, c->cursor) ? c->backlog : UINT64_MAX;
}

/* Appends one message to the frame being built. */
static void frame_add(struct ws_client *c, const char *text, size_t len, size_t *count)
{
    if (*count > 0)
        buf_puts(&c->out, ",");
    buf_append(&c->out, text, len);
    (*count)++;
}

/* Builds the next frame in c->out: queued messages first, then the updates the client wants,
 * then the latest totals. Returns false when there is nothing to send. */
static bool build_frame(struct ws_client *c)
{
    struct ws *ws = c->ws;
    struct hub *hub = ws->hub;
    size_t count = 0;
    int64_t now = aei_mono_us();
    buf_reset(&c->out);
    buf_reserve(&c->out, LWS_PRE + 1 + 4096); /* grows to what is pending, up to a frame */
    c->out.len = LWS_PRE + 1;                 /* room for a '[' */

    if (has_topics(c) && backlog(c) > ws->settings.client_buffer) {
        if (!c->behind_since)
            c->behind_since = now;
        resync(c);
    }
    while (c->control_off < c->control.len) {
        const char *msg = c->control.data + c->control_off;
        size_t len =
            (size_t)((const char *)memchr(msg, '\n', c->control.len - c->control_off) - msg);
        if (count > 0 && c->out.len + len > FRAME_MAX)
            break;
        frame_add(c, msg, len, &count);
        c->control_off += len + 1;
    }
    if (c->control_off == c->control.len) {
        buf_reset(&c->control);
        c->control_off = 0;
    }
    uint64_t head = hub_head(hub);
    while (c->control_off == c->control.len && c->cursor <= head) {
        const struct hub_update *u = hub_update_at(hub, c->cursor);
        if (!u)
            break; /* dropped out meanwhile: resync on the next frame */
        if (wants(c, u)) {
            if (count > 0 && c->out.len + u->len > FRAME_MAX)
                break;
            frame_add(c, u->text, u->len, &count);
            c->backlog -= c->backlog < u->len ? c->backlog : u->len;
            if (u->received_mono)
                metrics_observe_push((double)(now - u->received_mono) / 1e6);
        }
        c->cursor++;
    }
    if (c->cursor > head)
        c->backlog = 0; /* also forgets updates of topics unsubscribed meanwhile */
    const struct totals *t = &ws->totals[c->totals];
    if (c->all && c->totals_seen != t->version && t->text && c->out.len + t->len <= FRAME_MAX) {
        frame_add(c, t->text, t->len, &count);
        c->totals_seen = t->version;
    }
    if (count == 0) {
        /* Nothing to send: no frame pending either (out_off at out.len would otherwise be
         * whatever it was, 0 for a client never written to, and the next WRITEABLE would send
         * the bytes reserved before the frame). */
        c->out.len = c->out_off = 0;
        return false;
    }
    if (count > 1) {
        c->out.data[LWS_PRE] = '[';
        buf_puts(&c->out, "]");
        c->out_off = LWS_PRE;
    } else {
        c->out_off = LWS_PRE + 1;
    }
    c->out_started = false;
    metrics_count_ws_sent(count, c->out.len - c->out_off);
    return true;
}

static bool caught_up(const struct ws_client *c)
{
    return c->out_off >= c->out.len && c->control_off >= c->control.len &&
           c->cursor > hub_head(c->ws->hub);
}

/* Writes the next piece of the current frame, building a new one when it is done. */
static int on_writeable(struct ws_client *c)
{
    c->wake_asked = false;
    if (c->close_code) {
        lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
                         (unsigned char *)c->close_reason, strlen(c->close_reason));
        return -1;
    }
    if (c->out_off >= c->out.len && !build_frame(c)) {
        c->behind_since = 0;
        if (c->out.cap > FRAME_MAX / 4)
            buf_free(&c->out); /* not kept for an idle client */
        return 0;
    }
    size_t left = c->out.len - c->out_off;
    size_t n = left > WS_WRITE_MAX ? WS_WRITE_MAX : left; /* a larger frame goes in fragments */
    int flags = c->out_started ? LWS_WRITE_CONTINUATION : LWS_WRITE_TEXT;
    if (n < left)
        flags |= LWS_WRITE_NO_FIN;
    /* lws keeps what the socket does not take and holds back WRITEABLE until it is sent. */
    if (lws_write(c->wsi, (unsigned char *)c->out.data + c->out_off, n,
                  (enum lws_write_protocol)flags) < 0)
        return -1;
    c->out_off += n;
    c->out_started = true;
    if (caught_up(c))
        c->behind_since = 0;
    else
        wake(c);
    return 0;
}

static void start_close(struct ws_client *c, int code, const char *reason)
{
    if (c->close_code)
        return;
    c->close_code = code;
    c->close_reason = reason;
    lws_callback_on_writable(c->wsi);
    /* A client that reads nothing never makes room for the close frame. */
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, CLOSE_GRACE_S);
}

/* A topic: agents:all, agent:<agent_id>, execution:<execution_id> or commands:<agent_id>. */
struct topic {
    const char *name;
    enum { TOPIC_ALL, TOPIC_AGENT, TOPIC_EXECUTION, TOPIC_COMMANDS } kind;
    const char *id; /* the agent's or execution's id; NULL for agents:all */
};

#define TOPIC_EXPECTED                                                                             \
    "agents:all, agent:<agent_id>, execution:<execution_id> or commands:<agent_id>"

static bool parse_topic(const char *name, struct topic *t)
{
    t->name = name;
    t->id = NULL;
    if (strcmp(name, "agents:all") == 0) {
        t->kind = TOPIC_ALL;
        return true;
    }
    if (strncmp(name, "agent:", 6) == 0) {
        t->kind = TOPIC_AGENT;
        t->id = name + 6;
    } else if (strncmp(name, "execution:", 10) == 0) {
        t->kind = TOPIC_EXECUTION;
        t->id = name + 10;
    } else if (strncmp(name, "commands:", 9) == 0) {
        t->kind = TOPIC_COMMANDS;
        t->id = name + 9;
    }
    return t->id && id_is_valid(t->id);
}

static bool is_stream(const struct topic *t)
{
    return t->kind == TOPIC_EXECUTION || t->kind == TOPIC_COMMANDS;
}

/* The client's subscriptions of a topic's kind, and the topic's key there. */
static json_t *topic_set(const struct ws_client *c, const struct topic *t)
{
    return is_stream(t) ? c->streams : c->topics;
}

static const char *topic_key(const struct topic *t)
{
    return is_stream(t) ? t->name : t->id;
}

/* Collects the updates a resuming subscriber of a topic missed. */
struct replay {
    struct buf out;
    const struct topic *topic;
    const char *scope; /* the subscriber's team, or NULL */
};

static void replay_one(void *arg, const struct hub_update *u)
{
    struct replay *r = arg;
    bool mine = is_stream(r->topic) ? !u->agent && strcmp(u->topic, r->topic->name) == 0
                                    : u->agent != NULL; /* agents:all, or the agent's own */
    if (mine && hub_team_sees(r->scope, u)) {
        buf_append(&r->out, u->text, u->len);
        buf_puts(&r->out, "\n");
    }
}

/* Renders a totals slot again when its figures changed, and wakes its subscribers. */
static void render_totals(struct ws *ws, size_t i);

/* Subscribes to a topic: "subscribed", then the missed updates or a snapshot (an execution's
 * state is its stored decisions, which the client reads over HTTP). since_epoch is NULL without
 * a resume point. */
static void subscribe(struct ws_client *c, const struct topic *t, const char *since_epoch,
                      uint64_t since_seq)
{
    struct ws *ws = c->ws;
    struct hub *hub = ws->hub;
    json_t *set = topic_set(c, t);
    const char *key = topic_key(t);
    if (c->agent[0] && !(t->id && strcmp(t->id, c->agent) == 0 &&
                         (t->kind == TOPIC_AGENT || t->kind == TOPIC_COMMANDS))) {
        queue_error(c, "forbidden",
                    "an agent's token may subscribe to agent:<id> and commands:<id> of its own "
                    "agent only",
                    t->name);
        return;
    }
    bool held = t->id ? json_object_get(set, key) != NULL : c->all;
    if (!held && topic_count(c) >= TOPICS_MAX) {
        queue_error(c, "too_many_topics", "a connection may subscribe to at most 1000 topics",
                    t->name);
        return;
    }
    uint64_t head = hub_head(hub);
    struct replay replay = {.topic = t, .scope = scope(c)};
    bool recovered = false;
    if (since_epoch && strcmp(since_epoch, hub_epoch(hub)) == 0 && since_seq <= head) {
        struct hub_agent *agent = t->kind == TOPIC_AGENT ? hub_agent_find(hub, t->id) : NULL;
        /* An agent the hub has never heard of has had no updates to miss. */
        recovered =
            (t->kind == TOPIC_AGENT && !agent) ||
            hub_replay(hub, agent, since_seq, ws->settings.client_buffer, replay_one, &replay);
    }
    if (since_epoch)
        metrics_count_ws_resume(recovered);
    if (!has_topics(c))
        c->cursor = head + 1;
    queue_json(c,
               json_pack("{s:s, s:s, s:s, s:I, s:b}", "type", "subscribed", "topic", t->name,
                         "epoch", hub_epoch(hub), "seq", (json_int_t)head, "recovered", recovered));
    if (recovered)
        buf_append(&c->control, replay.out.data, replay.out.len);
    else if (is_stream(t))
        queue_stream_state(c, t->name);
    else
        queue_snapshot(c, t->name, t->id, "subscribe");
    buf_free(&replay.out);
    if (t->id) {
        if (is_stream(t) && !held)
            watch(ws, key, +1);
        json_object_set_new(set, key, json_integer((json_int_t)head));
    } else {
        c->all = true;
        c->all_from = head;
        c->totals = totals_slot(ws, c);
        /* A snapshot holds the totals; after a replay the latest totals follow, rendered now
         * rather than as they were at the last tick, which the replay may have passed. */
        if (recovered)
            render_totals(ws, c->totals);
        uint64_t version = ws->totals[c->totals].version;
        c->totals_seen = recovered ? version - 1 : version;
    }
    wake(c);
}

static void unsubscribe(struct ws_client *c, const struct topic *t)
{
    bool was = t->id ? json_object_del(topic_set(c, t), topic_key(t)) == 0 : c->all;
    if (!t->id)
        c->all = false;
    if (!was) {
        queue_error(c, "not_subscribed", "not subscribed to this topic", t->name);
        return;
    }
    if (is_stream(t))
        watch(c->ws, t->name, -1);
    queue_json(c, json_pack("{s:s, s:s}", "type", "unsubscribed", "topic", t->name));
    wake(c);
}

static void pong(struct ws_client *c)
{
    char ts[AEI_TIME_LEN];
    aei_time_format(aei_now_us(), ts);
    queue_json(c, json_pack("{s:s, s:s}", "type", "pong", "server_ts", ts));
    wake(c);
}

/* The plain-text forms: "ping", "subscribe:<topic>", "unsubscribe:<topic>". Returns false if
 * text is none of them. */
static bool plain_message(struct ws_client *c, const char *text)
{
    struct topic t;
    if (strcmp(text, "ping") == 0) {
        pong(c);
    } else if (strncmp(text, "subscribe:", 10) == 0) {
        if (parse_topic(text + 10, &t))
            subscribe(c, &t, NULL, 0);
        else
            queue_error(c, "invalid_topic", "topic: expected " TOPIC_EXPECTED, text + 10);
    } else if (strncmp(text, "unsubscribe:", 12) == 0) {
        if (parse_topic(text + 12, &t))
            unsubscribe(c, &t);
        else
            queue_error(c, "invalid_topic", "topic: expected " TOPIC_EXPECTED, text + 12);
    } else {
        return false;
    }
    return true;
}

/* Whether s looks like an epoch the hub hands out: 16 lowercase hex digits. */
static bool is_epoch(const char *s)
{
    size_t n = strspn(s, "0123456789abcdef");
    return n == 16 && s[n] == '\0';
}

/* Reads the optional "since": {"epoch": "...", "seq": N}. */
static bool parse_since(struct ws_client *c, json_t *since, const char **epoch, uint64_t *seq)
{
    *epoch = NULL;
    *seq = 0;
    if (!since || json_is_null(since))
        return true;
    json_t *e = json_object_get(since, "epoch"), *s = json_object_get(since, "seq");
    const char *ev = json_string_value(e);
    if (!json_is_object(since) || json_object_size(since) != 2 || !ev || !is_epoch(ev) ||
        !json_is_integer(s) || json_integer_value(s) < 0) {
        struct problem pb = {0};
        problem_field(&pb, "since",
                      "an object {\"epoch\": 16 hex digits, \"seq\": whole number >= 0}", since);
        queue_error(c, "invalid_since", pb.message, NULL);
        return false;
    }
    *epoch = json_string_value(e);
    *seq = (uint64_t)json_integer_value(s);
    return true;
}

static void json_message(struct ws_client *c, const char *text, size_t len)
{
    struct problem pb;
    if (len == 0) {
        queue_error(c, "invalid_json",
                    "an empty message: send a JSON object such as {\"op\":\"ping\"}", NULL);
        return;
    }
    json_t *msg = json_parse_body(text, len, &pb);
    if (!msg) {
        /* JSON that is not an object or array is well-formed, only not a message; an object
         * refused for what is in it (a key twice) is told why. */
        json_t *scalar = json_loadb(text, len, JSON_DECODE_ANY, NULL);
        if (scalar && !json_is_object(scalar) && !json_is_array(scalar))
            queue_error(c, "invalid_message", "expected a JSON object with an \"op\" member", NULL);
        else
            queue_error(c, "invalid_json", pb.message, NULL);
        json_decref(scalar);
        return;
    }
    const char *op = json_string_value(json_object_get(msg, "op"));
    json_t *topic_v = json_object_get(msg, "topic");
    const char *topic = json_string_value(topic_v), *key;
    struct topic t;
    json_t *v;
    if (!json_is_object(msg) || !op) {
        queue_error(c, "invalid_message",
                    "expected an object with an \"op\" string: subscribe, unsubscribe or ping",
                    NULL);
        goto done;
    }
    bool with_topic = strcmp(op, "subscribe") == 0 || strcmp(op, "unsubscribe") == 0;
    if (!with_topic && strcmp(op, "ping") != 0) {
        char m[200];
        snprintf(m, sizeof(m), "unknown op \"%.60s\": use subscribe, unsubscribe or ping", op);
        queue_error(c, "unknown_op", m, NULL);
        goto done;
    }
    json_object_foreach(msg, key, v)
    {
        bool known = strcmp(key, "op") == 0 || (with_topic && strcmp(key, "topic") == 0) ||
                     (strcmp(op, "subscribe") == 0 && strcmp(key, "since") == 0);
        if (!known) {
            char m[200];
            snprintf(m, sizeof(m), "%s takes no member \"%.60s\"", op, key);
            queue_error(c, "invalid_message", m, NULL);
            goto done;
        }
    }
    if (!with_topic) {
        pong(c);
        goto done;
    }
    if (!topic || !parse_topic(topic, &t)) {
        struct problem tp = {0};
        problem_field(&tp, "topic", "a string: " TOPIC_EXPECTED, topic_v);
        queue_error(c, topic ? "invalid_topic" : "invalid_message", tp.message, topic);
        goto done;
    }
    if (strcmp(op, "unsubscribe") == 0) {
        unsubscribe(c, &t);
        goto done;
    }
    const char *since_epoch;
    uint64_t since_seq;
    if (parse_since(c, json_object_get(msg, "since"), &since_epoch, &since_seq))
        subscribe(c, &t, since_epoch, since_seq);
done:
    json_decref(msg);
}

/* Takes a token for one client message; false when the client floods. */
static bool rx_allowed(struct ws_client *c)
{
    int64_t now = aei_mono_us();
    c->rx_tokens += (double)(now - c->rx_refill_at) / 1e6 * RX_PER_SECOND;
    if (c->rx_tokens > RX_BURST)
        c->rx_tokens = RX_BURST;
    c->rx_refill_at = now;
    c->rx_tokens -= 1;
    return c->rx_tokens >= 0;
}

/* Stops taking messages from a client and closes it once it has stopped sending. */
static void refuse(struct ws_client *c, int code, const char *reason)
{
    c->refuse_code = code;
    c->refuse_reason = reason;
    c->refused_at = c->last_rx;
    buf_reset(&c->rx);
}

static int on_receive(struct ws_client *c, const void *in, size_t len)
{
    c->last_rx = aei_mono_us();
    if (c->close_code || c->refuse_code)
        return 0;
    if (c->rx.len == 0)
        c->rx_binary = lws_frame_is_binary(c->wsi);
    if (c->rx.len + len > RX_MAX) {
        refuse(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too big");
        return 0;
    }
    buf_append(&c->rx, in, len);
    if (!lws_is_final_fragment(c->wsi) || lws_remaining_packet_payload(c->wsi) > 0)
        return 0;
    if (!rx_allowed(c)) {
        refuse(c, WS_CLOSE_TOO_MANY_MESSAGES, "too many messages");
        return 0;
    }
    if (c->rx_binary) {
        queue_error(c, "unsupported_frame", "send messages as text frames of JSON", NULL);
    } else {
        buf_puts(&c->rx, ""); /* NUL-terminates */
        const char *text = c->rx.data ? c->rx.data : "";
        if (!plain_message(c, text))
            json_message(c, text, c->rx.len);
    }
    buf_reset(&c->rx);
    return 0;
}

static void client_free(struct ws_client *c)
{
    struct ws *ws = c->ws;
    if (c->prev)
        c->prev->next = c->next;
    else
        ws->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    ws->n_clients--;
    ws->closes++;
    const char *id;
    json_t *from;
    json_object_foreach(c->streams, id, from) watch(ws, id, -1);
    json_decref(c->topics);
    json_decref(c->streams);
    buf_free(&c->control);
    buf_free(&c->out);
    buf_free(&c->rx);
    free(c->authorization);
    free(c);
}

int ws_callback(struct ws *ws, struct lws *wsi, enum lws_callback_reasons reason,
                struct ws_client **slot, void *in, size_t len)
{
    struct ws_client *c = *slot;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        c = calloc(1, sizeof(*c));
        if (!c || !(c->topics = json_object()) || !(c->streams = json_object()))
            abort();
        c->ws = ws;
        c->wsi = wsi;
        c->rx_tokens = RX_BURST;
        c->rx_refill_at = aei_mono_us();
        c->next = ws->clients;
        if (ws->clients)
            ws->clients->prev = c;
        ws->clients = c;
        ws->n_clients++;
        *slot = c;
        return 0;
    case LWS_CALLBACK_RECEIVE:
        return c ? on_receive(c, in, len) : -1;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return c ? on_writeable(c) : 0;
    case LWS_CALLBACK_CLOSED:
        if (c) {
            client_free(c);
            *slot = NULL;
        }
        return 0;
    default:
        return 0;
    }
}

/* Renders a totals slot again when its figures changed, and wakes its subscribers. */
static void render_totals(struct ws *ws, size_t i)
{
    struct totals *t = &ws->totals[i];
    json_t *now = hub_totals(ws->hub, t->all ? NULL : t->team);
    if (t->last && json_equal(now, t->last)) {
        json_decref(now);
        return;
    }
    json_decref(t->last);
    t->last = json_incref(now);
    json_t *doc = json_pack("{s:s, s:s, s:I}", "type", "totals", "epoch", hub_epoch(ws->hub), "seq",
                            (json_int_t)hub_head(ws->hub));
    json_object_update(doc, now);
    json_decref(now);
    free(t->text);
    t->text = json_render(doc);
    t->len = strlen(t->text);
    t->version++;
    for (struct ws_client *c = ws->clients; c; c = c->next)
        if (c->all && c->totals == i)
            wake(c);
}

void ws_tick(struct ws *ws, int64_t now)
{
    if (ws->closes >= TRIM_AFTER_CLOSES && now - ws->trimmed_at >= TRIM_INTERVAL_US) {
        malloc_trim(0);
        ws->closes = 0;
        ws->trimmed_at = now;
    }
    if (now - ws->totals_at >= TOTALS_INTERVAL_US) {
        ws->totals_at = now;
        for (size_t i = 0; i < ws->n_totals; i++)
            render_totals(ws, i);
    }
    for (struct ws_client *c = ws->clients; c; c = c->next) {
        if (c->refuse_code && !c->close_code &&
            (now - c->last_rx >= QUIET_US || now - c->refused_at >= QUIET_MAX_US))
            start_close(c, c->refuse_code, c->refuse_reason);
        if (c->close_code || !has_topics(c))
            continue;
        if (backlog(c) > ws->settings.client_buffer && !c->behind_since)
            c->behind_since = now;
        if (c->behind_since && now - c->behind_since > ws->settings.slow_consumer_us) {
            log_warn("ws: closing a slow consumer: %.1f s behind",
                     (double)(now - c->behind_since) / 1e6);
            metrics_count_ws_slow_close();
            start_close(c, WS_CLOSE_SLOW_CONSUMER, "slow consumer");
        }
    }
}

void ws_recheck(struct ws *ws, ws_still_allowed_fn still_allowed, void *arg)
{
    for (struct ws_client *c = ws->clients; c; c = c->next)
        if (c->authorization && !c->close_code && !still_allowed(arg, c->authorization)) {
            log_info("ws: closing a connection whose token was revoked");
            start_close(c, WS_CLOSE_TOKEN_REVOKED, "token revoked");
        }
}

void ws_close_all(struct ws *ws)
{
    for (struct ws_client *c = ws->clients; c; c = c->next)
        start_close(c, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down");
}
