/* fuzz_heartbeat.c - libFuzzer target: any request body through parsing, validation and back */
#include "server/heartbeat.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct problem pb;
    json_t *doc = json_parse_body((const char *)data, size, &pb);
    if (!doc) {
        /* Every refusal names its code and says something. */
        if (!pb.code || !pb.message[0])
            abort();
        return 0;
    }
    struct heartbeat hb;
    if (hb_from_json(doc, &hb, &pb) == 0) {
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
    } else if (strcmp(pb.code, "invalid_field") != 0 || !pb.field[0]) {
        abort(); /* a schema refusal always names the field */
    }
    json_decref(doc);
    return 0;
}
