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

/* Reals in messages keep 15 significant digits, as in the REST answers. */
#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

struct hub_agent {
    char id[AEI_ID_MAX + 1];
    json_t *state; /* the full state, as sent in snapshots */
    enum hb_status status;
    enum hb_liveness liveness;
    int64_t last_us;    /* server time of the last heartbeat */
    int64_t first_seen; /* server time of the first */
    double tpm, cost, estimated_cost;
    bool has_tpm, has_cost;
    /* Its last updates, oldest first from recent[n_updates % size]; evicted_seq is the newest
     * sequence number that has dropped out. */
    struct hub_update *recent[HUB_AGENT_RING_SIZE];
    uint64_t n_updates, evicted_seq;
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
    json_t *index; /* agent_id -> position in agents (jansson's object is a hash table) */
    size_t status_counts[HB_STATUS_COUNT];
    size_t liveness_counts[HB_LIVENESS_COUNT];
    json_t *last_totals; /* the totals last rendered, to send only changes */
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
        json_decref(a->state);
        free(a);
    }
    free(h->agents);
    json_decref(h->index);
    json_decref(h->last_totals);
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

static struct hub_agent *agent_add(struct hub *h, const char *agent_id, enum hb_status status,
                                   enum hb_liveness liveness)
{
    struct hub_agent *a = calloc(1, sizeof(*a));
    if (!a)
        abort();
    snprintf(a->id, sizeof(a->id), "%s", agent_id);
    a->status = status;
    a->liveness = liveness;
    if (h->n_agents == h->cap_agents) {
        h->cap_agents = h->cap_agents ? 2 * h->cap_agents : 64;
        h->agents = realloc(h->agents, h->cap_agents * sizeof(*h->agents));
        if (!h->agents)
            abort();
    }
    json_object_set_new(h->index, agent_id, json_integer((json_int_t)h->n_agents));
    h->agents[h->n_agents++] = a;
    h->status_counts[status]++;
    h->liveness_counts[liveness]++;
    return a;
}

static void set_status(struct hub *h, struct hub_agent *a, enum hb_status status)
{
    h->status_counts[a->status]--;
    h->status_counts[status]++;
    a->status = status;
}

static void set_liveness(struct hub *h, struct hub_agent *a, enum hb_liveness liveness)
{
    h->liveness_counts[a->liveness]--;
    h->liveness_counts[liveness]++;
    a->liveness = liveness;
}

/* Takes in the latest metrics of a heartbeat; an agent that reports tokens but no cost gets an
 * estimate: its previous rate over the time since (at most the stale limit), priced. */
static void account(struct hub *h, struct hub_agent *a, const struct heartbeat *hb)
{
    if (a->has_tpm && !hb->has_metric[HB_COST] && a->last_us > 0) {
        int64_t dt = hb->server_ts - a->last_us;
        if (dt > hb_stale_after())
            dt = hb_stale_after();
        if (dt > 0)
            a->estimated_cost +=
                a->tpm * ((double)dt / 60e6) / 1000.0 * h->settings.price_per_1k_tokens;
    }
    a->has_tpm = hb->has_metric[HB_TPM];
    a->tpm = hb->metric[HB_TPM];
    a->has_cost = hb->has_metric[HB_COST];
    a->cost = hb->metric[HB_COST];
}

static json_t *estimate_json(const struct hub_agent *a)
{
    return !a->has_cost && (a->has_tpm || a->estimated_cost > 0) ? json_real(a->estimated_cost)
                                                                 : json_null();
}

/* The agent's full state: its latest heartbeat as the REST API shows it, with the hub's own
 * liveness and cost estimate. */
static json_t *state_json(const struct hub_agent *a, const struct heartbeat *hb)
{
    struct heartbeat copy = *hb;
    copy.first_seen = a->first_seen;
    json_t *state = hb_agent_to_json(&copy);
    json_object_set_new(state, "liveness", json_string(hb_liveness_names[a->liveness]));
    json_object_set_new(state, "estimated_cost_usd", estimate_json(a));
    return state;
}

