/* test_agent.c - libaei against a real aeid (aeid_fixture.c) and, for the retry policy, a small
 * scripted HTTP server in this file answering 503, 429 and 400. */
#define _GNU_SOURCE /* strcasestr */
#include "aei/agent.h"
#include "aeid_fixture.h"

#include <criterion/criterion.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct aeid srv;

static void up(void)
{
    memset(&srv, 0, sizeof srv);
    cr_assert(aeid_start(&srv), "aeid did not start (%s)", aeid_path());
}

static void down(void)
{
    aeid_stop(&srv);
}

static void nap(double s)
{
    nanosleep(&(struct timespec){.tv_sec = (time_t)s, .tv_nsec = (long)(fmod(s, 1) * 1e9)}, NULL);
}

static double mono(void);

static struct aei_agent *agent(const char *address, const char *id, struct aei_agent_config *cfg)
{
    cfg->server = address;
    cfg->token = FIXTURE_TOKEN;
    cfg->agent_id = id;
    struct aei_error err;
    struct aei_agent *a = aei_agent_new(cfg, &err);
    cr_assert(a, "aei_agent_new: %s", err.message);
    return a;
}

Test(libaei, heartbeats_arrive_with_status_and_metrics, .init = up, .fini = down)
{
    struct aei_agent_config cfg = aei_agent_config_default();
    cfg.name = "C agent";
    cfg.heartbeat_interval_s = 0.2;
    struct aei_agent *a = agent(srv.address, "c-hb-1", &cfg);
    cr_assert_eq(aei_agent_set_status(a, "processing"), AEI_OK);
    cr_assert_eq(aei_agent_set_metric(a, "cpu_pct", 42.5), AEI_OK);
    cr_assert_eq(aei_agent_set_metric(a, "cost_usd", 0.5), AEI_OK);
    struct aei_error err;
    cr_assert_eq(aei_agent_start(a, &err), AEI_OK, "%s", err.message);
    nap(0.7);
    aei_agent_set_status(a, "waiting");
    nap(0.5);
    cr_assert_eq(aei_agent_stop(a, 5), AEI_OK);
    struct aei_stats st;
    aei_agent_stats(a, &st);
    cr_expect_geq(st.heartbeats, 4, "heartbeats: %llu", (unsigned long long)st.heartbeats);
    aei_agent_free(a);

    json_t *got = aeid_get(&srv, "/api/v0/agents/c-hb-1");
    cr_assert(got);
    cr_expect_str_eq(json_string_value(json_object_get(got, "status")), "waiting");
    cr_expect_str_eq(json_string_value(json_object_get(got, "name")), "C agent");
    double cpu = json_number_value(json_object_get(json_object_get(got, "metrics"), "cpu_pct"));
    cr_expect_float_eq(cpu, 42.5, 1e-9);
    json_decref(got);
    json_t *hist = aeid_get(&srv, "/api/v0/agents/c-hb-1/heartbeats?limit=1000");
    cr_assert(hist);
    cr_expect_geq(json_array_size(json_object_get(hist, "heartbeats")), 4);
    json_decref(hist);
}

Test(libaei, a_bad_token_is_refused_at_start, .init = up, .fini = down)
{
    struct aei_agent_config cfg = aei_agent_config_default();
    cfg.server = srv.address;
    cfg.token = "wrong-token-0123456789";
    cfg.agent_id = "c-bad-1";
    struct aei_error err;
    struct aei_agent *a = aei_agent_new(&cfg, &err);
    cr_assert(a);
    cr_expect_eq(aei_agent_start(a, &err), AEI_EREFUSED);
    cr_expect_eq(err.http_status, 401);
    cr_expect_str_eq(err.code, "invalid_token");
    aei_agent_free(a);
}

Test(libaei, bad_arguments_are_refused_at_once)
{
    struct aei_agent_config cfg = aei_agent_config_default();
    struct aei_error err;
    cfg.token = "t";
    cfg.agent_id = "a";
    cfg.server = "ftp://x";
    cr_expect_null(aei_agent_new(&cfg, &err));
    cr_expect(strstr(err.message, "server"), "%s", err.message);
    cfg.server = "127.0.0.1:1";
    cfg.batch_size = 1001;
    cr_expect_null(aei_agent_new(&cfg, &err));
    cr_expect(strstr(err.message, "batch_size"), "%s", err.message);
    cfg.batch_size = 100;
    cfg.agent_id = NULL;
    cr_expect_null(aei_agent_new(&cfg, &err));
    cr_expect(strstr(err.message, "agent_id"), "%s", err.message);
    cfg.agent_id = "a";
    struct aei_agent *a = aei_agent_new(&cfg, &err);
    cr_assert(a);
    cr_expect_eq(aei_agent_set_status(a, "sleeping"), AEI_EINVAL);
    cr_expect_eq(aei_agent_set_metric(a, "gpu", 1), AEI_EINVAL);
    cr_expect_eq(aei_agent_set_metric(a, "cpu_pct", NAN), AEI_EINVAL);
    struct aei_decision d = {.confidence = AEI_UNSET};
    cr_expect_eq(aei_trace_emit(a, &d, NULL), AEI_EINVAL);
    cr_expect_eq(aei_execution_end(a, "x", "completed", "{not json", &err), AEI_EINVAL);
    aei_agent_free(a);
}

