/* fuzz_heartbeat.c - libFuzzer target: any request body through both heartbeat parsers,
 * validation and back.
 *
 * The fast path (hb_parse_fast, yajl) may refuse anything, but what it accepts the jansson path
 * (json_parse_body + hb_from_json) must accept too, with the very same heartbeat.
 * tests/unit/server/test_heartbeat_fast.c runs this check on chosen bodies. */
#include "server/heartbeat.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool same_text(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_heartbeat(const struct heartbeat *a, const struct heartbeat *b)
{
    for (int i = 0; i < HB_METRIC_COUNT; i++) {
        /* Bit for bit, so that 0 and -0 differ. */
        if (a->has_metric[i] != b->has_metric[i] ||
            (a->has_metric[i] && memcmp(&a->metric[i], &b->metric[i], sizeof(double)) != 0))
            return false;
    }
    return strcmp(a->agent_id, b->agent_id) == 0 && a->status == b->status &&
           same_text(a->parent_agent_id, b->parent_agent_id) &&
           same_text(a->children_json, b->children_json) && same_text(a->name, b->name) &&
           same_text(a->labels_json, b->labels_json) && a->has_agent_ts == b->has_agent_ts &&
           (!a->has_agent_ts || a->agent_ts == b->agent_ts);
}

static void fail(const char *why, const uint8_t *data, size_t size)
{
    fprintf(stderr, "fuzz_heartbeat: %s for the body: %.*s\n", why,
            (int)(size > 2000 ? 2000 : size), (const char *)data);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct heartbeat fast;
    bool fast_ok = hb_parse_fast((const char *)data, size, &fast) == 0;
    struct problem pb;
    json_t *doc = json_parse_body((const char *)data, size, &pb);
    if (!doc) {
        if (fast_ok)
            fail("the fast path accepted what jansson cannot parse", data, size);
        /* Every refusal names its code and says something. */
        if (!pb.code || !pb.message[0])
            abort();
        return 0;
    }
    struct heartbeat hb;
    if (hb_from_json(doc, &hb, &pb) == 0) {
        if (fast_ok && !same_heartbeat(&fast, &hb))
            fail("the two paths read the heartbeat differently", data, size);
        /* What validation accepts must render, and render to JSON that parses again. */
        hb.server_ts = 1795532400123456LL;
        char *text = hb_render_agent(&hb);
        json_error_t err;
        json_t *back = json_loads(text, JSON_REJECT_DUPLICATES, &err);
        if (!back || strcmp(json_string_value(json_object_get(back, "agent_id")), hb.agent_id))
            abort();
        json_decref(back);
        free(text);
        hb_clear(&hb);
    } else if (fast_ok) {
        fail(pb.message, data, size);
    } else if (strcmp(pb.code, "invalid_field") != 0 || !pb.field[0]) {
        abort(); /* a schema refusal always names the field */
    }
    if (fast_ok)
        hb_clear(&fast);
    json_decref(doc);
    return 0;
}
