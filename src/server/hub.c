/* hub.c - the live agent registry: full states, deltas, sequence numbers, health and totals */
#include "server/hub.h"
#include "common/log.h"
#include "common/time.h"
#include "server/metrics.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* A command waiting for its agent's acknowledgement. */
struct hub_command {
    struct hub_command *next;
    bool delivered; /* handed out at least once */
    char id[AEI_ID_MAX + 1];
    char json[]; /* the command's rendered object */
};

struct hub_agent {
    char id[AEI_ID_MAX + 1];
    struct heartbeat hb; /* the latest heartbeat, with first_seen; owns its strings */
    enum hb_liveness liveness;
    double estimated_cost; /* tokens priced, for an agent that reports no cost */
    struct buf state;      /* its full state as JSON, for snapshots; empty when out of date */
    /* Its last updates, oldest first from recent[n_updates % size]; evicted_seq is the newest
     * sequence number that has dropped out. */
    struct hub_update *recent[HUB_AGENT_RING_SIZE];
    uint64_t n_updates, evicted_seq;
    struct hub_command *commands, **commands_end; /* open commands, oldest first ... */
    size_t n_commands;                            /* ... this many */
};

struct hub {
    struct hub_settings settings;
    hub_publish_fn publish;
    void *publish_arg;
    char epoch[HUB_EPOCH_LEN + 1];
    uint64_t head;       /* sequence number of the newest update */
    uint64_t end_offset; /* bytes of all updates so far */
    struct hub_update *ring[HUB_RING_SIZE];
    struct hub_agent **agents;
    size_t n_agents, cap_agents;
    struct hub_agent **by_id; /* the agents in id order, for snapshots; n_by_id of them */
    size_t n_by_id;
    json_t *index; /* agent_id -> position in agents (jansson's object is a hash table) */
    size_t status_counts[HB_STATUS_COUNT];
    size_t liveness_counts[HB_LIVENESS_COUNT];
};

static void update_release(struct hub_update *u)
{
    if (u && --u->refs == 0)
        free(u);
}

struct hub *hub_new(const struct hub_settings *settings, hub_publish_fn publish, void *arg)
{
    struct hub *h = calloc(1, sizeof(*h));
    if (!h || !(h->index = json_object()))
        abort();
    h->settings = *settings;
    h->publish = publish;
    h->publish_arg = arg;
    unsigned char rnd[HUB_EPOCH_LEN / 2];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        /* Not secret, only different from one start to the next. */
        int64_t t = aei_now_us() ^ aei_mono_us();
        memcpy(rnd, &t, sizeof(rnd) < sizeof(t) ? sizeof(rnd) : sizeof(t));
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(h->epoch + 2 * i, 3, "%02x", rnd[i]);
    return h;
}

void hub_free(struct hub *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < HUB_RING_SIZE; i++)
        update_release(h->ring[i]);
    for (size_t i = 0; i < h->n_agents; i++) {
        struct hub_agent *a = h->agents[i];
        for (size_t k = 0; k < HUB_AGENT_RING_SIZE; k++)
            update_release(a->recent[k]);
        hb_clear(&a->hb);
        buf_free(&a->state);
        while (a->commands) {
            struct hub_command *c = a->commands;
            a->commands = c->next;
            free(c);
        }
        free(a);
    }
    free(h->agents);
    free(h->by_id);
    json_decref(h->index);
    free(h);
}

struct hub_agent *hub_agent_find(const struct hub *h, const char *agent_id)
{
    json_t *i = json_object_get(h->index, agent_id);
    return i ? h->agents[json_integer_value(i)] : NULL;
}

const char *hub_agent_id(const struct hub_agent *a)
{
    return a->id;
}

const char *hub_agent_team(const struct hub_agent *a)
{
    return a->hb.team_id;
}

enum agent_control hub_agent_control(const struct hub_agent *a)
{
    return a->hb.control;
}

bool hub_team_sees(const char *team, const struct hub_update *u)
{
    return !team || strcmp(team, u->team) == 0;
}

