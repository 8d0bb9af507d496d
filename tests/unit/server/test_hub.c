/* test_hub.c - deltas, sequence numbers, resume buffers, health and totals of the live hub */
#include "server/hub.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#define SECOND 1000000LL
/* A fixed server time to start from: 2026-01-01T00:00:00Z. */
#define T0 1767225600000000LL

/* Every update the hub published, parsed. */
static json_t *published;

static void record(void *arg, const struct hub_update *u)
{
    (void)arg;
    json_error_t err;
    json_t *msg = json_loadb(u->text, u->len, 0, &err);
    cr_assert_not_null(msg, "update %llu is not JSON: %s", (unsigned long long)u->seq, err.text);
    cr_assert_eq(json_integer_value(json_object_get(msg, "seq")), (json_int_t)u->seq);
    json_array_append_new(published, msg);
}

static struct hub *new_hub(void)
{
    published = json_array();
    hb_set_liveness_after(30 * SECOND, 120 * SECOND);
    struct hub_settings s = {.price_per_1k_tokens = 0.5};
    return hub_new(&s, record, NULL);
}

static void end_hub(struct hub *h)
{
    hub_free(h);
    json_decref(published);
}

/* Applies a heartbeat given as JSON, stamped at server time ts. */
/* Applies a heartbeat of an agent of `team` ("" for the default team). */
static void team_beat(struct hub *h, const char *team, const char *text, int64_t ts)
{
    json_error_t err;
    json_t *doc = json_loads(text, 0, &err);
    cr_assert_not_null(doc, "test JSON is broken: %s", err.text);
    struct heartbeat hb;
    struct problem pb;
    cr_assert_eq(hb_from_json(doc, &hb, &pb), 0, "%s", pb.message);
    json_decref(doc);
    hb.server_ts = ts;
    snprintf(hb.team_id, sizeof(hb.team_id), "%s", team);
    hub_heartbeat(h, &hb, 1);
    hb_clear(&hb);
}

static void beat(struct hub *h, const char *text, int64_t ts)
{
    team_beat(h, "", text, ts);
}

static json_t *last(void)
{
    return json_array_get(published, json_array_size(published) - 1);
}

static json_t *changed_of(json_t *msg)
{
    cr_assert_str_eq(json_string_value(json_object_get(msg, "type")), "delta");
    return json_object_get(msg, "changed");
}