void hub_load(struct hub *h, const struct heartbeat *agent, int64_t now_us)
{
    struct hub_agent *a = hub_agent_find(h, agent->agent_id);
    if (!a)
        a = agent_add(h, agent->agent_id, agent->status, hb_liveness_at(agent->server_ts, now_us));
    a->first_seen = agent->first_seen;
    account(h, a, agent);
    a->last_us = agent->server_ts;
    json_decref(a->state);
    a->state = state_json(a, agent);
}

/* Gives msg ("type" and what follows) its epoch and sequence number, renders it, keeps it in
 * the buffers and publishes it. Takes ownership of msg. */
static void publish(struct hub *h, struct hub_agent *a, json_t *msg, int64_t received_mono)
{
    uint64_t seq = ++h->head;
    json_t *doc = json_pack("{s:O, s:s, s:I}", "type", json_object_get(msg, "type"), "epoch",
                            h->epoch, "seq", (json_int_t)seq);
    json_object_del(msg, "type");
    json_object_update(doc, msg);
    json_decref(msg);
    size_t len = json_dumpb(doc, NULL, 0, DUMP_FLAGS);
    struct hub_update *u = malloc(sizeof(*u) + len + 1);
    if (!u)
        abort();
    json_dumpb(doc, u->text, len, DUMP_FLAGS);
    json_decref(doc);
    u->text[len] = '\0';
    u->len = len;
    u->seq = seq;
    u->offset = h->end_offset;
    u->received_mono = received_mono;
    u->agent = a;
    u->refs = 2;
    h->end_offset += len;

    struct hub_update **slot = &h->ring[seq % HUB_RING_SIZE];
    update_release(*slot);
    *slot = u;
    struct hub_update **mine = &a->recent[a->n_updates++ % HUB_AGENT_RING_SIZE];
    if (*mine)
        a->evicted_seq = (*mine)->seq;
    update_release(*mine);
    *mine = u;
    if (h->publish)
        h->publish(h->publish_arg, u);
}

static json_t *time_json(int64_t us)
{
    char ts[AEI_TIME_LEN];
    aei_time_format(us, ts);
    return json_string(ts);
}

/* The members of `now` that differ from `before`; metrics member by member. */
static json_t *diff(const json_t *before, const json_t *now)
{
    json_t *changed = json_object();
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)now, key, v)
    {
        json_t *old = json_object_get(before, key);
        if (old && json_equal(old, v))
            continue;
        if (strcmp(key, "metrics") == 0 && json_is_object(old)) {
            json_object_set_new(changed, key, diff(old, v));
            continue;
        }
        json_object_set(changed, key, v);
    }
    return changed;
}

static void publish_liveness(struct hub *h, struct hub_agent *a, int64_t now_us)
{
    static const char *const events[HB_LIVENESS_COUNT] = {"agent.online", "agent.stale",
                                                          "agent.dead"};
    const char *name = hb_liveness_names[a->liveness];
    publish(h, a,
            json_pack("{s:s, s:s, s:s, s:o, s:o, s:o}", "type", "event", "event",
                      events[a->liveness], "agent_id", a->id, "liveness", json_string(name),
                      "last_heartbeat", time_json(a->last_us), "server_ts", time_json(now_us)),
            0);
}

void hub_heartbeat(struct hub *h, const struct heartbeat *hb, int64_t received_mono)
{
    struct hub_agent *a = hub_agent_find(h, hb->agent_id);
    bool is_new = a == NULL;
    if (is_new) {
        a = agent_add(h, hb->agent_id, hb->status, HB_ONLINE);
        a->first_seen = hb->server_ts;
    }
    bool revived = a->liveness != HB_ONLINE;
    if (revived)
        set_liveness(h, a, HB_ONLINE);
    set_status(h, a, hb->status);
    account(h, a, hb);
    a->last_us = hb->server_ts;

    json_t *state = state_json(a, hb);
    json_t *changed = is_new ? json_deep_copy(state) : diff(a->state, state);
    json_decref(a->state);
    a->state = state;
    publish(h, a,
            json_pack("{s:s, s:s, s:o, s:o}", "type", "delta", "agent_id", a->id, "changed",
                      changed, "server_ts", time_json(hb->server_ts)),
            received_mono);
    if (revived)
        publish_liveness(h, a, hb->server_ts);
}