static struct aei_decision step(const char *exec, const char *parent, const char *outcome)
{
    return (struct aei_decision){.execution_id = exec,
                                 .parent_decision_id = parent,
                                 .outcome = outcome,
                                 .confidence = 70,
                                 .duration_ms = AEI_UNSET,
                                 .tokens = AEI_UNSET,
                                 .cost_usd = AEI_UNSET};
}

static bool has_each_once(json_t *got, char (*ids)[AEI_ID_LEN], size_t n)
{
    if (json_array_size(got) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        int seen = 0;
        size_t j;
        json_t *d;
        json_array_foreach(got, j, d)
        {
            seen += strcmp(json_string_value(json_object_get(d, "decision_id")), ids[i]) == 0;
        }
        if (seen != 1)
            return false;
    }
    return true;
}

Test(libaei, decisions_go_in_batches_of_100, .init = up, .fini = down)
{
    struct aei_agent_config cfg = aei_agent_config_default();
    cfg.flush_interval_s = 5; /* batches fill before the interval passes */
    struct aei_agent *a = agent(srv.address, "c-tr-1", &cfg);
    struct aei_error err;
    cr_assert_eq(aei_agent_start(a, &err), AEI_OK, "%s", err.message);
    static char ids[250][AEI_ID_LEN];
    struct aei_alternative alt = {"ask the user", "not needed", 0.1};
    struct aei_decision root = step("c-run-1", NULL, "search");
    root.reasoning_json = "{\"goal\":\"answer\"}";
    root.alternatives = &alt;
    root.n_alternatives = 1;
    root.kind = "tool_selection";
    cr_assert_eq(aei_trace_emit(a, &root, ids[0]), AEI_OK);
    for (int i = 1; i < 250; i++) {
        char outcome[32];
        snprintf(outcome, sizeof outcome, "did %d", i);
        struct aei_decision d = step("c-run-1", ids[(i - 1) / 4], outcome);
        cr_assert_eq(aei_trace_emit(a, &d, ids[i]), AEI_OK);
    }
    cr_assert_eq(aei_agent_flush(a, 20), AEI_OK);
    cr_assert_eq(aei_execution_end(a, "c-run-1", "completed", NULL, &err), AEI_OK, "%s",
                 err.message);
    struct aei_stats st;
    aei_agent_stats(a, &st);
    cr_expect_eq(st.decisions_sent, 250);
    cr_expect_eq(st.batches, 3, "250 decisions in batches of 100, got %llu batches",
                 (unsigned long long)st.batches);
    cr_expect_eq(st.dropped, 0);
    cr_expect_eq(st.queued, 0);
    aei_agent_free(a);

    json_t *got = aeid_all_decisions(&srv, "c-run-1");
    cr_expect(has_each_once(got, ids, 250), "stored %zu of 250", json_array_size(got));
    json_t *first = json_array_get(got, 0);
    cr_expect_str_eq(json_string_value(json_object_get(first, "decision_id")), ids[0]);
    json_t *a0 = json_array_get(json_object_get(first, "alternatives_considered"), 0);
    cr_expect_str_eq(json_string_value(json_object_get(a0, "reason_rejected")), "not needed");
    json_decref(got);
    json_t *exec = aeid_get(&srv, "/api/v0/executions/c-run-1");
    cr_assert(exec);
    cr_expect_str_eq(json_string_value(json_object_get(exec, "status")), "completed");
    json_decref(exec);
}

Test(libaei, the_header_example_stores_unknown_numbers_as_null, .init = up, .fini = down)
{
    /* As aei/agent.h's example writes it: a zero-filled designated initializer stored
     * duration_ms, tokens and cost_usd as 0.0 instead of null. */
    struct aei_agent_config cfg = aei_agent_config_default();
    struct aei_agent *a = agent(srv.address, "c-init-1", &cfg);
    struct aei_error err;
    cr_assert_eq(aei_agent_start(a, &err), AEI_OK, "%s", err.message);
    char id[AEI_ID_LEN];
    struct aei_decision d = AEI_DECISION_INIT;
    d.execution_id = "c-run-init";
    d.reasoning = "the index is fresher";
    d.outcome = "search the index";
    d.confidence = 82;
    cr_assert_eq(aei_trace_emit(a, &d, id), AEI_OK);
    struct aei_decision zero = AEI_DECISION_INIT;
    zero.execution_id = "c-run-init";
    zero.parent_decision_id = id;
    zero.cost_usd = 0; /* a known zero is still sent */
    cr_assert_eq(aei_trace_emit(a, &zero, NULL), AEI_OK);
    cr_assert_eq(aei_agent_stop(a, 10), AEI_OK);
    aei_agent_free(a);

    json_t *got = aeid_all_decisions(&srv, "c-run-init");
    cr_assert_eq(json_array_size(got), 2);
    json_t *first = json_array_get(got, 0), *second = json_array_get(got, 1);
    cr_expect_str_eq(json_string_value(json_object_get(first, "decision_id")), id);
    cr_expect_float_eq(json_number_value(json_object_get(first, "confidence_score")), 82, 1e-9);
    const char *unset[] = {"duration_ms", "tokens", "cost_usd"};
    for (size_t i = 0; i < 3; i++) {
        json_t *v = json_object_get(first, unset[i]);
        cr_expect(!v || json_is_null(v), "%s: expected null, got %g", unset[i],
                  json_number_value(v));
    }
    json_t *confidence = json_object_get(second, "confidence_score");
    cr_expect(!confidence || json_is_null(confidence), "confidence_score: expected null, got %g",
              json_number_value(confidence));
    json_t *cost = json_object_get(second, "cost_usd");
    cr_expect(json_is_number(cost) && json_number_value(cost) == 0, "cost_usd: expected 0");
    json_decref(got);
}