Test(hub, first_heartbeat_gives_the_full_state)
{
    struct hub *h = new_hub();
    beat(h, "{\"agent_id\":\"a\",\"status\":\"idle\",\"name\":\"A\"}", T0);
    cr_assert_eq(json_array_size(published), 1);
    json_t *changed = changed_of(last());
    const char *keys[] = {"agent_id",        "name",
                          "status",          "metrics",
                          "labels",          "last_heartbeat",
                          "first_seen",      "liveness",
                          "agent_ts",        "child_agent_ids",
                          "parent_agent_id", "estimated_cost_usd"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        cr_assert_not_null(json_object_get(changed, keys[i]), "no %s in a new agent's delta",
                           keys[i]);
    cr_assert_str_eq(json_string_value(json_object_get(changed, "liveness")), "online");
    cr_assert_eq(hub_head(h), 1);
    end_hub(h);
}

Test(hub, delta_carries_only_changed_fields)
{
    struct hub *h = new_hub();
    beat(h,
         "{\"agent_id\":\"a\",\"status\":\"idle\",\"name\":\"A\",\"metrics\":{\"cpu_pct\":1,"
         "\"mem_pct\":5}}",
         T0);
    beat(h,
         "{\"agent_id\":\"a\",\"status\":\"idle\",\"name\":\"A\",\"metrics\":{\"cpu_pct\":2,"
         "\"mem_pct\":5}}",
         T0 + SECOND);
    json_t *changed = changed_of(last());
    cr_assert_eq(json_object_size(changed), 2, "changed: %s", json_dumps(changed, 0));
    json_t *metrics = json_object_get(changed, "metrics");
    cr_assert_eq(json_object_size(metrics), 1, "only cpu_pct changed");
    cr_assert_float_eq(json_number_value(json_object_get(metrics, "cpu_pct")), 2.0, 1e-9);
    cr_assert_str_eq(json_string_value(json_object_get(changed, "last_heartbeat")),
                     "2026-01-01T00:00:01.000000Z");

    beat(h, "{\"agent_id\":\"a\",\"status\":\"error\",\"metrics\":{\"cpu_pct\":2,\"mem_pct\":5}}",
         T0 + 2 * SECOND);
    changed = changed_of(last());
    cr_assert_str_eq(json_string_value(json_object_get(changed, "status")), "error");
    cr_assert_null(json_object_get(changed, "name"), "a heartbeat without a name keeps it");
    cr_assert_null(json_object_get(changed, "metrics"));

    beat(h,
         "{\"agent_id\":\"a\",\"status\":\"error\",\"name\":\"B\",\"metrics\":{\"cpu_pct\":2,"
         "\"mem_pct\":5}}",
         T0 + 3 * SECOND);
    changed = changed_of(last());
    cr_assert_eq(json_object_size(changed), 2, "name and time: %s", json_dumps(changed, 0));
    cr_assert_str_eq(json_string_value(json_object_get(changed, "name")), "B");
    end_hub(h);
}

Test(hub, sequence_numbers_increase_and_updates_are_kept)
{
    struct hub *h = new_hub();
    for (int i = 0; i < 10; i++)
        beat(h,
             i % 2 ? "{\"agent_id\":\"a\",\"status\":\"idle\"}"
                   : "{\"agent_id\":\"b\",\"status\":\"idle\"}",
             T0 + i);
    cr_assert_eq(hub_head(h), 10);
    uint64_t offset = 0;
    for (uint64_t s = 1; s <= 10; s++) {
        const struct hub_update *u = hub_update_at(h, s);
        cr_assert_not_null(u);
        cr_assert_eq(u->seq, s);
        cr_assert_eq(u->offset, offset, "offsets add up the updates' sizes");
        offset += u->len;
    }
    cr_assert_eq(hub_end_offset(h), offset);
    cr_assert_null(hub_update_at(h, 0));
    cr_assert_null(hub_update_at(h, 11));
    end_hub(h);
}

static void collect(void *arg, const struct hub_update *u)
{
    json_array_append_new(arg, json_integer((json_int_t)u->seq));
}

Test(hub, replay_gives_exactly_the_missed_updates)
{
    struct hub *h = new_hub();
    for (int i = 0; i < 20; i++)
        beat(h,
             i % 2 ? "{\"agent_id\":\"a\",\"status\":\"idle\"}"
                   : "{\"agent_id\":\"b\",\"status\":\"idle\"}",
             T0 + i);
    json_t *seqs = json_array();
    cr_assert(hub_replay(h, NULL, 15, SIZE_MAX, collect, seqs));
    cr_assert_eq(json_array_size(seqs), 5);
    for (size_t i = 0; i < 5; i++)
        cr_assert_eq(json_integer_value(json_array_get(seqs, i)), (json_int_t)(16 + i));

    json_array_clear(seqs);
    struct hub_agent *a = hub_agent_find(h, "a");
    cr_assert(hub_replay(h, a, 10, SIZE_MAX, collect, seqs));
    cr_assert_eq(json_array_size(seqs), 5, "a's updates after 10 are 12, 14, ..., 20");
    for (size_t i = 0; i < 5; i++)
        cr_assert_eq(json_integer_value(json_array_get(seqs, i)), (json_int_t)(12 + 2 * i));

    json_array_clear(seqs);
    cr_assert(hub_replay(h, NULL, 20, SIZE_MAX, collect, seqs), "nothing missed");
    cr_assert_eq(json_array_size(seqs), 0);
    cr_assert_not(hub_replay(h, NULL, 0, 10, collect, seqs), "more bytes than allowed");
    cr_assert_eq(json_array_size(seqs), 0, "a refused replay calls nothing");
    json_decref(seqs);
    end_hub(h);
}

Test(hub, per_agent_buffer_keeps_the_last_100_updates)
{
    struct hub *h = new_hub();
    for (int i = 0; i < 150; i++)
        beat(h, "{\"agent_id\":\"a\",\"status\":\"idle\"}", T0 + i);
    struct hub_agent *a = hub_agent_find(h, "a");
    json_t *seqs = json_array();
    cr_assert_not(hub_replay(h, a, 49, SIZE_MAX, collect, seqs), "update 50 has dropped out");
    cr_assert(hub_replay(h, a, 50, SIZE_MAX, collect, seqs));
    cr_assert_eq(json_array_size(seqs), 100);
    cr_assert_eq(json_integer_value(json_array_get(seqs, 0)), 51);
    json_decref(seqs);
    end_hub(h);
}

Test(hub, global_buffer_forgets_past_its_size)
{
    struct hub *h = new_hub();
    for (int i = 0; i < HUB_RING_SIZE + 10; i++)
        beat(h, "{\"agent_id\":\"a\",\"status\":\"idle\"}", T0 + i);
    cr_assert_null(hub_update_at(h, 10));
    cr_assert_not_null(hub_update_at(h, 11));
    json_t *seqs = json_array();
    cr_assert_not(hub_replay(h, NULL, 9, SIZE_MAX, collect, seqs));
    cr_assert(hub_replay(h, NULL, 10, 1 << 30, collect, seqs));
    cr_assert_eq(json_array_size(seqs), HUB_RING_SIZE);
    json_decref(seqs);
    end_hub(h);
}

static const char *event_of(json_t *msg)
{
    cr_assert_str_eq(json_string_value(json_object_get(msg, "type")), "event");
    return json_string_value(json_object_get(msg, "event"));
}

Test(hub, agents_go_stale_then_dead_and_come_back)
{
    struct hub *h = new_hub();
    beat(h, "{\"agent_id\":\"a\",\"status\":\"idle\"}", T0);
    hub_check_health(h, T0 + 29 * SECOND);
    cr_assert_eq(json_array_size(published), 1, "not stale before 30 s");
    hub_check_health(h, T0 + 30 * SECOND);
    cr_assert_eq(json_array_size(published), 3);
    json_t *d = json_array_get(published, 1);
    cr_assert_str_eq(json_string_value(json_object_get(changed_of(d), "liveness")), "stale");
    cr_assert_str_eq(event_of(last()), "agent.stale");
    cr_assert_eq(hub_liveness_counts(h)[HB_STALE], 1);
    hub_check_health(h, T0 + 60 * SECOND);
    cr_assert_eq(json_array_size(published), 3, "no repeated events");
    hub_check_health(h, T0 + 120 * SECOND);
    cr_assert_str_eq(event_of(last()), "agent.dead");
    cr_assert_eq(hub_liveness_counts(h)[HB_DEAD], 1);
    beat(h, "{\"agent_id\":\"a\",\"status\":\"idle\"}", T0 + 130 * SECOND);
    cr_assert_str_eq(event_of(last()), "agent.online");
    json_t *revive = json_array_get(published, json_array_size(published) - 2);
    cr_assert_str_eq(json_string_value(json_object_get(changed_of(revive), "liveness")), "online");
    cr_assert_eq(hub_liveness_counts(h)[HB_ONLINE], 1);
    cr_assert_eq(hub_liveness_counts(h)[HB_DEAD], 0);
    end_hub(h);
}

static json_t *totals(struct hub *h)
{
    json_t *t = hub_totals(h, NULL);
    cr_assert_not_null(t);
    return t;
}

Test(hub, totals_sum_costs_and_estimate_unpriced_tokens)
{
    struct hub *h = new_hub();
    beat(h, "{\"agent_id\":\"a\",\"status\":\"idle\",\"metrics\":{\"cost_usd\":1.5}}", T0);
    beat(h, "{\"agent_id\":\"a\",\"status\":\"idle\",\"metrics\":{\"cost_usd\":2.5}}", T0 + 1);
    beat(h, "{\"agent_id\":\"b\",\"status\":\"processing\",\"metrics\":{\"tokens_per_min\":1000}}",
         T0);
    /* b ran at 1000 tokens/min for 6 s: 100 tokens at 0.5 USD per 1000. */
    beat(h, "{\"agent_id\":\"b\",\"status\":\"processing\",\"metrics\":{\"tokens_per_min\":1000}}",
         T0 + 6 * SECOND);
    json_t *t = totals(h);
    cr_assert_float_eq(json_number_value(json_object_get(t, "cost_usd")), 2.55, 1e-9);
    cr_assert_float_eq(json_number_value(json_object_get(t, "estimated_cost_usd")), 0.05, 1e-9);
    cr_assert_float_eq(json_number_value(json_object_get(t, "tokens_per_min")), 1000, 1e-9);
    cr_assert_eq(json_integer_value(json_object_get(t, "agents")), 2);
    json_t *by_status = json_object_get(t, "agents_by_status");
    cr_assert_eq(json_integer_value(json_object_get(by_status, "idle")), 1);
    cr_assert_eq(json_integer_value(json_object_get(by_status, "processing")), 1);
    json_decref(t);
    cr_assert_float_eq(json_number_value(json_object_get(changed_of(last()), "estimated_cost_usd")),
                       0.05, 1e-9);

    t = totals(h);
    hub_check_health(h, T0 + 31 * SECOND);
    json_t *stale = totals(h);
    cr_assert_not(json_equal(t, stale), "a stale agent changes the totals");
    json_decref(t);
    json_decref(stale);
    end_hub(h);
}

Test(hub, snapshot_lists_agents_in_id_order)
{
    struct hub *h = new_hub();
    beat(h, "{\"agent_id\":\"b\",\"status\":\"idle\"}", T0);
    beat(h, "{\"agent_id\":\"a\",\"status\":\"idle\"}", T0 + 1);
    size_t len;
    char *text = hub_render_snapshot(h, "agents:all", NULL, NULL, &len);
    json_t *snap = json_loads(text, 0, NULL);
    cr_assert_eq(strlen(text), len);
    free(text);
    cr_assert_eq(json_integer_value(json_object_get(snap, "seq")), 2);
    cr_assert_str_eq(json_string_value(json_object_get(snap, "epoch")), hub_epoch(h));
    json_t *agents = json_object_get(snap, "agents");
    cr_assert_eq(json_array_size(agents), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(agents, 0), "agent_id")),
                     "a");
    cr_assert_not_null(json_object_get(snap, "totals"));
    json_decref(snap);
    text = hub_render_snapshot(h, "agent:zz", NULL, "zz", &len);
    snap = json_loads(text, 0, NULL);
    free(text);
    cr_assert_eq(json_array_size(json_object_get(snap, "agents")), 0, "unknown agent: empty");
    json_decref(snap);
    end_hub(h);
}