void hub_check_health(struct hub *h, int64_t now_us)
{
    for (size_t i = 0; i < h->n_agents; i++) {
        struct hub_agent *a = h->agents[i];
        enum hb_liveness l = hb_liveness_at(a->last_us, now_us);
        if (l <= a->liveness)
            continue; /* only a heartbeat brings an agent back */
        set_liveness(h, a, l);
        json_object_set_new(a->state, "liveness", json_string(hb_liveness_names[l]));
        publish(h, a,
                json_pack("{s:s, s:s, s:{s:s}, s:o}", "type", "delta", "agent_id", a->id, "changed",
                          "liveness", hb_liveness_names[l], "server_ts", time_json(now_us)),
                0);
        publish_liveness(h, a, now_us);
        if (l == HB_DEAD) {
            log_warn("agent %s is dead: no heartbeat for %lld s", a->id,
                     (long long)((now_us - a->last_us) / 1000000));
            metrics_count_agent_death();
        }
    }
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

/* The fleet's totals, recomputed from every agent's latest state. */
static json_t *totals_json(const struct hub *h)
{
    double cost = 0, estimated = 0, tpm = 0;
    for (size_t i = 0; i < h->n_agents; i++) {
        const struct hub_agent *a = h->agents[i];
        if (a->has_cost) {
            cost += a->cost;
        } else {
            cost += a->estimated_cost;
            estimated += a->estimated_cost;
        }
        if (a->has_tpm && a->liveness == HB_ONLINE)
            tpm += a->tpm;
    }
    json_t *by_status = json_object(), *by_liveness = json_object();
    for (int i = 0; i < HB_STATUS_COUNT; i++)
        json_object_set_new(by_status, hb_status_names[i],
                            json_integer((json_int_t)h->status_counts[i]));
    for (int i = 0; i < HB_LIVENESS_COUNT; i++)
        json_object_set_new(by_liveness, hb_liveness_names[i],
                            json_integer((json_int_t)h->liveness_counts[i]));
    return json_pack("{s:f, s:f, s:f, s:I, s:o, s:o}", "cost_usd", cost, "estimated_cost_usd",
                     estimated, "tokens_per_min", tpm, "agents", (json_int_t)h->n_agents,
                     "agents_by_status", by_status, "agents_by_liveness", by_liveness);
}

static char *dump(json_t *doc, size_t *len)
{
    char *text = json_dumps(doc, DUMP_FLAGS);
    json_decref(doc);
    if (!text)
        abort();
    if (len)
        *len = strlen(text);
    return text;
}

static int by_id(const void *x, const void *y)
{
    return strcmp((*(struct hub_agent *const *)x)->id, (*(struct hub_agent *const *)y)->id);
}

char *hub_render_snapshot(const struct hub *h, const char *topic, const char *agent_id, size_t *len)
{
    json_t *agents = json_array();
    if (agent_id) {
        struct hub_agent *a = hub_agent_find(h, agent_id);
        if (a)
            json_array_append(agents, a->state);
    } else {
        struct hub_agent **sorted = malloc((h->n_agents + 1) * sizeof(*sorted));
        if (!sorted)
            abort();
        for (size_t i = 0; i < h->n_agents; i++)
            sorted[i] = h->agents[i];
        qsort(sorted, h->n_agents, sizeof(*sorted), by_id);
        for (size_t i = 0; i < h->n_agents; i++)
            json_array_append(agents, sorted[i]->state);
        free(sorted);
    }
    return dump(json_pack("{s:s, s:s, s:s, s:I, s:o, s:o}", "type", "snapshot", "topic", topic,
                          "epoch", h->epoch, "seq", (json_int_t)h->head, "agents", agents, "totals",
                          totals_json(h)),
                len);
}

char *hub_render_totals(struct hub *h, bool force)
{
    json_t *totals = totals_json(h);
    if (!force && h->last_totals && json_equal(totals, h->last_totals)) {
        json_decref(totals);
        return NULL;
    }
    json_decref(h->last_totals);
    h->last_totals = json_incref(totals);
    json_t *doc = json_pack("{s:s, s:s, s:I}", "type", "totals", "epoch", h->epoch, "seq",
                            (json_int_t)h->head);
    json_object_update(doc, totals);
    json_decref(totals);
    return dump(doc, NULL);
}