static char last_error[512];

static void keep_error(enum aei_log_level level, const char *message, void *user)
{
    (void)user;
    if (level == AEI_LOG_ERROR)
        snprintf(last_error, sizeof last_error, "%s", message);
}

Test(libaei, a_decision_the_server_would_refuse_is_not_queued)
{
    struct aei_agent_config cfg = aei_agent_config_default();
    cfg.on_log = keep_error;
    char address[64];
    snprintf(address, sizeof address, "127.0.0.1:%d", free_port()); /* never contacted */
    struct aei_agent *a = agent(address, "c-val-1", &cfg);
    static char long_text[4098], long_reasoning[16384];
    memset(long_text, 'o', sizeof long_text - 1);
    memset(long_reasoning, 'r', sizeof long_reasoning - 1); /* 16385 bytes with the quotes */
    struct aei_alternative no_option = {NULL, "why", AEI_UNSET};
    struct {
        const char *field;
        struct aei_decision d;
    } bad[] = {
        {"confidence: ", step("c-run-val", NULL, "x")},
        {"confidence: ", step("c-run-val", NULL, "x")},
        {"tokens: ", step("c-run-val", NULL, "x")},
        {"cost_usd: ", step("c-run-val", NULL, "x")},
        {"execution_id: ", step("has space", NULL, "x")},
        {"execution_id: ", step(NULL, NULL, "x")},
        {"parent_decision_id: ", step("c-run-val", "a/b", "x")},
        {"parent_decision_id: ", step("c-run-val", "same", "x")},
        {"decision_id: ", step("c-run-val", NULL, "x")},
        {"decision_id: ", step("c-run-val", NULL, "x")},
        {"kind: ", step("c-run-val", NULL, "x")},
        {"outcome: ", step("c-run-val", NULL, long_text)},
        {"reasoning: ", step("c-run-val", NULL, "x")},
        {"reasoning_json: ", step("c-run-val", NULL, "x")},
        {"alternatives[0]: ", step("c-run-val", NULL, "x")},
        {"alternatives: ", step("c-run-val", NULL, "x")},
    };
    bad[0].d.confidence = 150;
    bad[1].d.confidence = NAN;
    bad[2].d.tokens = INFINITY;
    bad[3].d.cost_usd = 2e15;
    bad[7].d.decision_id = "same";
    bad[8].d.decision_id = "d e";
    bad[9].d.decision_id = "0123456789012345678901234567890123456789"; /* over AEI_ID_LEN - 1 */
    bad[10].d.kind = "not a kind";
    bad[12].d.reasoning = long_reasoning;
    bad[13].d.reasoning_json = "[1, 2]";
    bad[14].d.alternatives = &no_option;
    bad[14].d.n_alternatives = 1;
    bad[15].d.alternatives = &no_option;
    bad[15].d.n_alternatives = 65;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        last_error[0] = '\0';
        cr_expect_eq(aei_trace_emit(a, &bad[i].d, NULL), AEI_EINVAL, "case %zu (%s)", i,
                     bad[i].field);
        cr_expect(strstr(last_error, bad[i].field), "case %zu: wanted %s in \"%s\"", i,
                  bad[i].field, last_error);
    }
    struct aei_stats st;
    aei_agent_stats(a, &st);
    cr_expect_eq(st.queued, 0, "nothing bad was queued");
    aei_agent_free(a);

    cfg.agent_id = "not an id";
    struct aei_error err;
    cr_expect_null(aei_agent_new(&cfg, &err));
    cr_expect(strstr(err.message, "agent_id"), "%s", err.message);
}