Test(hub, epochs_differ_between_hubs)
{
    struct hub *h1 = new_hub();
    json_t *keep = published;
    struct hub *h2 = new_hub();
    cr_assert_eq(strlen(hub_epoch(h1)), HUB_EPOCH_LEN);
    cr_assert_str_neq(hub_epoch(h1), hub_epoch(h2));
    hub_free(h1);
    json_decref(keep);
    end_hub(h2);
}

static const struct hub_update *last_update(struct hub *h)
{
    return hub_update_at(h, hub_head(h));
}

Test(hub, teams_see_only_their_agents)
{
    struct hub *h = new_hub();
    team_beat(h, "red", "{\"agent_id\":\"r1\",\"status\":\"idle\",\"metrics\":{\"cost_usd\":1}}",
              T0);
    team_beat(h, "blue", "{\"agent_id\":\"b1\",\"status\":\"idle\",\"metrics\":{\"cost_usd\":2}}",
              T0);
    /* A heartbeat never moves an agent to another team. */
    team_beat(h, "blue", "{\"agent_id\":\"r1\",\"status\":\"processing\"}", T0 + 1);
    cr_assert_str_eq(hub_agent_team(hub_agent_find(h, "r1")), "red");
    cr_assert(hub_team_sees("red", last_update(h)));
    cr_assert_not(hub_team_sees("blue", last_update(h)));
    cr_assert(hub_team_sees(NULL, last_update(h)));
    json_t *red = hub_totals(h, "red"), *all = hub_totals(h, NULL);
    cr_assert_eq(json_integer_value(json_object_get(red, "agents")), 1);
    cr_assert_eq(json_integer_value(json_object_get(all, "agents")), 2);
    cr_assert_float_eq(json_number_value(json_object_get(all, "cost_usd")), 2, 1e-9);
    json_decref(red);
    json_decref(all);
    size_t len;
    char *text = hub_render_snapshot(h, "agents:all", "blue", NULL, &len);
    json_t *snap = json_loads(text, 0, NULL);
    free(text);
    json_t *agents = json_object_get(snap, "agents");
    cr_assert_eq(json_array_size(agents), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(agents, 0), "team_id")),
                     "blue");
    json_decref(snap);
    text = hub_render_snapshot(h, "agent:r1", "blue", "r1", &len);
    snap = json_loads(text, 0, NULL);
    free(text);
    cr_assert_eq(json_array_size(json_object_get(snap, "agents")), 0, "another team's: empty");
    json_decref(snap);
    end_hub(h);
}

