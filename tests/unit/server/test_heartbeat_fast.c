/* test_heartbeat_fast.c - the fast parser of heartbeats: it takes what agents send, reads it as
 * the jansson path does (the check of tests/fuzz/fuzz_heartbeat.c), and leaves everything
 * unusual or invalid to the jansson path. */
#include "server/heartbeat.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether the fast path takes the body; either way the two paths must agree on it. */
static bool fast_takes(const char *body)
{
    struct heartbeat hb;
    bool ok = hb_parse_fast(body, strlen(body), &hb) == 0;
    if (ok)
        hb_clear(&hb);
    LLVMFuzzerTestOneInput((const uint8_t *)body, strlen(body)); /* aborts on a difference */
    return ok;
}

#define HB(extra) "{\"agent_id\":\"a-1\",\"status\":\"idle\"" extra "}"

Test(heartbeat_fast, reads_what_an_agent_sends)
{
    const char *body =
        "{\"agent_id\":\"bench-000042\",\"status\":\"processing\",\"metrics\":{\"cpu_pct\":12.5,"
        "\"mem_pct\":40.0,\"tokens_per_min\":1234,\"cost_usd\":0.0123,\"confidence\":77},"
        "\"parent_agent_id\":\"bench-000040\",\"child_agent_ids\":[\"c-1\",\"c-2\"],"
        "\"timestamp\":\"2026-11-25T03:00:00.123456Z\",\"name\":\"planner\","
        "\"labels\":{\"zone\":\"eu\",\"app\":\"x\"},\"schema_version\":\"0\"}";
    struct heartbeat hb;
    cr_assert_eq(hb_parse_fast(body, strlen(body), &hb), 0);
    cr_assert_str_eq(hb.agent_id, "bench-000042");
    cr_assert_eq(hb.status, HB_PROCESSING);
    cr_assert(hb.has_metric[HB_CPU] && hb.metric[HB_CPU] == 12.5);
    cr_assert(hb.has_metric[HB_TPM] && hb.metric[HB_TPM] == 1234);
    cr_assert(hb.has_metric[HB_CONFIDENCE] && hb.metric[HB_CONFIDENCE] == 77);
    cr_assert_str_eq(hb.parent_agent_id, "bench-000040");
    cr_assert_str_eq(hb.children_json, "[\"c-1\",\"c-2\"]");
    cr_assert_str_eq(hb.name, "planner");
    cr_assert_str_eq(hb.labels_json, "{\"app\":\"x\",\"zone\":\"eu\"}");
    cr_assert(hb.has_agent_ts);
    hb_clear(&hb);
    cr_assert(fast_takes(body));
}

