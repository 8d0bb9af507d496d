/* test_trace_fast.c - the fast parser of decision batches: it takes what agents send, reads it
 * as the jansson path does (the check of tests/fuzz/fuzz_traces.c), and leaves everything
 * unusual or invalid to the jansson path. */
#include "cli/trace_gen.h"
#include "server/trace.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether the fast path takes the body; either way the two paths must agree on it. */
static bool fast_takes(const char *body)
{
    struct decision **ds;
    size_t n;
    bool ok = decisions_parse_fast(body, strlen(body), &ds, &n) == 0;
    if (ok) {
        for (size_t i = 0; i < n; i++) {
            decision_clear(ds[i]);
            free(ds[i]);
        }
        free(ds);
    }
    LLVMFuzzerTestOneInput((const uint8_t *)body, strlen(body)); /* aborts on a difference */
    return ok;
}

#define D(extra)                                                                                   \
    "{\"execution_id\":\"run-1\",\"agent_id\":\"a-1\",\"decision_id\":\"d-1\"" extra "}"

Test(trace_fast, takes_a_generated_batch_as_jansson_reads_it)
{
    struct trace_gen g = {.run = "00112233aabbccdd", .agent = 7, .size = 50, .rng = 12345};
    static char body[1000 * TRACE_GEN_DECISION_MAX + 2];
    for (unsigned n = 1; n <= 1000; n *= 10) {
        cr_assert_gt(trace_gen_batch(&g, n, body, sizeof(body)), 0);
        cr_assert(fast_takes(body), "a batch of %u", n);
    }
}

