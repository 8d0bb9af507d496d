/* heartbeat_fast.c - the fast path of POST /api/v0/heartbeats: a valid heartbeat read in one
 * streaming pass (yajl), without building a JSON tree.
 *
 * Every heartbeat passes through the loop thread, and jansson's tree (an allocation per member
 * and number) was about a tenth of that thread's time at 10,000 heartbeats/s
 * (docs/decisions/0002). Like the decisions' fast path (trace_fast.c, docs/decisions/0008),
 * this one only ever accepts: whatever it does not like makes it give up, and the caller runs
 * hb_from_json(), which decides and words every error. It must accept nothing that path
 * refuses and read what it would: tests/fuzz/fuzz_heartbeat.c checks both on the same inputs. */
#include "aei/error.h"
#include "common/buf.h"
#include "server/fast.h"
#include "server/heartbeat.h"

#include <stdlib.h>
#include <string.h>

/* Where the parser is. */
enum frame { F_BODY, F_METRICS, F_CHILDREN, F_LABELS };

enum member {
    M_NONE = -1,
    M_AGENT_ID,
    M_STATUS,
    M_METRICS,
    M_PARENT,
    M_CHILDREN,
    M_TIMESTAMP,
    M_NAME,
    M_LABELS,
    M_SCHEMA_VERSION,
    M_COUNT
};

static const char *const members[M_COUNT] = {
    "agent_id",  "status", "metrics", "parent_agent_id", "child_agent_ids",
    "timestamp", "name",   "labels",  "schema_version"};

struct fast {
    struct heartbeat *hb;
    yajl_handle h;
    size_t end; /* where the body's object ended */
    enum frame stack[2];
    int depth;
    unsigned seen, metrics_seen; /* members read, by bit */
    int member;                  /* the member (or metric) whose value comes next */
    struct buf children;         /* compact JSON of child_agent_ids being read */
    size_t n_children;
    struct fast_labels labels;
};

/* Which of n names the len bytes at key are, or -1. */
static int name_index(const char *const *names, int n, const unsigned char *key, size_t len)
{
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) == len && memcmp(names[i], key, len) == 0)
            return i;
    return -1;
}

/* The member whose value arrives now, at the top level of the body, or M_NONE. */
static int body_member(struct fast *f)
{
    if (f->depth != 1 || f->stack[0] != F_BODY)
        return M_NONE;
    int m = f->member;
    f->member = M_NONE;
    return m;
}

static int on_null(void *arg)
{
    struct fast *f = arg;
    if (f->depth == 2 && f->stack[1] == F_METRICS)
        return 1; /* a metric not reported */
    int m = body_member(f);
    /* The members that may be null, which means "not given". */
    return m == M_METRICS || m == M_PARENT || m == M_CHILDREN || m == M_TIMESTAMP || m == M_NAME ||
           m == M_LABELS;
}

static int on_boolean(void *arg, int v)
{
    return 0;
}

static int on_number(void *arg, const char *s, size_t len)
{
    struct fast *f = arg;
    double x;
    if (f->depth != 2 || f->stack[1] != F_METRICS || !fast_number(s, len, &x) ||
        !hb_metric_in_range((enum hb_metric)f->member, x))
        return 0;
    f->hb->metric[f->member] = x;
    f->hb->has_metric[f->member] = true;
    return 1;
}

static int on_string(void *arg, const unsigned char *s, size_t len)
{
    struct fast *f = arg;
    struct heartbeat *hb = f->hb;
    if (memchr(s, '\0', len))
        return 0; /* jansson refuses NUL in strings */
    if (f->depth == 2 && f->stack[1] == F_CHILDREN) {
        char id[AEI_ID_MAX + 1];
        if (f->n_children++ >= HB_CHILDREN_MAX || !fast_id(s, len, id))
            return 0;
        /* Ids need no escaping: jansson writes them as they are. */
        buf_puts(&f->children, f->n_children > 1 ? ",\"" : "\"");
        buf_append(&f->children, s, len);
        buf_puts(&f->children, "\"");
        return 1;
    }
    if (f->depth == 2 && f->stack[1] == F_LABELS)
        return fast_labels_value(&f->labels, s, len);
    char status[16];
    switch (body_member(f)) {
    case M_AGENT_ID:
        return fast_id(s, len, hb->agent_id);
    case M_STATUS: {
        if (len >= sizeof(status))
            return 0;
        memcpy(status, s, len);
        status[len] = '\0';
        int st = hb_status_parse(status);
        hb->status = st < 0 ? HB_STATUS_COUNT : (enum hb_status)st;
        return st >= 0;
    }
    case M_PARENT: {
        char id[AEI_ID_MAX + 1];
        if (!fast_id(s, len, id))
            return 0;
        hb->parent_agent_id = fast_dup(s, len);
        return 1;
    }
    case M_TIMESTAMP:
        return hb->has_agent_ts = fast_time(s, len, &hb->agent_ts);
    case M_NAME:
        if (!fast_chars_within(s, len, HB_NAME_MAX))
            return 0;
        hb->name = fast_dup(s, len);
        return 1;
    case M_SCHEMA_VERSION:
        return len == 1 && s[0] == '0';
    default:
        return 0;
    }
}