Test(libaei, good_decisions_are_kept_when_a_bad_one_is_emitted, .init = up, .fini = down)
{
    /* The server refuses a batch whole: a bad decision queued next to good ones lost them. */
    struct aei_agent_config cfg = aei_agent_config_default();
    cfg.on_log = keep_error;
    cfg.flush_interval_s = 5;
    struct aei_agent *a = agent(srv.address, "c-val-2", &cfg);
    struct aei_error err;
    cr_assert_eq(aei_agent_start(a, &err), AEI_OK, "%s", err.message);
    char ids[2][AEI_ID_LEN];
    struct aei_decision good = step("c-run-val-2", NULL, "ok1");
    cr_assert_eq(aei_trace_emit(a, &good, ids[0]), AEI_OK);
    struct aei_decision bad = step("c-run-val-2", NULL, "ok2");
    bad.confidence = 150;
    cr_expect_eq(aei_trace_emit(a, &bad, NULL), AEI_EINVAL);
    /* At every limit aeid still takes: the local checks are no stricter than the server's. */
    static char text[4097], reasoning[16383];
    memset(text, 't', sizeof text - 1);
    memset(reasoning, 'r', sizeof reasoning - 1); /* 16384 bytes with the quotes */
    static struct aei_alternative alts[64];
    for (size_t i = 0; i < 64; i++)
        alts[i] = (struct aei_alternative){text, text, AEI_UNSET};
    struct aei_decision edge = step("c-run-val-2", ids[0], text);
    edge.decision_id = "012345678901234567890123456789abcdef"; /* AEI_ID_LEN - 1 */
    edge.confidence = 100;
    edge.kind = "k123456789012345678901234567890123456789012345678901234567890123";
    edge.reasoning = reasoning;
    edge.alternatives = alts;
    edge.n_alternatives = 64;
    edge.duration_ms = 1e15;
    cr_assert_eq(aei_trace_emit(a, &edge, ids[1]), AEI_OK, "%s", last_error);
    cr_assert_eq(aei_agent_stop(a, 10), AEI_OK);
    struct aei_stats st;
    aei_agent_stats(a, &st);
    cr_expect_eq(st.decisions_sent, 2);
    cr_expect_eq(st.refused, 0);
    aei_agent_free(a);
    json_t *got = aeid_all_decisions(&srv, "c-run-val-2");
    cr_expect(has_each_once(got, ids, 2), "stored %zu of 2", json_array_size(got));
    json_decref(got);
}

Test(libaei, nothing_lost_or_stored_twice_across_a_server_restart, .init = up, .fini = down)
{
    struct aei_agent_config cfg = aei_agent_config_default();
    cfg.batch_size = 50;
    cfg.flush_interval_s = 0.05;
    cfg.heartbeat_interval_s = 0.5;
    cfg.retry_base_s = 0.05;
    cfg.retry_cap_s = 0.5;
    cfg.timeout_s = 2;
    struct aei_agent *a = agent(srv.address, "c-rs-1", &cfg);
    struct aei_error err;
    cr_assert_eq(aei_agent_start(a, &err), AEI_OK, "%s", err.message);
    static char ids[400][AEI_ID_LEN];
    for (int i = 0; i < 400; i++) {
        char outcome[32];
        snprintf(outcome, sizeof outcome, "step %d", i);
        struct aei_decision d = step("c-run-rs", i % 10 ? ids[i - 1] : NULL, outcome);
        cr_assert_eq(aei_trace_emit(a, &d, ids[i]), AEI_OK);
        if (i == 150)
            aeid_kill(&srv); /* kill -9: a batch in flight may have committed */
        if (i == 250)
            cr_assert(aeid_start(&srv), "aeid did not restart");
        nap(0.003);
    }
    cr_assert_eq(aei_agent_flush(a, 30), AEI_OK);
    struct aei_stats st;
    aei_agent_stats(a, &st);
    cr_expect_gt(st.retries, 0, "the outage was noticed");
    cr_expect_eq(st.dropped, 0);
    aei_agent_free(a);
    json_t *got = aeid_all_decisions(&srv, "c-run-rs");
    cr_expect(has_each_once(got, ids, 400), "stored %zu of 400 (each once)", json_array_size(got));
    json_decref(got);
}

static int logged_full;

static void count_log(enum aei_log_level level, const char *message, void *user)
{
    if (level == AEI_LOG_WARNING && strstr(message, "queue full"))
        __atomic_add_fetch(&logged_full, 1, __ATOMIC_SEQ_CST);
}

Test(libaei, a_full_queue_drops_counts_and_says_so)
{
    char address[64];
    snprintf(address, sizeof address, "127.0.0.1:%d", free_port()); /* nobody there */
    struct aei_agent_config cfg = aei_agent_config_default();
    cfg.queue_limit = 10;
    cfg.on_log = count_log;
    struct aei_agent *a = agent(address, "c-q-1", &cfg);
    int full = 0;
    for (int i = 0; i < 50; i++) {
        struct aei_decision d = step("c-run-q", NULL, "x");
        full += aei_trace_emit(a, &d, NULL) == AEI_EFULL;
    }
    struct aei_stats st;
    aei_agent_stats(a, &st);
    cr_expect_eq(st.dropped, 40);
    cr_expect_eq(st.queued, 10);
    cr_expect_eq(full, 40);
    cr_expect_geq(logged_full, 1, "the drop was logged");
    aei_agent_free(a); /* never started: frees the queue without sending */
}

Test(libaei, ending_an_unknown_execution_is_refused_not_retried, .init = up, .fini = down)
{
    struct aei_agent_config cfg = aei_agent_config_default();
    struct aei_agent *a = agent(srv.address, "c-end-1", &cfg);
    struct aei_error err;
    cr_expect_eq(aei_execution_end(a, "never-started", "completed", NULL, &err), AEI_EREFUSED);
    cr_expect_eq(err.http_status, 404);
    struct aei_stats st;
    aei_agent_stats(a, &st);
    cr_expect_eq(st.retries, 0);
    aei_agent_free(a);
}

