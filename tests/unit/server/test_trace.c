/* test_trace.c - decision validation and its errors by index and field */
#include "aei/error.h"
#include "server/trace.h"

#include <criterion/criterion.h>
#include <string.h>

static int check(const char *text, long i, struct decision *d, struct problem *pb)
{
    json_error_t err;
    json_t *doc = json_loads(text, JSON_DECODE_ANY, &err);
    cr_assert_not_null(doc, "test JSON is broken: %s: %s", text, err.text);
    int rc = decision_from_json(doc, i, d, pb);
    json_decref(doc);
    return rc;
}

static void expect_field(const char *text, long i, const char *field, const char *fragment)
{
    struct decision d;
    struct problem pb;
    cr_assert_eq(check(text, i, &d, &pb), AEI_EINVAL, "accepted %s", text);
    cr_assert_str_eq(pb.code, "invalid_field");
    cr_assert_str_eq(pb.field, field, "for %s: %s", text, pb.message);
    cr_assert(strstr(pb.message, fragment), "for %s: message \"%s\" lacks \"%s\"", text, pb.message,
              fragment);
}

#define BASE "\"execution_id\":\"run-1\",\"agent_id\":\"planner\""

Test(trace, accepts_a_full_decision)
{
    struct decision d;
    struct problem pb;
    int rc = check("{\"decision_id\":\"6f1c2a44-9d1e-4c3b-8f0a-2b7e5d9c1a01\"," BASE
                   ",\"parent_decision_id\":\"root-1\",\"timestamp\":\"2026-11-24T15:00:00Z\","
                   "\"reasoning_context\":{\"goal\":\"find sources\",\"step\":2},"
                   "\"confidence_score\":87.5,\"alternatives_considered\":[{\"option\":\"web\","
                   "\"reason_rejected\":\"slow\",\"score\":0.2},{\"option\":\"cache\"}],"
                   "\"selected_outcome\":\"search the index\",\"kind\":\"tool_selection\","
                   "\"labels\":{\"team\":\"search\"},\"duration_ms\":12.5,\"tokens\":340,"
                   "\"cost_usd\":0.0021}",
                   -1, &d, &pb);
    cr_assert_eq(rc, 0, "%s", pb.message);
    cr_assert_str_eq(d.decision_id, "6f1c2a44-9d1e-4c3b-8f0a-2b7e5d9c1a01");
    cr_assert_str_eq(d.execution_id, "run-1");
    cr_assert_str_eq(d.parent_id, "root-1");
    cr_assert(d.has_agent_ts);
    cr_assert_str_eq(d.context_json, "{\"goal\":\"find sources\",\"step\":2}");
    cr_assert(d.has_confidence && d.confidence == 87.5);
    cr_assert_str_eq(d.kind, "tool_selection");
    cr_assert_str_eq(d.outcome, "search the index");
    cr_assert(strstr(d.alternatives_json, "\"reason_rejected\":\"slow\""));
    cr_assert(d.has_duration && d.has_tokens && d.has_cost);
    decision_clear(&d);
}

Test(trace, minimal_decision_gets_defaults)
{
    struct decision d;
    struct problem pb;
    cr_assert_eq(check("{" BASE "}", 0, &d, &pb), 0, "%s", pb.message);
    cr_assert_str_eq(d.decision_id, "", "left for the server to assign");
    cr_assert_str_eq(d.parent_id, "", "a root");
    cr_assert_str_eq(d.alternatives_json, "[]");
    cr_assert_str_eq(d.labels_json, "{}");
    cr_assert_null(d.context_json);
    decision_clear(&d);
}

Test(trace, text_context_is_kept_as_a_json_string)
{
    struct decision d;
    struct problem pb;
    cr_assert_eq(check("{" BASE ",\"reasoning_context\":\"because \\\"x\\\"\\n\"}", -1, &d, &pb),
                 0);
    cr_assert_str_eq(d.context_json, "\"because \\\"x\\\"\\n\"");
    decision_clear(&d);
}

Test(trace, errors_name_the_index_and_field)
{
    expect_field("{\"agent_id\":\"a\"}", 3, "[3].execution_id", "expected a string");
    expect_field("{\"execution_id\":\"e\"}", -1, "agent_id", "expected a string");
    expect_field("{" BASE ",\"confidence_score\":101}", 7, "[7].confidence_score", "got 101");
    expect_field("{" BASE ",\"confidence_score\":\"high\"}", -1, "confidence_score",
                 "got \"high\"");
    expect_field("{" BASE ",\"decision_id\":\"has space\"}", 0, "[0].decision_id",
                 "1-128 characters");
    expect_field("{" BASE ",\"parent_decision_id\":5}", 0, "[0].parent_decision_id", "or null");
    expect_field("{" BASE ",\"timestamp\":\"yesterday\"}", 1, "[1].timestamp", "RFC 3339");
    expect_field("{" BASE ",\"reasoning_context\":[1,2]}", 2, "[2].reasoning_context",
                 "a string or a JSON object");
    expect_field("{" BASE ",\"alternatives_considered\":{}}", 0, "[0].alternatives_considered",
                 "an array");
    expect_field("{" BASE ",\"alternatives_considered\":[{\"option\":\"a\"},5]}", 0,
                 "[0].alternatives_considered[1]", "an object");
    expect_field("{" BASE ",\"alternatives_considered\":[{\"reason_rejected\":\"x\"}]}", 0,
                 "[0].alternatives_considered[0].option", "naming the option");
    expect_field("{" BASE ",\"alternatives_considered\":[{\"option\":\"a\",\"why\":1}]}", 0,
                 "[0].alternatives_considered[0].why", "no such member");
    expect_field("{" BASE ",\"alternatives_considered\":[{\"option\":\"a\",\"score\":\"x\"}]}", 0,
                 "[0].alternatives_considered[0].score", "a number");
    expect_field("{" BASE ",\"kind\":\"llm call\"}", 0, "[0].kind", "such as llm_call");
    expect_field("{" BASE ",\"labels\":{\"k\":1}}", 4, "[4].labels.k", "a string");
    expect_field("{" BASE ",\"tokens\":-1}", 0, "[0].tokens", "a number from 0 to 1e15, or null");
    expect_field("{" BASE ",\"cost_usd\":1.7976931348623157e308}", 0, "[0].cost_usd", "to 1e15");
    expect_field("{" BASE ",\"duration_ms\":1e16}", 0, "[0].duration_ms", "to 1e15");
    expect_field("{" BASE ",\"colour\":\"red\"}", 9, "[9].colour", "no such member");
    expect_field("{" BASE ",\"decision_id\":\"d\",\"parent_decision_id\":\"d\"}", 0,
                 "[0].parent_decision_id", "other than decision_id");
    expect_field("[1]", 5, "[5]", "a decision object");
}