/* Registers an agent first seen in hb (whose strings it takes). */
static struct hub_agent *agent_add(struct hub *h, struct heartbeat *hb, enum hb_liveness liveness)
{
    struct hub_agent *a = calloc(1, sizeof(*a));
    if (!a)
        abort();
    snprintf(a->id, sizeof(a->id), "%s", hb->agent_id);
    a->hb = *hb;
    if (!a->hb.team_id[0])
        snprintf(a->hb.team_id, sizeof(a->hb.team_id), "default");
    a->commands_end = &a->commands;
    memset(hb, 0, sizeof(*hb));
    a->liveness = liveness;
    if (h->n_agents == h->cap_agents) {
        h->cap_agents = h->cap_agents ? 2 * h->cap_agents : 64;
        h->agents = realloc(h->agents, h->cap_agents * sizeof(*h->agents));
        if (!h->agents)
            abort();
    }
    json_object_set_new(h->index, a->id, json_integer((json_int_t)h->n_agents));
    h->agents[h->n_agents++] = a;
    h->status_counts[a->hb.status]++;
    h->liveness_counts[liveness]++;
    return a;
}

static void set_liveness(struct hub *h, struct hub_agent *a, enum hb_liveness liveness)
{
    h->liveness_counts[a->liveness]--;
    h->liveness_counts[liveness]++;
    a->liveness = liveness;
}

/* An agent that reports tokens but no cost gets an estimate: its previous rate over the time
 * until this heartbeat (at most the stale limit), priced. */
static void account(struct hub *h, struct hub_agent *a, const struct heartbeat *next)
{
    const struct heartbeat *prev = &a->hb;
    if (!prev->has_metric[HB_TPM] || next->has_metric[HB_COST])
        return;
    int64_t dt = next->server_ts - prev->server_ts;
    if (dt > hb_stale_after())
        dt = hb_stale_after();
    if (dt > 0)
        a->estimated_cost +=
            prev->metric[HB_TPM] * ((double)dt / 60e6) / 1000.0 * h->settings.price_per_1k_tokens;
}

/* What a delta compares: an agent's state at one moment. */
struct view {
    const struct heartbeat *hb;
    enum hb_liveness liveness;
    bool has_estimate;
    double estimate;
};

static struct view view_of(const struct hub_agent *a)
{
    const struct heartbeat *hb = &a->hb;
    return (struct view){hb, a->liveness,
                         !hb->has_metric[HB_COST] &&
                             (hb->has_metric[HB_TPM] || a->estimated_cost > 0),
                         a->estimated_cost};
}

static bool same_string(const char *x, const char *y)
{
    return x == y || (x && y && strcmp(x, y) == 0);
}

static void write_time(struct buf *out, int64_t us)
{
    char ts[AEI_TIME_LEN + 2] = "\"";
    aei_time_format(us, ts + 1);
    size_t n = strlen(ts);
    ts[n] = '"';
    buf_append(out, ts, n + 1);
}

/* Appends "s" (text that needs no escaping: names of this server's own). */
static void write_name(struct buf *out, const char *s)
{
    buf_puts(out, "\"");
    buf_puts(out, s);
    buf_puts(out, "\"");
}

static void write_string_or_null(struct buf *out, const char *s)
{
    if (s)
        json_write_string(out, s);
    else
        buf_puts(out, "null");
}

/* Starts the next member of an object being written. */
static void member(struct buf *out, bool *first, const char *name)
{
    buf_puts(out, *first ? "\"" : ",\"");
    buf_puts(out, name);
    buf_puts(out, "\":");
    *first = false;
}

/* Appends the state members of `now` that differ from `before` as an object; every member
 * (the full state, as the REST API shows an agent, plus liveness and the cost estimate) when
 * before is NULL. Written directly: this runs for every heartbeat. */