/* ---- commands ------------------------------------------------------------------------------ */

/* Acts on an agent with the bootstrap token (an admin); returns the new command's id. */
static void act(const char *agent_id, const char *action, const char *body, char id[64])
{
    char path[256];
    snprintf(path, sizeof path, "/api/v0/agents/%s/%s", agent_id, action);
    long status;
    json_t *r = aeid_post(&srv, path, body, &status);
    cr_assert_eq(status, 202, "POST %s: %ld", path, status);
    snprintf(id, 64, "%s",
             json_string_value(json_object_get(json_object_get(r, "command"), "command_id")));
    json_decref(r);
}

/* Succeeds, refuses or fails by the execute's prompt, with a result saying why. */
static enum aei_command_status by_prompt(const char *json, char *result, size_t size, void *user)
{
    (void)user;
    json_t *c = json_loads(json, 0, NULL);
    const char *prompt = json_string_value(json_object_get(json_object_get(c, "params"), "prompt"));
    enum aei_command_status st = AEI_COMMAND_SUCCEEDED;
    if (prompt && strcmp(prompt, "refuse") == 0) {
        snprintf(result, size, "{\"reason\":\"not my kind of task\"}");
        st = AEI_COMMAND_REJECTED;
    } else if (prompt && strcmp(prompt, "crash") == 0) {
        snprintf(result, size, "{\"error\":\"the model is down\"}");
        st = AEI_COMMAND_FAILED;
    } else {
        snprintf(result, size, "{\"seen\":\"%s\"}", prompt ? prompt : "");
    }
    json_decref(c);
    return st;
}

/* The stored command with this id, from GET .../commands (the caller decrefs). */
static json_t *stored_command(const char *agent_id, const char *id)
{
    char path[256];
    snprintf(path, sizeof path, "/api/v0/agents/%s/commands?limit=100", agent_id);
    json_t *page = aeid_get(&srv, path);
    cr_assert(page, "GET %s", path);
    size_t i;
    json_t *c, *found = NULL;
    json_array_foreach(json_object_get(page, "commands"), i, c)
    {
        if (strcmp(json_string_value(json_object_get(c, "command_id")), id) == 0)
            found = json_incref(c);
    }
    json_decref(page);
    cr_assert(found, "command %s is not stored", id);
    return found;
}

static void expect_acked(const char *agent_id, const char *id, const char *status,
                         const char *result)
{
    json_t *c = stored_command(agent_id, id);
    cr_expect_str_eq(json_string_value(json_object_get(c, "status")), status);
    char *got = json_dumps(json_object_get(c, "result"), JSON_COMPACT | JSON_ENCODE_ANY);
    cr_expect_str_eq(got, result);
    free(got);
    json_decref(c);
}

Test(libaei, commands_are_acknowledged_with_what_the_callback_answered, .init = up, .fini = down)
{
    struct aei_agent_config cfg = aei_agent_config_default();
    cfg.on_command = by_prompt;
    struct aei_agent *a = agent(srv.address, "c-cmd-2", &cfg);
    struct aei_error err;
    cr_assert_eq(aei_agent_heartbeat(a, &err), AEI_OK, "%s", err.message);
    char ok[64], no[64], bad[64];
    act("c-cmd-2", "execute", "{\"prompt\":\"summarise\"}", ok);
    act("c-cmd-2", "execute", "{\"prompt\":\"refuse\"}", no);
    act("c-cmd-2", "execute", "{\"prompt\":\"crash\"}", bad);
    cr_assert_eq(aei_agent_heartbeat(a, &err), AEI_OK, "%s", err.message);
    cr_assert_eq(aei_agent_heartbeat(a, &err), AEI_OK, "%s", err.message);
    expect_acked("c-cmd-2", ok, "succeeded", "{\"seen\":\"summarise\"}");
    expect_acked("c-cmd-2", no, "rejected", "{\"reason\":\"not my kind of task\"}");
    expect_acked("c-cmd-2", bad, "failed", "{\"error\":\"the model is down\"}");
    struct aei_stats st;
    aei_agent_stats(a, &st);
    cr_expect_eq(st.commands, 3, "each command handled once: %llu",
                 (unsigned long long)st.commands);
    cr_expect_eq(st.acks, 3, "acknowledged once each: %llu", (unsigned long long)st.acks);
    cr_expect_eq(st.ack_failures, 0);
    aei_agent_free(a);
}

struct waiter {
    struct aei_agent *a;
    bool returned, go_on;
};

static void *wait_paused(void *arg)
{
    struct waiter *w = arg;
    w->go_on = aei_agent_wait_if_paused(w->a, -1);
    __atomic_store_n(&w->returned, true, __ATOMIC_SEQ_CST);
    return NULL;
}

