/* fuzz_traces.c - libFuzzer target: the two parsers of POST /api/v0/traces on the same body.
 *
 * The fast path (decisions_parse_fast, yajl) may refuse anything, but what it accepts the
 * jansson path (json_parse_body + decision_from_json) must accept too, with the very same
 * decisions. tests/unit/server/test_trace_fast.c runs this check on chosen bodies. */
#include "server/trace.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Two JSON texts (or NULLs) that mean the same value. */
static bool same_json(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    json_t *x = json_loads(a, JSON_DECODE_ANY, NULL), *y = json_loads(b, JSON_DECODE_ANY, NULL);
    bool same = x && y && json_equal(x, y);
    json_decref(x);
    json_decref(y);
    return same;
}

static bool same_text(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_number(bool has_a, double a, bool has_b, double b)
{
    return has_a == has_b && (!has_a || a == b);
}

static bool same_decision(const struct decision *a, const struct decision *b)
{
    return strcmp(a->decision_id, b->decision_id) == 0 &&
           strcmp(a->execution_id, b->execution_id) == 0 && strcmp(a->agent_id, b->agent_id) == 0 &&
           strcmp(a->parent_id, b->parent_id) == 0 && a->has_agent_ts == b->has_agent_ts &&
           (!a->has_agent_ts || a->agent_ts == b->agent_ts) &&
           same_json(a->context_json, b->context_json) &&
           same_number(a->has_confidence, a->confidence, b->has_confidence, b->confidence) &&
           same_json(a->alternatives_json, b->alternatives_json) &&
           same_text(a->outcome, b->outcome) && same_text(a->kind, b->kind) &&
           same_text(a->labels_json, b->labels_json) && /* both sorted and compact */
           same_number(a->has_duration, a->duration_ms, b->has_duration, b->duration_ms) &&
           same_number(a->has_tokens, a->tokens, b->has_tokens, b->tokens) &&
           same_number(a->has_cost, a->cost_usd, b->has_cost, b->cost_usd);
}

static void fail(const char *why, const uint8_t *data, size_t size)
{
    fprintf(stderr, "fuzz_traces: %s for the body: %.*s\n", why, (int)(size > 2000 ? 2000 : size),
            (const char *)data);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct decision **fast;
    size_t n;
    if (decisions_parse_fast((const char *)data, size, &fast, &n) != 0)
        return 0;
    struct problem pb;
    json_t *doc = json_parse_body((const char *)data, size, &pb);
    if (!doc)
        fail("the fast path accepted what jansson cannot parse", data, size);
    bool batch = json_is_array(doc);
    if ((batch ? json_array_size(doc) : 1) != n || n == 0 || n > TRACE_BATCH_MAX)
        fail("the fast path read another number of decisions", data, size);
    for (size_t i = 0; i < n; i++) {
        struct decision slow;
        if (decision_from_json(batch ? json_array_get(doc, i) : doc, batch ? (long)i : -1, &slow,
                               &pb) != 0)
            fail(pb.message, data, size);
        if (!same_decision(fast[i], &slow))
            fail("the two paths read a decision differently", data, size);
        decision_clear(&slow);
        decision_clear(fast[i]);
        free(fast[i]);
    }
    free(fast);
    json_decref(doc);
    return 0;
}