Test(trace_fast, takes_every_member_in_every_form)
{
    const char *bodies[] = {
        D(""),
        D(",\"parent_decision_id\":null,\"timestamp\":null,\"reasoning_context\":null,"
          "\"confidence_score\":null,\"alternatives_considered\":null,\"selected_outcome\":null,"
          "\"kind\":null,\"labels\":null,\"duration_ms\":null,\"tokens\":null,\"cost_usd\":null"),
        D(",\"parent_decision_id\":\"d-0\",\"timestamp\":\"2026-11-24T15:00:00.123456+01:00\","
          "\"reasoning_context\":\"caf\\u00e9 \\\"quoted\\\" \\\\ tab\\t\xe2\x82\xac "
          "\xf0\x9f\x98\x80\","
          "\"confidence_score\":0,\"selected_outcome\":\"\",\"kind\":\"llm_call\","
          "\"duration_ms\":1.5e3,\"tokens\":0,\"cost_usd\":-0.0"),
        D(",\"reasoning_context\":{\"goal\":\"x\",\"steps\":[1,2.50,{\"a\":[]},[],{}],"
          "\"ok\":true,\"no\":false,\"nil\":null,\"nested\":{\"goal\":\"same key, other object\"}},"
          "\"confidence_score\":100"),
        D(",\"alternatives_considered\":[{\"option\":\"a\"},{\"score\":null,\"option\":\"b\","
          "\"reason_rejected\":\"too slow\"},{\"option\":\"c\",\"score\":-3.25e-2}]"),
        D(",\"alternatives_considered\":[]"),
        D(",\"labels\":{\"zeta\":\"1\",\"alpha\":\"2\",\"mid\":\"\",\"\xc3\xa9t\xc3\xa9\":\"x\"}"),
        D(",\"labels\":{}"),
        D(",\"labels\":{\"c\":\"form\\ffeed back\\bspace \\u000b \\u001f\"}"),
        "[" D("") ",{\"execution_id\":\"run-1\",\"agent_id\":\"a-1\",\"decision_id\":\"d-2\","
                  "\"parent_decision_id\":\"d-1\"}]",
        " \r\n\t[ " D("") " ]\n",
        "{\"execution_id\":\"run-1\",\"agent_id\":\"a-1\"}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        cr_assert(fast_takes(bodies[i]), "body %zu: %s", i, bodies[i]);
}

Test(trace_fast, leaves_invalid_and_unusual_bodies_to_the_jansson_path)
{
    const char *bodies[] = {
        "",
        "   ",
        "[]",
        "null",
        "42",
        "[1]",
        "[" D("") ",]",
        D("") " x",
        D("") "\":0",
        D("") D(""),
        D(",\"confidence_score\":01"),
        D(",\"confidence_score\":101"),
        D(",\"confidence_score\":-1"),
        D(",\"confidence_score\":\"80\""),
        D(",\"tokens\":123456789012345678901234"),
        D(",\"tokens\":1e999"),
        D(",\"cost_usd\":1.5e300"),
        D(",\"duration_ms\":1000000000000001"),
        D(",\"reasoning_context\":\"\\ud800\""),
        D(",\"reasoning_context\":\"\\uD83D\\uDE00\""),
        /* A lone low surrogate (found by fuzz_traces): jansson refuses it. */
        D(",\"reasoning_context\":\"caf\\udddd\""),
        D(",\"reasoning_context\":\"\\uDC00\""),
        D(",\"reasoning_context\":\"a\\u0000b\""),
        D(",\"reasoning_context\":[1]"),
        D(",\"reasoning_context\":{\"k\":1,\"k\":2}"),
        D(",\"reasoning_context\":{\"\":1}"),
        D(",\"reasoning_context\":\"\xc0\xaf\""),
        D(",\"reasoning_context\":\"\xed\xa0\x80\""),
        D(",\"reasoning_context\":\"\xff\""),
        "\v" D(""),
        D(",\"execution_id\":\"run-2\""),
        D(",\"colour\":\"red\""),
        D(",\"decision_id\":\"has space\""),
        D(",\"parent_decision_id\":\"d-1\""),
        D(",\"timestamp\":\"yesterday\""),
        D(",\"kind\":\"not a kind\""),
        D(",\"alternatives_considered\":[{\"reason_rejected\":\"no option\"}]"),
        D(",\"alternatives_considered\":[{\"option\":null}]"),
        D(",\"alternatives_considered\":[{\"option\":\"a\",\"option\":\"b\"}]"),
        D(",\"alternatives_considered\":[{\"option\":\"a\",\"why\":\"b\"}]"),
        D(",\"alternatives_considered\":[\"a\"]"),
        D(",\"labels\":{\"a\":1}"),
        D(",\"labels\":{\"a\":\"1\",\"a\":\"2\"}"),
        D(",\"labels\":[]"),
        "{\"agent_id\":\"a-1\"}",
        "{\"execution_id\":\"run-1\",\"agent_id\":null}",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
        D(",\"reasoning_context\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{"
          "\"a\":"
          "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{"
          "\"a\":"
          "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}"
          "}}"),
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        cr_assert_not(fast_takes(bodies[i]), "body %zu: %s", i, bodies[i]);
}

Test(trace_fast, leaves_batches_over_the_limit_and_contexts_near_it_to_the_jansson_path)
{
    struct trace_gen g = {.run = "00112233aabbccdd", .agent = 7, .size = 50, .rng = 99};
    static char body[1001 * TRACE_GEN_DECISION_MAX + 2];
    cr_assert_gt(trace_gen_batch(&g, 1001, body, sizeof(body)), 0);
    cr_assert_not(fast_takes(body), "1001 decisions");

    /* A context string just under the limit as jansson measures it. */
    static char big[TRACE_CONTEXT_MAX + 200];
    char *text = malloc(TRACE_CONTEXT_MAX);
    memset(text, 'x', TRACE_CONTEXT_MAX - 10);
    text[TRACE_CONTEXT_MAX - 10] = '\0';
    snprintf(big, sizeof(big), D(",\"reasoning_context\":\"%s\""), text);
    cr_assert_not(fast_takes(big), "a context within 256 bytes of the limit");
    text[1000] = '\0';
    snprintf(big, sizeof(big), D(",\"reasoning_context\":\"%s\""), text);
    cr_assert(fast_takes(big), "a context of 1000 characters");
    free(text);
}