static int on_start_map(void *arg)
{
    struct fast *f = arg;
    if (f->depth == 0) {
        f->stack[f->depth++] = F_BODY;
        return 1;
    }
    switch (body_member(f)) {
    case M_METRICS:
        f->stack[f->depth++] = F_METRICS;
        return 1;
    case M_LABELS:
        f->stack[f->depth++] = F_LABELS;
        return 1;
    default:
        return 0;
    }
}

static int on_map_key(void *arg, const unsigned char *key, size_t len)
{
    struct fast *f = arg;
    if (memchr(key, '\0', len))
        return 0;
    switch (f->stack[f->depth - 1]) {
    case F_BODY:
        f->member = name_index(members, M_COUNT, key, len);
        if (f->member < 0 || f->seen & (1u << f->member))
            return 0; /* unknown, or a duplicate */
        f->seen |= 1u << f->member;
        return 1;
    case F_METRICS:
        f->member = name_index(hb_metric_names, HB_METRIC_COUNT, key, len);
        if (f->member < 0 || f->metrics_seen & (1u << f->member))
            return 0;
        f->metrics_seen |= 1u << f->member;
        return 1;
    case F_LABELS:
        return fast_labels_key(&f->labels, key, len);
    default:
        return 0;
    }
}

static int on_end_map(void *arg)
{
    struct fast *f = arg;
    struct heartbeat *hb = f->hb;
    switch (f->stack[--f->depth]) {
    case F_BODY:
        f->end = yajl_get_bytes_consumed(f->h);
        if (!hb->agent_id[0] || hb->status == HB_STATUS_COUNT ||
            (hb->parent_agent_id && strcmp(hb->parent_agent_id, hb->agent_id) == 0))
            return 0;
        if (!hb->children_json)
            hb->children_json = fast_dup((const unsigned char *)"[]", 2);
        if (!hb->labels_json)
            hb->labels_json = fast_dup((const unsigned char *)"{}", 2);
        return 1;
    case F_METRICS:
        return 1;
    case F_LABELS:
        return (hb->labels_json = fast_labels_render(&f->labels)) != NULL;
    default:
        return 0;
    }
}

static int on_start_array(void *arg)
{
    struct fast *f = arg;
    if (body_member(f) != M_CHILDREN)
        return 0;
    f->stack[f->depth++] = F_CHILDREN;
    buf_reset(&f->children);
    buf_puts(&f->children, "[");
    return 1;
}

static int on_end_array(void *arg)
{
    struct fast *f = arg;
    f->depth--;
    buf_puts(&f->children, "]");
    f->hb->children_json = fast_dup((const unsigned char *)f->children.data, f->children.len);
    return 1;
}

static const yajl_callbacks callbacks = {
    on_null,      on_boolean, NULL,       NULL,           on_number,    on_string,
    on_start_map, on_map_key, on_end_map, on_start_array, on_end_array,
};

int hb_parse_fast(const char *body, size_t len, struct heartbeat *hb)
{
    memset(hb, 0, sizeof(*hb));
    hb->status = HB_STATUS_COUNT;
    struct fast f = {.hb = hb, .member = M_NONE};
    bool ok =
        fast_parse(&callbacks, &f, &f.h, body, len, &f.end) && f.depth == 0 && hb->agent_id[0];
    fast_labels_clear(&f.labels);
    buf_free(&f.children);
    if (!ok) {
        hb_clear(hb);
        return AEI_EINVAL;
    }
    return 0;
}