Test(trace, reasoning_context_is_size_limited)
{
    size_t n = TRACE_CONTEXT_MAX + 10;
    char *text = malloc(n + 100);
    int len = sprintf(text, "{" BASE ",\"reasoning_context\":\"");
    memset(text + len, 'x', n);
    strcpy(text + len + n, "\"}");
    expect_field(text, 0, "[0].reasoning_context", "at most 16384 bytes");
    free(text);
}

Test(trace, stored_decision_renders_with_depth)
{
    struct decision d;
    struct problem pb;
    cr_assert_eq(check("{" BASE ",\"decision_id\":\"d1\",\"confidence_score\":50}", -1, &d, &pb),
                 0);
    d.server_ts = 1767225600000000LL;
    d.path = strdup("00000000000000010000000000000002");
    d.depth = 1;
    struct buf text = {0};
    decision_write(&text, &d, false);
    json_t *o = json_loads(text.data, 0, NULL);
    cr_assert_not_null(o, "%s", text.data);
    buf_free(&text);
    cr_assert_eq(json_integer_value(json_object_get(o, "depth")), 1);
    cr_assert_float_eq(json_number_value(json_object_get(o, "confidence_score")), 50, 1e-9);
    cr_assert_str_eq(json_string_value(json_object_get(o, "timestamp")),
                     "2026-01-01T00:00:00.000000Z");
    cr_assert(json_is_null(json_object_get(o, "parent_decision_id")));
    cr_assert(json_is_array(json_object_get(o, "alternatives_considered")));
    json_decref(o);
    decision_clear(&d);
}

Test(trace, execution_summary_has_mean_confidence)
{
    struct execution e = {.execution_id = "run-1",
                          .agent_id = "a",
                          .status = EXEC_RUNNING,
                          .started = 1767225600000000LL,
                          .decisions = 4,
                          .confidence_n = 2,
                          .confidence_sum = 150,
                          .cost_usd = 0.5};
    json_t *o = execution_to_json(&e);
    cr_assert_float_eq(json_number_value(json_object_get(o, "mean_confidence")), 75.0, 1e-9);
    cr_assert_str_eq(json_string_value(json_object_get(o, "status")), "running");
    cr_assert(json_is_null(json_object_get(o, "ended")));
    json_decref(o);
}

/* A decision as GET and the export give it goes back in as it is: agent_ts is the agent's clock,
 * the server time in timestamp and the depth are checked and ignored. */
Test(trace, a_stored_decision_posts_back)
{
    struct decision d;
    struct problem pb;
    int rc = check("{" BASE ",\"timestamp\":\"2026-11-24T15:00:00.123456Z\","
                   "\"agent_ts\":\"2001-01-01T00:00:00Z\",\"depth\":3}",
                   -1, &d, &pb);
    cr_assert_eq(rc, 0, "%s", pb.message);
    cr_assert(d.has_agent_ts);
    cr_assert_eq(d.agent_ts, 978307200000000LL, "agent_ts, not the server's timestamp");
    decision_clear(&d);
    rc = check("{" BASE ",\"agent_ts\":null,\"timestamp\":\"2026-11-24T15:00:00Z\",\"depth\":null}",
               -1, &d, &pb);
    cr_assert_eq(rc, 0, "%s", pb.message);
    cr_assert(!d.has_agent_ts, "agent_ts null: no agent clock, whatever timestamp says");
    decision_clear(&d);
    expect_field("{" BASE ",\"depth\":-1}", -1, "depth", "0 to 255");
    expect_field("{" BASE ",\"depth\":\"2\"}", -1, "depth", "0 to 255");
    expect_field("[{" BASE ",\"agent_ts\":\"yesterday\"}]", -1, "(body)", "decision object");
    expect_field("{" BASE ",\"agent_ts\":\"yesterday\"}", 2, "[2].agent_ts", "RFC 3339");
    expect_field("{" BASE ",\"agent_ts\":null,\"timestamp\":\"noon\"}", -1, "timestamp",
                 "RFC 3339");
}