static void write_state(struct buf *out, const struct view *before, const struct view *now)
{
    const struct heartbeat *b = before ? before->hb : NULL, *n = now->hb;
    bool first = true;
    buf_puts(out, "{");
    if (!b) {
        member(out, &first, "agent_id");
        json_write_string(out, n->agent_id);
    }
    if (!b || !same_string(b->name, n->name)) {
        member(out, &first, "name");
        write_string_or_null(out, n->name);
    }
    if (!b || b->status != n->status) {
        member(out, &first, "status");
        write_name(out, hb_status_names[n->status]);
    }
    bool first_metric = true;
    for (int i = 0; i < HB_METRIC_COUNT; i++) {
        if (b && b->has_metric[i] == n->has_metric[i] &&
            (!n->has_metric[i] || b->metric[i] == n->metric[i]))
            continue;
        if (first_metric) {
            member(out, &first, "metrics");
            buf_puts(out, "{");
        }
        member(out, &first_metric, hb_metric_names[i]);
        if (n->has_metric[i])
            json_write_real(out, n->metric[i]);
        else
            buf_puts(out, "null");
    }
    if (!first_metric)
        buf_puts(out, "}");
    if (!b || !same_string(b->parent_agent_id, n->parent_agent_id)) {
        member(out, &first, "parent_agent_id");
        write_string_or_null(out, n->parent_agent_id);
    }
    if (!b || !same_string(b->children_json, n->children_json)) {
        member(out, &first, "child_agent_ids");
        buf_puts(out, n->children_json ? n->children_json : "[]");
    }
    if (!b || !same_string(b->labels_json, n->labels_json)) {
        member(out, &first, "labels");
        buf_puts(out, n->labels_json ? n->labels_json : "{}");
    }
    if (!b || b->has_agent_ts != n->has_agent_ts || b->agent_ts != n->agent_ts) {
        member(out, &first, "agent_ts");
        if (n->has_agent_ts)
            write_time(out, n->agent_ts);
        else
            buf_puts(out, "null");
    }
    if (!b || b->server_ts != n->server_ts) {
        member(out, &first, "last_heartbeat");
        write_time(out, n->server_ts);
    }
    if (!b) {
        member(out, &first, "first_seen");
        write_time(out, n->first_seen);
        member(out, &first, "schema_version");
        buf_puts(out, "\"0\"");
        member(out, &first, "team_id");
        json_write_string(out, n->team_id);
    }
    if (!b || b->control != n->control) {
        member(out, &first, "control");
        write_name(out, agent_control_names[n->control]);
    }
    if (!before || before->liveness != now->liveness) {
        member(out, &first, "liveness");
        write_name(out, hb_liveness_names[now->liveness]);
    }
    if (!before || before->has_estimate != now->has_estimate || before->estimate != now->estimate) {
        member(out, &first, "estimated_cost_usd");
        if (now->has_estimate)
            json_write_real(out, now->estimate);
        else
            buf_puts(out, "null");
    }
    buf_puts(out, "}");
}

/* Rewrites stored JSON text as a new heartbeat has it: compact, labels sorted (PostgreSQL's
 * jsonb prints spaces and orders keys its own way), so that deltas compare like with like. */
static void compact(char **text, size_t flags)
{
    json_t *v = *text ? json_loads(*text, 0, NULL) : NULL;
    if (!v)
        return;
    char *c = json_dumps(v, JSON_COMPACT | flags);
    json_decref(v);
    if (!c)
        abort();
    free(*text);
    *text = c;
}

/* Appends the agent's full state, rendered once per change: a reconnecting dashboard asks for
 * many snapshots between two heartbeats of one agent. */
static void append_state(struct buf *out, struct hub_agent *a)
{
    if (a->state.len == 0) {
        struct view v = view_of(a);
        write_state(&a->state, NULL, &v);
    }
    buf_append(out, a->state.data, a->state.len);
}

void hub_load(struct hub *h, const struct heartbeat *agent, int64_t now_us)
{
    struct heartbeat copy;
    hb_copy(&copy, agent);
    compact(&copy.children_json, 0);
    compact(&copy.labels_json, JSON_SORT_KEYS);
    struct hub_agent *a = hub_agent_find(h, agent->agent_id);
    if (a) {
        h->status_counts[a->hb.status]--;
        h->status_counts[copy.status]++;
        hb_clear(&a->hb);
        a->hb = copy;
        buf_reset(&a->state);
        set_liveness(h, a, hb_liveness_at(copy.server_ts, now_us));
    } else {
        agent_add(h, &copy, hb_liveness_at(copy.server_ts, now_us));
    }
}

/* Numbers an update, renders it as {"type": type, "epoch", "seq", then `rest` (the members
 * after those and the closing brace), keeps it in the buffers and publishes it. The update is
 * about agent `a`, or when that is NULL it is of `topic` and seen by members of `team`. */
