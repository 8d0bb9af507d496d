/* test_heartbeat.c - heartbeat validation and its field-naming errors */
#include "aei/error.h"
#include "server/heartbeat.h"

#include <criterion/criterion.h>
#include <string.h>

/* Validates `text`; on failure returns the problem, on success checks nothing more. */
static int check(const char *text, struct heartbeat *hb, struct problem *pb)
{
    json_error_t err;
    json_t *doc = json_loads(text, 0, &err);
    cr_assert_not_null(doc, "test JSON is broken: %s: %s", text, err.text);
    int rc = hb_from_json(doc, hb, pb);
    json_decref(doc);
    return rc;
}

static void expect_field(const char *text, const char *field, const char *fragment)
{
    struct heartbeat hb;
    struct problem pb;
    cr_assert_eq(check(text, &hb, &pb), AEI_EINVAL, "accepted %s", text);
    cr_assert_str_eq(pb.code, "invalid_field");
    cr_assert_str_eq(pb.field, field, "for %s: %s", text, pb.message);
    cr_assert(strstr(pb.message, fragment), "for %s: message \"%s\" lacks \"%s\"", text, pb.message,
              fragment);
}

Test(heartbeat, accepts_a_full_heartbeat)
{
    struct heartbeat hb;
    struct problem pb;
    int rc = check("{\"agent_id\":\"researcher-1\",\"status\":\"processing\","
                   "\"metrics\":{\"cpu_pct\":42.5,\"mem_pct\":61,\"tokens_per_min\":1200,"
                   "\"cost_usd\":0.84,\"confidence\":87},\"parent_agent_id\":\"planner\","
                   "\"child_agent_ids\":[\"w-1\",\"w-2\"],\"timestamp\":\"2001-01-01T00:00:00Z\","
                   "\"name\":\"Researcher\",\"labels\":{\"z\":\"1\",\"a\":\"2\"},"
                   "\"schema_version\":\"0\"}",
                   &hb, &pb);
    cr_assert_eq(rc, 0, "%s", pb.message);
    cr_assert_str_eq(hb.agent_id, "researcher-1");
    cr_assert_eq(hb.status, HB_PROCESSING);
    cr_assert(hb.has_metric[HB_CPU] && hb.metric[HB_CPU] == 42.5);
    cr_assert(hb.has_metric[HB_CONFIDENCE] && hb.metric[HB_CONFIDENCE] == 87);
    cr_assert_str_eq(hb.parent_agent_id, "planner");
    cr_assert_str_eq(hb.children_json, "[\"w-1\",\"w-2\"]");
    cr_assert_str_eq(hb.labels_json, "{\"a\":\"2\",\"z\":\"1\"}", "labels are stored sorted");
    cr_assert(hb.has_agent_ts);
    cr_assert_eq(hb.agent_ts, 978307200000000LL);
    cr_assert_str_eq(hb.name, "Researcher");
    hb_clear(&hb);
}

Test(heartbeat, minimal_heartbeat_has_unknown_metrics_and_empty_links)
{
    struct heartbeat hb;
    struct problem pb;
    cr_assert_eq(
        check("{\"agent_id\":\"a\",\"status\":\"idle\",\"metrics\":{\"cpu_pct\":null}}", &hb, &pb),
        0);
    for (int i = 0; i < HB_METRIC_COUNT; i++)
        cr_assert_not(hb.has_metric[i]);
    cr_assert_str_eq(hb.children_json, "[]");
    cr_assert_str_eq(hb.labels_json, "{}");
    cr_assert_null(hb.parent_agent_id);
    cr_assert_not(hb.has_agent_ts);
    json_t *j = hb_agent_to_json(&hb);
    cr_assert(json_is_null(json_object_get(json_object_get(j, "metrics"), "cpu_pct")));
    cr_assert(json_is_string(json_object_get(j, "last_heartbeat")));
    cr_assert_null(json_object_get(j, "server_ts"));
    json_decref(j);
    hb_clear(&hb);
}