Test(libaei, pause_resume_and_terminate_are_obeyed_by_default, .init = up, .fini = down)
{
    struct aei_agent_config cfg = aei_agent_config_default(); /* no on_command */
    struct aei_agent *a = agent(srv.address, "c-ctl-1", &cfg);
    struct aei_error err;
    cr_assert_eq(aei_agent_heartbeat(a, &err), AEI_OK, "%s", err.message);
    char pause[64], resume[64], terminate[64];
    act("c-ctl-1", "pause", "{\"reason\":\"look\"}", pause);
    cr_assert_eq(aei_agent_heartbeat(a, &err), AEI_OK, "%s", err.message);
    cr_assert(aei_agent_is_paused(a));
    double t0 = mono();
    cr_expect(aei_agent_wait_if_paused(a, 0.3), "still paused, not terminated: go on later");
    cr_expect(mono() - t0 >= 0.29, "wait_if_paused(0.3) waited %.3f s", mono() - t0);
    struct waiter w = {.a = a};
    pthread_t t;
    pthread_create(&t, NULL, wait_paused, &w);
    nap(0.3);
    cr_expect(!__atomic_load_n(&w.returned, __ATOMIC_SEQ_CST), "a paused agent's loop waits");
    act("c-ctl-1", "resume", NULL, resume);
    cr_assert_eq(aei_agent_heartbeat(a, &err), AEI_OK, "%s", err.message);
    pthread_join(t, NULL);
    cr_expect(w.go_on && !aei_agent_is_paused(a));
    act("c-ctl-1", "terminate", NULL, terminate);
    cr_assert_eq(aei_agent_heartbeat(a, &err), AEI_OK, "%s", err.message);
    cr_expect(aei_agent_is_terminated(a));
    cr_expect(!aei_agent_wait_if_paused(a, -1), "terminated: the work ends");
    expect_acked("c-ctl-1", pause, "succeeded", "null");
    expect_acked("c-ctl-1", resume, "succeeded", "null");
    expect_acked("c-ctl-1", terminate, "succeeded", "null");
    aei_agent_free(a);
}

/* ---- the retry policy against a scripted server ------------------------------------------- */

struct script {
    int fd;
    const char *answers[8]; /* raw HTTP responses, one per connection, in order */
    int n, served;
    char requests[8][160]; /* the request line of each */
};

static void *serve(void *arg)
{
    struct script *s = arg;
    while (s->served < s->n) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            break;
        char buf[8192];
        size_t got = 0;
        /* Read the head and the body (Content-Length) before answering. */
        for (;;) {
            ssize_t r = read(c, buf + got, sizeof buf - 1 - got);
            if (r <= 0)
                break;
            got += (size_t)r;
            buf[got] = '\0';
            char *end = strstr(buf, "\r\n\r\n");
            char *cl = strcasestr(buf, "content-length:");
            if (end && (!cl || got >= (size_t)(end + 4 - buf) + strtoul(cl + 15, NULL, 10)))
                break;
        }
        snprintf(s->requests[s->served], sizeof s->requests[0], "%.*s", (int)strcspn(buf, "\r"),
                 buf);
        const char *answer = s->answers[s->served++];
        if (write(c, answer, strlen(answer)) < 0)
            break;
        close(c);
    }
    return NULL;
}

static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(fd, 8), 0);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    *port = ntohs(sa.sin_port);
    return fd;
}