static void publish(struct hub *h, struct hub_agent *a, const char *topic, const char *team,
                    const char *type, const struct buf *rest, int64_t received_mono)
{
    uint64_t seq = ++h->head;
    struct buf head = {0};
    buf_reserve(&head, 96);
    buf_puts(&head, "{\"type\":");
    write_name(&head, type);
    buf_puts(&head, ",\"epoch\":");
    write_name(&head, h->epoch);
    buf_puts(&head, ",\"seq\":");
    buf_put_u64(&head, seq);
    buf_puts(&head, ",");
    size_t n = head.len, len = n + rest->len;
    size_t topic_len = topic ? strlen(topic) + 1 : 0, team_len = a ? 0 : strlen(team) + 1;
    struct hub_update *u = malloc(sizeof(*u) + len + 1 + topic_len + team_len);
    if (!u)
        abort();
    memcpy(u->text, head.data, n);
    buf_free(&head);
    memcpy(u->text + n, rest->data, rest->len);
    u->text[len] = '\0';
    u->len = len;
    u->seq = seq;
    u->offset = h->end_offset;
    u->received_mono = received_mono;
    u->agent = a;
    u->topic = topic ? memcpy(u->text + len + 1, topic, topic_len) : NULL;
    u->team = a ? a->hb.team_id : memcpy(u->text + len + 1 + topic_len, team, team_len);
    u->refs = a ? 2 : 1;
    h->end_offset += len;

    struct hub_update **slot = &h->ring[seq % HUB_RING_SIZE];
    update_release(*slot);
    *slot = u;
    if (a) {
        buf_reset(&a->state); /* every change of an agent publishes an update */
        struct hub_update **mine = &a->recent[a->n_updates++ % HUB_AGENT_RING_SIZE];
        if (*mine)
            a->evicted_seq = (*mine)->seq;
        update_release(*mine);
        *mine = u;
    }
    if (h->publish)
        h->publish(h->publish_arg, u);
}

/* Publishes {"type": type, "topic": "<kind>:<id>", "epoch", "seq", member: json}. */
static void publish_stream(struct hub *h, const char *kind, const char *id, const char *team,
                           const char *type, const char *member, const char *json)
{
    char topic[AEI_ID_MAX + 16];
    snprintf(topic, sizeof(topic), "%s:%s", kind, id);
    struct buf rest = {0};
    buf_printf(&rest, "\"topic\":\"%s\",\"%s\":", topic, member); /* ids need no escaping */
    buf_puts(&rest, json);
    buf_puts(&rest, "}");
    publish(h, NULL, topic, team, type, &rest, 0);
    buf_free(&rest);
}

void hub_publish_execution(struct hub *h, const char *execution_id, const char *team,
                           const char *type, const char *member, const char *json)
{
    publish_stream(h, "execution", execution_id, team, type, member, json);
}

/* Publishes a delta of an agent's state from `before` to its state now. */
static void publish_delta(struct hub *h, struct hub_agent *a, const struct view *before,
                          int64_t server_ts, int64_t received_mono)
{
    struct view now = view_of(a);
    struct buf rest = {0};
    buf_reserve(&rest, 512);
    buf_puts(&rest, "\"agent_id\":");
    write_name(&rest, a->id); /* ids need no escaping */
    buf_puts(&rest, ",\"changed\":");
    write_state(&rest, before, &now);
    buf_puts(&rest, ",\"server_ts\":");
    write_time(&rest, server_ts);
    buf_puts(&rest, "}");
    publish(h, a, NULL, NULL, "delta", &rest, received_mono);
    buf_free(&rest);
}

static void publish_liveness(struct hub *h, struct hub_agent *a, int64_t now_us)
{
    static const char *const events[HB_LIVENESS_COUNT] = {"agent.online", "agent.stale",
                                                          "agent.dead"};
    struct buf rest = {0};
    buf_printf(&rest,
               "\"event\":\"%s\",\"agent_id\":\"%s\",\"liveness\":\"%s\",\"last_heartbeat\":",
               events[a->liveness], a->id, hb_liveness_names[a->liveness]);
    write_time(&rest, a->hb.server_ts);
    buf_puts(&rest, ",\"server_ts\":");
    write_time(&rest, now_us);
    buf_puts(&rest, "}");
    publish(h, a, NULL, NULL, "event", &rest, 0);
    buf_free(&rest);
}

void hub_heartbeat(struct hub *h, struct heartbeat *hb, int64_t received_mono)
{
    int64_t ts = hb->server_ts;
    struct hub_agent *a = hub_agent_find(h, hb->agent_id);
    if (!a) {
        hb->first_seen = ts;
        a = agent_add(h, hb, HB_ONLINE);
        publish_delta(h, a, NULL, ts, received_mono);
        return;
    }
    /* The delta compares against the previous heartbeat, kept until it is written. */
    struct heartbeat prev = a->hb;
    struct view before = view_of(a);
    before.hb = &prev;
    account(h, a, hb);
    bool revived = a->liveness != HB_ONLINE;
    if (revived)
        set_liveness(h, a, HB_ONLINE);
    h->status_counts[prev.status]--;
    h->status_counts[hb->status]++;
    hb->first_seen = prev.first_seen;
    memcpy(hb->team_id, prev.team_id, sizeof(hb->team_id)); /* an agent keeps its team */
    /* and its name, when a heartbeat has none, as the store does: the state takes the previous
     * heartbeat's string, which the delta still compares with, then prev lets go of it */
    bool kept_name = !hb->name && prev.name;
    if (kept_name)
        hb->name = prev.name;
    hb->control = prev.control;
    a->hb = *hb;
    memset(hb, 0, sizeof(*hb));
    publish_delta(h, a, &before, ts, received_mono);
    if (kept_name)
        prev.name = NULL;
    hb_clear(&prev);
    if (revived)
        publish_liveness(h, a, ts);
}

