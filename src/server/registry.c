/* registry.c - the loop thread's view of every agent's latest status */
#include "server/registry.h"

#include <jansson.h>
#include <stdlib.h>

struct registry {
    json_t *agents; /* agent_id -> status index (jansson's object is a hash table) */
    size_t counts[HB_STATUS_COUNT];
};

struct registry *registry_new(void)
{
    struct registry *r = calloc(1, sizeof(*r));
    if (!r || !(r->agents = json_object()))
        abort();
    return r;
}

void registry_free(struct registry *r)
{
    if (!r)
        return;
    json_decref(r->agents);
    free(r);
}

void registry_update(struct registry *r, const char *agent_id, enum hb_status status)
{
    json_t *old = json_object_get(r->agents, agent_id);
    if (old) {
        r->counts[json_integer_value(old)]--;
        json_integer_set(old, status);
    } else {
        json_object_set_new(r->agents, agent_id, json_integer(status));
    }
    r->counts[status]++;
}

const size_t *registry_counts(const struct registry *r)
{
    return r->counts;
}