static const char OK[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: "
                         "close\r\nContent-Length: 15\r\n\r\n{\"commands\":[]}";
static const char E503[] = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
                           "Content-Length: 0\r\n\r\n";
static const char E429[] = "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\n"
                           "Connection: close\r\nContent-Length: 0\r\n\r\n";
static const char E400[] =
    "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: application/json\r\n"
    "Content-Length: 74\r\n\r\n"
    "{\"error\":{\"code\":\"invalid_field\",\"message\":\"bad status\",\"field\":\"status\"}}";

struct recorder {
    double waits[16];
    int n;
    double rnd;
};

static void record_sleep(double s, void *user)
{
    struct recorder *r = user;
    r->waits[r->n++] = s;
}

static double fixed_random(void *user)
{
    return ((struct recorder *)user)->rnd;
}

static void run_script(struct script *s, struct recorder *rec, bool fixed, int *rc,
                       struct aei_error *err)
{
    int port;
    s->fd = listen_any(&port);
    pthread_t t;
    pthread_create(&t, NULL, serve, s);
    char address[64];
    snprintf(address, sizeof address, "127.0.0.1:%d", port);
    struct aei_agent_config cfg = aei_agent_config_default();
    cfg.retry_base_s = 0.1;
    cfg.retry_cap_s = 0.3;
    cfg.sleep = record_sleep;
    cfg.random = fixed ? fixed_random : NULL;
    cfg.user = rec;
    struct aei_agent *a = agent(address, "c-retry-1", &cfg);
    *rc = aei_agent_heartbeat(a, err);
    struct aei_stats st;
    aei_agent_stats(a, &st);
    cr_expect_eq(st.retries, (uint64_t)rec->n);
    aei_agent_free(a);
    pthread_join(t, NULL);
    close(s->fd);
}

Test(libaei_retry, backoff_is_exponential_with_full_jitter_and_capped)
{
    struct script s = {.answers = {E503, E503, E503, E503, OK}, .n = 5};
    struct recorder rec = {.rnd = 0.5};
    struct aei_error err;
    int rc;
    run_script(&s, &rec, true, &rc, &err);
    cr_assert_eq(rc, AEI_OK, "%s", err.message);
    cr_assert_eq(rec.n, 4);
    /* 0.5 * min(0.3, 0.1 * 2^n): 0.05, 0.1, 0.15 (capped), 0.15 */
    double want[] = {0.05, 0.1, 0.15, 0.15};
    for (int i = 0; i < 4; i++)
        cr_expect_float_eq(rec.waits[i], want[i], 1e-9, "wait %d: %f", i, rec.waits[i]);
}

Test(libaei_retry, real_jitter_stays_within_its_bounds)
{
    struct script s = {.answers = {E503, E503, E503, E503, E503, OK}, .n = 6};
    struct recorder rec = {0};
    struct aei_error err;
    int rc;
    run_script(&s, &rec, false, &rc, &err);
    cr_assert_eq(rc, AEI_OK, "%s", err.message);
    cr_assert_eq(rec.n, 5);
    for (int i = 0; i < 5; i++) {
        double bound = fmin(0.3, 0.1 * ldexp(1, i));
        cr_expect(rec.waits[i] >= 0 && rec.waits[i] <= bound, "wait %d: %f not in [0, %f]", i,
                  rec.waits[i], bound);
    }
}

Test(libaei_retry, retry_after_is_honoured_exactly)
{
    struct script s = {.answers = {E429, E503, OK}, .n = 3};
    struct recorder rec = {.rnd = 1.0};
    struct aei_error err;
    int rc;
    run_script(&s, &rec, true, &rc, &err);
    cr_assert_eq(rc, AEI_OK, "%s", err.message);
    cr_assert_eq(rec.n, 2);
    cr_expect_float_eq(rec.waits[0], 2.0, 1e-12, "Retry-After: 2 -> %f", rec.waits[0]);
    cr_expect_float_eq(rec.waits[1], 0.2, 1e-12, "then backoff: %f", rec.waits[1]);
}

Test(libaei_retry, other_4xx_are_not_retried)
{
    struct script s = {.answers = {E400}, .n = 1};
    struct recorder rec = {.rnd = 0.5};
    struct aei_error err;
    int rc;
    run_script(&s, &rec, true, &rc, &err);
    cr_expect_eq(rc, AEI_EREFUSED);
    cr_expect_eq(rec.n, 0);
    cr_expect_eq(s.served, 1);
    cr_expect_eq(err.http_status, 400);
    cr_expect_str_eq(err.code, "invalid_field");
    cr_expect_str_eq(err.field, "status");
}

/* A heartbeat answer handing out command c1 (a pause). */
static const char WITH_C1[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
    "Content-Length: 63\r\n\r\n"
    "{\"commands\":[{\"command_id\":\"c1\",\"action\":\"pause\",\"params\":{}}]}";

struct seen {
    int n;
    char last[256];
};

static enum aei_command_status on_command(const char *json, char *result, size_t size, void *user)
{
    struct seen *s = user;
    s->n++;
    snprintf(s->last, sizeof s->last, "%s", json);
    snprintf(result, size, "{\"n\":%d}", s->n);
    return AEI_COMMAND_SUCCEEDED;
}

Test(libaei_retry, a_lost_acknowledgement_is_sent_again_and_the_command_not_handled_again)
{
    /* heartbeat (c1), its ack refused with 503 (one attempt), heartbeat (c1 again), its ack. */
    struct script s = {.answers = {WITH_C1, E503, WITH_C1, OK}, .n = 4};
    int port;
    s.fd = listen_any(&port);
    pthread_t t;
    pthread_create(&t, NULL, serve, &s);
    char address[64];
    snprintf(address, sizeof address, "127.0.0.1:%d", port);
    struct seen seen = {0};
    struct aei_agent_config cfg = aei_agent_config_default();
    cfg.on_command = on_command;
    cfg.on_log = count_log;
    cfg.user = &seen;
    cfg.max_attempts = 1;
    struct aei_agent *a = agent(address, "c-cmd-1", &cfg);
    struct aei_error err;
    cr_assert_eq(aei_agent_heartbeat(a, &err), AEI_OK, "%s", err.message);
    cr_expect(aei_agent_is_paused(a), "the pause is obeyed by libaei itself");
    cr_assert_eq(aei_agent_heartbeat(a, &err), AEI_OK, "%s", err.message);
    cr_expect_eq(seen.n, 1, "c1 handled once, got %d", seen.n);
    cr_expect(strstr(seen.last, "\"c1\"") && strstr(seen.last, "pause"), "%s", seen.last);
    cr_expect_str_eq(s.requests[1], "POST /api/v0/agents/c-cmd-1/commands/c1/ack HTTP/1.1");
    cr_expect_str_eq(s.requests[3], s.requests[1]);
    struct aei_stats st;
    aei_agent_stats(a, &st);
    cr_expect_eq(st.commands, 1);
    cr_expect_eq(st.acks, 1);
    cr_expect_eq(st.ack_failures, 1);
    aei_agent_free(a);
    pthread_join(t, NULL);
    close(s.fd);
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(libaei, stop_gives_up_after_its_timeout_and_says_what_is_left)
{
    char address[64];
    snprintf(address, sizeof address, "127.0.0.1:%d", free_port()); /* nobody there */
    struct aei_agent_config cfg = aei_agent_config_default();
    cfg.on_log = count_log;
    cfg.retry_base_s = 0.05;
    cfg.retry_cap_s = 0.2;
    struct aei_agent *a = agent(address, "c-stop-1", &cfg);
    struct aei_error err;
    cr_assert_eq(aei_agent_start(a, &err), AEI_OK, "an unreachable server is only logged");
    for (int i = 0; i < 5; i++) {
        struct aei_decision d = step("c-run-stop", NULL, "x");
        cr_assert_eq(aei_trace_emit(a, &d, NULL), AEI_OK);
    }
    double t0 = mono();
    cr_expect_eq(aei_agent_stop(a, 0.5), AEI_ETIMEOUT);
    double took = mono() - t0;
    cr_expect(took >= 0.2 && took < 1.5, "stop took %.3f s for a 0.5 s timeout", took);
    struct aei_stats st;
    aei_agent_stats(a, &st);
    cr_expect_eq(st.queued, 5, "nothing sent, nothing thrown away");
    cr_expect_gt(st.retries, 0);
    aei_agent_free(a);
}

Test(libaei, stop_cuts_a_long_backoff_short)
{
    /* Both threads retry an absent server with the default backoff and a jitter near its top:
     * waits of 0.1, 0.2, 0.4, 0.8, 1.6 then 3.2 s, the last from about 3.1 s to 6.3 s. A stop at
     * 3.5 s with 1 s to go must not wait for a backoff that began before it. */
    char address[64];
    snprintf(address, sizeof address, "127.0.0.1:%d", free_port()); /* nobody there */
    struct recorder rec = {.rnd = 0.99};
    struct aei_agent_config cfg = aei_agent_config_default();
    cfg.on_log = count_log;
    cfg.heartbeat_interval_s = 0.1;
    cfg.random = fixed_random;
    cfg.user = &rec;
    struct aei_agent *a = agent(address, "c-stop-2", &cfg);
    struct aei_error err;
    cr_assert_eq(aei_agent_start(a, &err), AEI_OK, "an unreachable server is only logged");
    struct aei_decision d = step("c-run-stop-2", NULL, "x");
    cr_assert_eq(aei_trace_emit(a, &d, NULL), AEI_OK);
    nap(3.5);
    double t0 = mono();
    cr_expect_eq(aei_agent_stop(a, 1), AEI_ETIMEOUT);
    double took = mono() - t0;
    /* A generous bound for a slow, shared machine; before the fix this took about 2.8 s. */
    cr_expect(took < 2.5, "stop took %.3f s for a 1 s timeout", took);
    struct aei_stats st;
    aei_agent_stats(a, &st);
    cr_expect_eq(st.queued, 1, "nothing sent, nothing thrown away");
    aei_agent_free(a);
}

static void record_jitter(double s, void *user)
{
    struct recorder *r = user;
    if (r->n < 16)
        r->waits[r->n++] = s;
}

/* In a child process: the waits an agent takes retrying an absent server, written to fd. */
static void jitter_child(int fd, const char *address)
{
    struct recorder rec = {0};
    struct aei_agent_config cfg = aei_agent_config_default();
    cfg.server = address;
    cfg.token = FIXTURE_TOKEN;
    cfg.agent_id = "c-jitter";
    cfg.max_attempts = 9;
    cfg.sleep = record_jitter;
    cfg.on_log = count_log;
    cfg.user = &rec;
    struct aei_error err;
    struct aei_agent *a = aei_agent_new(&cfg, &err);
    if (a)
        aei_agent_heartbeat(a, &err);
    aei_agent_free(a);
    ssize_t w = write(fd, &rec, sizeof rec);
    _exit(w == (ssize_t)sizeof rec ? 0 : 1);
}

Test(libaei_retry, jitter_differs_between_processes_and_stays_within_its_bounds)
{
    /* Two processes forked from the same state, as two copies of one agent program are: an
     * unseeded random() gave both the same waits, so they retried in lockstep. */
    char address[64];
    snprintf(address, sizeof address, "127.0.0.1:%d", free_port()); /* nobody there */
    struct recorder got[2];
    for (int i = 0; i < 2; i++) {
        int fds[2];
        cr_assert_eq(pipe(fds), 0);
        fflush(NULL);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            close(fds[0]);
            jitter_child(fds[1], address);
        }
        close(fds[1]);
        cr_assert_eq(read(fds[0], &got[i], sizeof got[i]), (ssize_t)sizeof got[i]);
        close(fds[0]);
        int status;
        waitpid(pid, &status, 0);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(got[i].n, 8, "8 waits between 9 attempts, got %d", got[i].n);
        for (int n = 0; n < 8; n++) {
            double bound = fmin(10, 0.1 * ldexp(1, n));
            cr_expect(got[i].waits[n] >= 0 && got[i].waits[n] < bound,
                      "process %d, wait %d: %f not in [0, %f)", i, n, got[i].waits[n], bound);
        }
    }
    cr_expect(memcmp(got[0].waits, got[1].waits, sizeof got[0].waits) != 0,
              "two processes drew the same jitter: %f %f %f ...", got[0].waits[0], got[0].waits[1],
              got[0].waits[2]);
}