void hub_check_health(struct hub *h, int64_t now_us)
{
    for (size_t i = 0; i < h->n_agents; i++) {
        struct hub_agent *a = h->agents[i];
        enum hb_liveness l = hb_liveness_at(a->hb.server_ts, now_us);
        if (l <= a->liveness)
            continue; /* only a heartbeat brings an agent back */
        struct view before = view_of(a);
        set_liveness(h, a, l);
        publish_delta(h, a, &before, now_us, 0);
        publish_liveness(h, a, now_us);
        if (l == HB_DEAD) {
            log_warn("agent %s is dead: no heartbeat for %lld s", a->id,
                     (long long)((now_us - a->hb.server_ts) / 1000000));
            metrics_count_agent_death();
            if (h->settings.died)
                h->settings.died(h->publish_arg, a->id, a->hb.server_ts);
        }
    }
}

void hub_set_control(struct hub *h, struct hub_agent *a, enum agent_control control)
{
    if (a->hb.control == control)
        return;
    struct view before = view_of(a);
    struct heartbeat prev = a->hb; /* strings shared: only control differs */
    before.hb = &prev;
    a->hb.control = control;
    publish_delta(h, a, &before, aei_now_us(), 0);
}

void hub_command_add(struct hub *h, struct hub_agent *a, const char *command_id, const char *json,
                     bool publish)
{
    size_t len = strlen(json) + 1;
    struct hub_command *c = calloc(1, sizeof(*c) + len);
    if (!c)
        abort();
    snprintf(c->id, sizeof(c->id), "%s", command_id);
    memcpy(c->json, json, len);
    *a->commands_end = c;
    a->commands_end = &c->next;
    a->n_commands++;
    if (publish)
        publish_stream(h, "commands", a->id, a->hb.team_id, "command", "command", json);
}

size_t hub_open_commands(const struct hub_agent *a)
{
    return a->n_commands;
}

bool hub_command_remove(struct hub_agent *a, const char *command_id)
{
    for (struct hub_command **p = &a->commands; *p; p = &(*p)->next) {
        struct hub_command *c = *p;
        if (strcmp(c->id, command_id) != 0)
            continue;
        *p = c->next;
        if (a->commands_end == &c->next)
            a->commands_end = p;
        free(c);
        a->n_commands--;
        return true;
    }
    return false;
}

void hub_commands_write(struct hub_agent *a, struct buf *out, size_t max,
                        void (*delivered)(void *arg, const char *command_id), void *arg)
{
    buf_puts(out, "[");
    size_t n = 0;
    for (struct hub_command *c = a->commands; c && n < max; c = c->next, n++) {
        if (c != a->commands)
            buf_puts(out, ",");
        buf_puts(out, c->json);
        if (delivered && !c->delivered)
            delivered(arg, c->id);
        c->delivered |= delivered != NULL;
    }
    buf_puts(out, "]");
}

const char *hub_epoch(const struct hub *h)
{
    return h->epoch;
}

uint64_t hub_head(const struct hub *h)
{
    return h->head;
}

uint64_t hub_end_offset(const struct hub *h)
{
    return h->end_offset;
}

const struct hub_update *hub_update_at(const struct hub *h, uint64_t seq)
{
    if (seq == 0 || seq > h->head || h->head - seq >= HUB_RING_SIZE)
        return NULL;
    return h->ring[seq % HUB_RING_SIZE];
}

const size_t *hub_status_counts(const struct hub *h)
{
    return h->status_counts;
}

const size_t *hub_liveness_counts(const struct hub *h)
{
    return h->liveness_counts;
}