Test(heartbeat_fast, takes_every_member_in_every_form)
{
    const char *bodies[] = {
        HB(""),
        HB(",\"metrics\":null,\"parent_agent_id\":null,\"child_agent_ids\":null,"
           "\"timestamp\":null,\"name\":null,\"labels\":null"),
        HB(",\"metrics\":{},\"child_agent_ids\":[],\"labels\":{},\"name\":\"\""),
        HB(",\"metrics\":{\"cpu_pct\":null,\"mem_pct\":0,\"tokens_per_min\":-0,"
           "\"cost_usd\":-0.0,\"confidence\":100}"),
        HB(",\"metrics\":{\"cpu_pct\":1e2,\"mem_pct\":0.5E1,\"tokens_per_min\":999999999999999,"
           "\"cost_usd\":1e15}"),
        HB(",\"timestamp\":\"2026-11-24T15:00:00.123456+01:00\",\"name\":\"caf\\u00e9 \\\"q\\\" "
           "\xe2\x82\xac\""),
        HB(",\"labels\":{\"zeta\":\"1\",\"alpha\":\"2\",\"mid\":\"\",\"\xc3\xa9t\xc3\xa9\":"
           "\"tab\\tnew\\nline\\u0001\"}"),
        " \r\n\t" HB(",\"schema_version\":\"0\"") "\n ",
        "{\"status\":\"complete\",\"agent_id\":\"A.b_c:d-9\",\"child_agent_ids\":[\"x\"]}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        cr_assert(fast_takes(bodies[i]), "body %zu: %s", i, bodies[i]);
}

Test(heartbeat_fast, leaves_invalid_and_unusual_bodies_to_the_jansson_path)
{
    const char *bodies[] = {
        "",
        "  ",
        "[]",
        "null",
        "42",
        "\"a\"",
        "{}",
        HB("") " x",
        HB("") "\":0",
        HB("") HB(""),
        "{\"agent_id\":\"a-1\"}",
        "{\"status\":\"idle\"}",
        HB(",\"agent_id\":\"a-2\""),
        HB(",\"colour\":\"red\""),
        HB(",\"\":1"),
        "{\"agent_id\":\"has space\",\"status\":\"idle\"}",
        "{\"agent_id\":null,\"status\":\"idle\"}",
        "{\"agent_id\":\"a-1\",\"status\":\"sleeping\"}",
        "{\"agent_id\":\"a-1\",\"status\":null}",
        "{\"agent_id\":\"a-1\",\"status\":\"idle\\u0000\"}",
        HB(",\"metrics\":{\"cpu_pct\":101}"),
        HB(",\"metrics\":{\"cpu_pct\":-1}"),
        HB(",\"metrics\":{\"cpu_pct\":01}"),
        HB(",\"metrics\":{\"cpu_pct\":\"5\"}"),
        HB(",\"metrics\":{\"cpu_pct\":true}"),
        HB(",\"metrics\":{\"cpu_pct\":1,\"cpu_pct\":2}"),
        HB(",\"metrics\":{\"gpu_pct\":1}"),
        HB(",\"metrics\":{\"tokens_per_min\":123456789012345678901234}"),
        HB(",\"metrics\":{\"cost_usd\":1e999}"),
        HB(",\"metrics\":{\"cost_usd\":1.5e300}"),
        HB(",\"metrics\":{\"tokens_per_min\":1000000000000001}"),
        HB(",\"metrics\":[]"),
        HB(",\"metrics\":{\"cpu_pct\":{}}"),
        HB(",\"parent_agent_id\":\"a-1\""),
        HB(",\"parent_agent_id\":\"\""),
        HB(",\"child_agent_ids\":[\"ok\",\"not ok\"]"),
        HB(",\"child_agent_ids\":[null]"),
        HB(",\"child_agent_ids\":[[]]"),
        HB(",\"child_agent_ids\":{}"),
        HB(",\"timestamp\":\"yesterday\""),
        HB(",\"timestamp\":5"),
        HB(",\"name\":5"),
        HB(",\"name\":\"\\ud800\""),
        HB(",\"name\":\"\\uD83D\\uDE00\""),
        HB(",\"name\":\"\xc0\xaf\""),
        HB(",\"name\":\"\xff\""),
        HB(",\"labels\":{\"a\":1}"),
        HB(",\"labels\":{\"a\":\"1\",\"a\":\"2\"}"),
        HB(",\"labels\":{\"\":\"1\"}"),
        HB(",\"labels\":[]"),
        HB(",\"labels\":{\"a\":{}}"),
        HB(",\"schema_version\":\"1\""),
        HB(",\"schema_version\":0"),
        HB(",\"schema_version\":null"),
        "\v" HB(""),
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        cr_assert_not(fast_takes(bodies[i]), "body %zu: %s", i, bodies[i]);
}

Test(heartbeat_fast, leaves_long_names_and_many_children_or_labels_to_the_jansson_path)
{
    static char body[40000];
    char name[HB_NAME_MAX + 2];
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    snprintf(body, sizeof(body), HB(",\"name\":\"%s\""), name);
    cr_assert_not(fast_takes(body), "a name of %d characters", HB_NAME_MAX + 1);
    name[HB_NAME_MAX] = '\0';
    snprintf(body, sizeof(body), HB(",\"name\":\"%s\""), name);
    cr_assert(fast_takes(body), "a name of %d characters", HB_NAME_MAX);

    for (int n = HB_CHILDREN_MAX; n <= HB_CHILDREN_MAX + 1; n++) {
        size_t len = (size_t)snprintf(body, sizeof(body),
                                      "{\"agent_id\":\"a\",\"status\":\"idle\","
                                      "\"child_agent_ids\":[");
        for (int i = 0; i < n; i++)
            len += (size_t)snprintf(body + len, sizeof(body) - len, "%s\"c%d\"", i ? "," : "", i);
        snprintf(body + len, sizeof(body) - len, "]}");
        cr_assert_eq(fast_takes(body), n <= HB_CHILDREN_MAX, "%d children", n);
    }
    for (int n = HB_LABELS_MAX; n <= HB_LABELS_MAX + 1; n++) {
        size_t len = (size_t)snprintf(body, sizeof(body),
                                      "{\"agent_id\":\"a\",\"status\":\"idle\",\"labels\":{");
        for (int i = 0; i < n; i++)
            len += (size_t)snprintf(body + len, sizeof(body) - len, "%s\"k%d\":\"v\"", i ? "," : "",
                                    i);
        snprintf(body + len, sizeof(body) - len, "}}");
        cr_assert_eq(fast_takes(body), n <= HB_LABELS_MAX, "%d labels", n);
    }
}