Test(heartbeat, names_the_field_and_what_came)
{
    expect_field("[]", "(body)", "got an array");
    expect_field("{\"status\":\"idle\"}", "agent_id", "got nothing");
    expect_field("{\"agent_id\":\"a\"}", "status", "one of idle");
    expect_field("{\"agent_id\":\"a b\",\"status\":\"idle\"}", "agent_id", "got \"a b\"");
    expect_field("{\"agent_id\":7,\"status\":\"idle\"}", "agent_id", "got 7");
    expect_field("{\"agent_id\":\"a\",\"status\":\"busy\"}", "status", "got \"busy\"");
    expect_field("{\"agent_id\":\"a\",\"status\":\"idle\",\"metrics\":{\"cpu_pct\":\"high\"}}",
                 "metrics.cpu_pct", "expected a number from 0 to 100, got \"high\"");
    expect_field("{\"agent_id\":\"a\",\"status\":\"idle\",\"metrics\":{\"mem_pct\":100.5}}",
                 "metrics.mem_pct", "got 100.5");
    expect_field("{\"agent_id\":\"a\",\"status\":\"idle\",\"metrics\":{\"cost_usd\":-1}}",
                 "metrics.cost_usd", "expected a number from 0 to 1e15, got -1");
    /* The largest doubles would be stored, then printed in 15 digits past the largest double. */
    expect_field("{\"agent_id\":\"a\",\"status\":\"idle\",\"metrics\":"
                 "{\"cost_usd\":1.7976931348623157e308}}",
                 "metrics.cost_usd", "from 0 to 1e15");
    expect_field("{\"agent_id\":\"a\",\"status\":\"idle\",\"metrics\":{\"tokens_per_min\":1e16}}",
                 "metrics.tokens_per_min", "from 0 to 1e15");
    expect_field("{\"agent_id\":\"a\",\"status\":\"idle\",\"metrics\":{\"confidence\":101}}",
                 "metrics.confidence", "from 0 to 100");
    expect_field("{\"agent_id\":\"a\",\"status\":\"idle\",\"metrics\":{\"gpu\":1}}", "metrics.gpu",
                 "no such member");
    expect_field("{\"agent_id\":\"a\",\"status\":\"idle\",\"metrics\":[]}", "metrics", "an object");
    expect_field("{\"agent_id\":\"a\",\"status\":\"idle\",\"child_agent_ids\":[\"ok\",\"no/\"]}",
                 "child_agent_ids[1]", "got \"no/\"");
    expect_field("{\"agent_id\":\"a\",\"status\":\"idle\",\"parent_agent_id\":\"a\"}",
                 "parent_agent_id", "other than agent_id");
    expect_field("{\"agent_id\":\"a\",\"status\":\"idle\",\"timestamp\":\"yesterday\"}",
                 "timestamp", "RFC 3339");
    expect_field("{\"agent_id\":\"a\",\"status\":\"idle\",\"labels\":{\"k\":1}}", "labels.k",
                 "a string");
    expect_field("{\"agent_id\":\"a\",\"status\":\"idle\",\"schema_version\":\"1\"}",
                 "schema_version", "\"0\"");
    expect_field("{\"agent_id\":\"a\",\"status\":\"idle\",\"sttus\":\"idle\"}", "sttus",
                 "no such member");
}

Test(heartbeat, enforces_size_limits)
{
    char text[2048];
    char name[300];
    memset(name, 'n', 257);
    name[257] = '\0';
    snprintf(text, sizeof(text), "{\"agent_id\":\"a\",\"status\":\"idle\",\"name\":\"%s\"}", name);
    expect_field(text, "name", "at most 256");
    name[256] = '\0';
    snprintf(text, sizeof(text), "{\"agent_id\":\"a\",\"status\":\"idle\",\"name\":\"%s\"}", name);
    struct heartbeat hb;
    struct problem pb;
    cr_assert_eq(check(text, &hb, &pb), 0, "256 characters must pass");
    hb_clear(&hb);

    json_t *doc = json_pack("{s:s, s:s}", "agent_id", "a", "status", "idle");
    json_t *kids = json_array();
    for (int i = 0; i < 1001; i++)
        json_array_append_new(kids, json_string("k"));
    json_object_set_new(doc, "child_agent_ids", kids);
    cr_assert_eq(hb_from_json(doc, &hb, &pb), AEI_EINVAL);
    cr_assert_str_eq(pb.field, "child_agent_ids");
    json_decref(doc);
}

Test(heartbeat, a_member_with_an_empty_name_is_named_too)
{
    expect_field("{\"agent_id\":\"a\",\"status\":\"idle\",\"\":1}", "\"\"", "no such member");
}