bool hub_replay(const struct hub *h, const struct hub_agent *agent, uint64_t after,
                size_t max_bytes, void (*fn)(void *arg, const struct hub_update *u), void *arg)
{
    if (after >= h->head)
        return true;
    if (!agent) {
        const struct hub_update *first = hub_update_at(h, after + 1);
        if (!first || h->end_offset - first->offset > max_bytes)
            return false;
        for (uint64_t s = after + 1; s <= h->head; s++)
            fn(arg, hub_update_at(h, s));
        return true;
    }
    if (after < agent->evicted_seq)
        return false;
    uint64_t n = agent->n_updates < HUB_AGENT_RING_SIZE ? agent->n_updates : HUB_AGENT_RING_SIZE;
    uint64_t start = agent->n_updates - n;
    size_t bytes = 0;
    for (uint64_t k = start; k < agent->n_updates; k++) {
        const struct hub_update *u = agent->recent[k % HUB_AGENT_RING_SIZE];
        if (u->seq > after)
            bytes += u->len;
    }
    if (bytes > max_bytes)
        return false;
    for (uint64_t k = start; k < agent->n_updates; k++) {
        const struct hub_update *u = agent->recent[k % HUB_AGENT_RING_SIZE];
        if (u->seq > after)
            fn(arg, u);
    }
    return true;
}

json_t *hub_totals(const struct hub *h, const char *team)
{
    double cost = 0, estimated = 0, tpm = 0;
    size_t agents = 0, by_status_n[HB_STATUS_COUNT] = {0}, by_liveness_n[HB_LIVENESS_COUNT] = {0};
    for (size_t i = 0; i < h->n_agents; i++) {
        const struct hub_agent *a = h->agents[i];
        if (team && strcmp(team, a->hb.team_id) != 0)
            continue;
        agents++;
        by_status_n[a->hb.status]++;
        by_liveness_n[a->liveness]++;
        if (a->hb.has_metric[HB_COST]) {
            cost += a->hb.metric[HB_COST];
        } else {
            cost += a->estimated_cost;
            estimated += a->estimated_cost;
        }
        if (a->hb.has_metric[HB_TPM] && a->liveness == HB_ONLINE)
            tpm += a->hb.metric[HB_TPM];
    }
    json_t *by_status = json_object(), *by_liveness = json_object();
    for (int i = 0; i < HB_STATUS_COUNT; i++)
        json_object_set_new(by_status, hb_status_names[i],
                            json_integer((json_int_t)by_status_n[i]));
    for (int i = 0; i < HB_LIVENESS_COUNT; i++)
        json_object_set_new(by_liveness, hb_liveness_names[i],
                            json_integer((json_int_t)by_liveness_n[i]));
    return json_pack("{s:f, s:f, s:f, s:I, s:o, s:o}", "cost_usd", cost, "estimated_cost_usd",
                     estimated, "tokens_per_min", tpm, "agents", (json_int_t)agents,
                     "agents_by_status", by_status, "agents_by_liveness", by_liveness);
}

static int by_id(const void *x, const void *y)
{
    return strcmp((*(struct hub_agent *const *)x)->id, (*(struct hub_agent *const *)y)->id);
}

char *hub_render_snapshot(struct hub *h, const char *topic, const char *team, const char *agent_id,
                          size_t *len)
{
    struct buf out = {0};
    buf_printf(&out, "{\"type\":\"snapshot\",\"topic\":");
    json_write_string(&out, topic);
    buf_printf(&out, ",\"epoch\":\"%s\",\"seq\":%llu,\"agents\":[", h->epoch,
               (unsigned long long)h->head);
    if (agent_id) {
        struct hub_agent *a = hub_agent_find(h, agent_id);
        if (a && (!team || strcmp(team, a->hb.team_id) == 0))
            append_state(&out, a);
    } else {
        if (h->n_by_id != h->n_agents) { /* sorted again only when agents were added */
            free(h->by_id);
            h->by_id = malloc((h->n_agents + 1) * sizeof(*h->by_id));
            if (!h->by_id)
                abort();
            for (size_t i = 0; i < h->n_agents; i++)
                h->by_id[i] = h->agents[i];
            qsort(h->by_id, h->n_agents, sizeof(*h->by_id), by_id);
            h->n_by_id = h->n_agents;
        }
        bool first = true;
        for (size_t i = 0; i < h->n_agents; i++) {
            if (team && strcmp(team, h->by_id[i]->hb.team_id) != 0)
                continue;
            if (!first)
                buf_puts(&out, ",");
            first = false;
            append_state(&out, h->by_id[i]);
        }
    }
    buf_puts(&out, "],\"totals\":");
    char *totals = json_render(hub_totals(h, team));
    buf_puts(&out, totals);
    free(totals);
    buf_puts(&out, "}");
    *len = out.len;
    return out.data;
}