static void count_delivered(void *arg, const char *command_id)
{
    (void)command_id;
    ++*(int *)arg;
}

Test(hub, open_commands_go_out_in_order_until_acknowledged)
{
    struct hub *h = new_hub();
    beat(h, "{\"agent_id\":\"a\",\"status\":\"idle\"}", T0);
    struct hub_agent *a = hub_agent_find(h, "a");
    hub_command_add(h, a, "c1", "{\"command_id\":\"c1\"}", true);
    cr_assert_str_eq(json_string_value(json_object_get(last(), "topic")), "commands:a");
    hub_command_add(h, a, "c2", "{\"command_id\":\"c2\"}", false);
    struct buf b = {0};
    int delivered = 0;
    hub_commands_write(a, &b, 10, count_delivered, &delivered);
    cr_assert_str_eq(b.data, "[{\"command_id\":\"c1\"},{\"command_id\":\"c2\"}]");
    cr_assert_eq(delivered, 2);
    buf_reset(&b);
    hub_commands_write(a, &b, 10, count_delivered, &delivered);
    cr_assert_eq(delivered, 2, "each is marked delivered once");
    cr_assert(hub_command_remove(a, "c2"));
    cr_assert_not(hub_command_remove(a, "c2"), "gone once acknowledged");
    hub_command_add(h, a, "c3", "{\"command_id\":\"c3\"}", false);
    buf_reset(&b);
    hub_commands_write(a, &b, 10, NULL, NULL);
    cr_assert_str_eq(b.data, "[{\"command_id\":\"c1\"},{\"command_id\":\"c3\"}]");
    cr_assert_eq(hub_open_commands(a), 2);
    buf_reset(&b);
    hub_commands_write(a, &b, 1, NULL, NULL);
    cr_assert_str_eq(b.data, "[{\"command_id\":\"c1\"}]", "the oldest first, up to max");
    buf_free(&b);
    hub_set_control(h, a, AGENT_PAUSED);
    cr_assert_eq(hub_agent_control(a), AGENT_PAUSED);
    cr_assert_str_eq(json_string_value(json_object_get(changed_of(last()), "control")), "paused");
    end_hub(h);
}
