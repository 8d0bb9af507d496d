/* trace_fast.c - the fast path of POST /api/v0/traces: a batch of valid decisions parsed in one
 * streaming pass (yajl), without building a JSON tree.
 *
 * jansson takes about 1.7 ms to parse a batch of 100 decisions and the loop thread spends most
 * of its time there; yajl's event parser reads the same batch in about 0.15 ms
 * (docs/decisions/0008). This path only ever accepts: whatever it does not like (a broken or
 * unusual document, any invalid member) makes it give up, and the caller runs the jansson path,
 * which decides and words every error. It must therefore accept nothing that the jansson path
 * (decision_from_json) refuses, and store what that path would: tests/fuzz/fuzz_traces.c
 * checks both on the same inputs. */
#include "server/trace.h"
#include "aei/error.h"
#include "common/buf.h"
#include "server/fast.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Where the parser is, by what the enclosing array or object is. */
enum frame {
    F_BATCH,        /* the top-level array of decisions */
    F_DECISION,     /* a decision object */
    F_CONTEXT,      /* inside reasoning_context (an object): copied as compact JSON */
    F_ALTERNATIVES, /* the alternatives_considered array */
    F_ALTERNATIVE,  /* one alternative object */
    F_LABELS,       /* the labels object */
};

enum member {
    M_NONE = -1,
    M_DECISION_ID,
    M_EXECUTION_ID,
    M_AGENT_ID,
    M_PARENT,
    M_TIMESTAMP,
    M_CONTEXT,
    M_CONFIDENCE,
    M_ALTERNATIVES,
    M_OUTCOME,
    M_KIND,
    M_LABELS,
    M_DURATION,
    M_TOKENS,
    M_COST,
    M_COUNT
};

/* The members of a decision, with their lengths (keys are compared once per member). */
#define NAME(s)                                                                                    \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }
static const struct {
    const char *name;
    size_t len;
} members[M_COUNT] = {
    NAME("decision_id"),      NAME("execution_id"),
    NAME("agent_id"),         NAME("parent_decision_id"),
    NAME("timestamp"),        NAME("reasoning_context"),
    NAME("confidence_score"), NAME("alternatives_considered"),
    NAME("selected_outcome"), NAME("kind"),
    NAME("labels"),           NAME("duration_ms"),
    NAME("tokens"),           NAME("cost_usd"),
};

/* Keys of one object inside reasoning_context, for refusing duplicates as jansson does. */
#define KEYS_MAX 64
/* Near TRACE_CONTEXT_MAX, this compact text may differ from jansson's by a few bytes (number
 * forms, escapes): past this length the jansson path decides. */
#define CONTEXT_SURE_MAX (TRACE_CONTEXT_MAX - 256)

struct level {
    enum frame frame;
    bool is_array;     /* F_CONTEXT: an array (else an object) */
    size_t count;      /* members or items so far */
    size_t keys_at;    /* F_CONTEXT: where this object's keys start in the key list */
    unsigned seen;     /* F_DECISION: members seen (bits); F_ALTERNATIVE: option, reason, score */
    int member;        /* F_DECISION / F_ALTERNATIVE: the member whose value comes next */
    size_t context_at; /* F_CONTEXT: where this object's text starts in `text` */
};

struct fast {
    struct level stack[JSON_MAX_DEPTH + 1];
    int depth; /* levels in use */
    yajl_handle h;
    size_t end;           /* where the top-level value ended in the body */
    struct decision **ds; /* the decisions read so far */
    size_t n, cap;
    struct decision *d; /* the one being read */
    struct buf text;    /* compact JSON of the member being copied */
    struct buf keys;    /* F_CONTEXT keys, each NUL-ended, of every open object */
    size_t key_offs[KEYS_MAX * (JSON_MAX_DEPTH + 1)];
    size_t n_keys;
    struct fast_labels labels;
};

static struct level *top(struct fast *f)
{
    return &f->stack[f->depth - 1];
}

/* Appends s as a JSON string; s is UTF-8 without NUL (yajl checked it). */
static void write_string(struct buf *out, const unsigned char *s, size_t len)
{
    json_write_string_n(out, (const char *)s, len);
}

/* Before a value copied inside reasoning_context: in an array, a comma after the first item
 * (in an object the key has written what goes before its value). */
static void value_prefix(struct fast *f)
{
    struct level *l = top(f);
    if (l->is_array && l->count++ > 0)
        buf_puts(&f->text, ",");
}

static bool push(struct fast *f, enum frame frame, bool is_array)
{
    if (f->depth > JSON_MAX_DEPTH - 1)
        return false; /* deep nesting: the jansson path refuses it */
    f->stack[f->depth++] = (struct level){
        .frame = frame, .is_array = is_array, .member = M_NONE, .keys_at = f->n_keys};
    return true;
}

/* A scalar or the start of a container arrives in a decision: is it wanted there? Returns the
 * member, or M_NONE when the value is not acceptable (the caller gives up). */
static int decision_member(struct fast *f)
{
    struct level *l = top(f);
    int m = l->member;
    l->member = M_NONE;
    return m;
}

static int on_null(void *arg)
{
    struct fast *f = arg;
    if (f->depth == 0)
        return 0; /* a bare value is no decision */
    struct level *l = top(f);
    if (l->frame == F_CONTEXT) {
        value_prefix(f);
        buf_puts(&f->text, "null");
        return 1;
    }
    if (l->frame == F_ALTERNATIVE) {
        if (l->member != 2) /* only score may be null */
            return 0;
        buf_puts(&f->text, "null");
        l->member = M_NONE;
        return 1;
    }
    if (l->frame != F_DECISION)
        return 0;
    int m = decision_member(f);
    /* Every member but execution_id and agent_id may be null, which means "not given". */
    return m != M_NONE && m != M_EXECUTION_ID && m != M_AGENT_ID;
}

static int on_boolean(void *arg, int v)
{
    struct fast *f = arg;
    if (f->depth == 0)
        return 0; /* a bare value is no decision */
    if (top(f)->frame != F_CONTEXT)
        return 0;
    value_prefix(f);
    buf_puts(&f->text, v ? "true" : "false");
    return 1;
}

static int on_number(void *arg, const char *s, size_t len)
{
    struct fast *f = arg;
    if (f->depth == 0)
        return 0; /* a bare value is no decision */
    struct level *l = top(f);
    double x;
    if (!fast_number(s, len, &x))
        return 0;
    if (l->frame == F_CONTEXT) {
        value_prefix(f);
        buf_append(&f->text, s, len);
        return 1;
    }
    if (l->frame == F_ALTERNATIVE) {
        if (l->member != 2)
            return 0;
        buf_append(&f->text, s, len);
        l->member = M_NONE;
        return 1;
    }
    if (l->frame != F_DECISION)
        return 0;
    struct decision *d = f->d;
    switch (decision_member(f)) {
    case M_CONFIDENCE:
        d->confidence = x, d->has_confidence = true;
        return x >= 0 && x <= 100;
    case M_DURATION:
        d->duration_ms = x, d->has_duration = true;
        return x >= 0 && x <= AEI_AMOUNT_MAX;
    case M_TOKENS:
        d->tokens = x, d->has_tokens = true;
        return x >= 0 && x <= AEI_AMOUNT_MAX;
    case M_COST:
        d->cost_usd = x, d->has_cost = true;
        return x >= 0 && x <= AEI_AMOUNT_MAX;
    default:
        return 0;
    }
}

static int decision_string(struct fast *f, const unsigned char *s, size_t len)
{
    struct decision *d = f->d;
    switch (decision_member(f)) {
    case M_DECISION_ID:
        return fast_id(s, len, d->decision_id);
    case M_EXECUTION_ID:
        return fast_id(s, len, d->execution_id);
    case M_AGENT_ID:
        return fast_id(s, len, d->agent_id);
    case M_PARENT:
        return fast_id(s, len, d->parent_id);
    case M_TIMESTAMP:
        return d->has_agent_ts = fast_time(s, len, &d->agent_ts);
    case M_CONTEXT:
        buf_reset(&f->text);
        write_string(&f->text, s, len);
        if (f->text.len > CONTEXT_SURE_MAX)
            return 0;
        d->context_json = fast_dup((const unsigned char *)f->text.data, f->text.len);
        return 1;
    case M_OUTCOME:
        if (!fast_chars_within(s, len, TRACE_TEXT_MAX))
            return 0;
        d->outcome = fast_dup(s, len);
        return 1;
    case M_KIND: {
        if (len > TRACE_KIND_MAX)
            return 0;
        char kind[TRACE_KIND_MAX + 1];
        memcpy(kind, s, len);
        kind[len] = '\0';
        if (!id_is_valid(kind))
            return 0;
        d->kind = fast_dup(s, len);
        return 1;
    }
    default:
        return 0;
    }
}

static int on_string(void *arg, const unsigned char *s, size_t len)
{
    struct fast *f = arg;
    if (f->depth == 0)
        return 0; /* a bare value is no decision */
    struct level *l = top(f);
    if (memchr(s, '\0', len))
        return 0; /* jansson refuses NUL in strings */
    switch (l->frame) {
    case F_DECISION:
        return decision_string(f, s, len);
    case F_CONTEXT:
        value_prefix(f);
        write_string(&f->text, s, len);
        return 1;
    case F_ALTERNATIVE:
        if ((l->member != 0 && l->member != 1) || !fast_chars_within(s, len, TRACE_TEXT_MAX))
            return 0;
        write_string(&f->text, s, len);
        l->member = M_NONE;
        return 1;
    case F_LABELS:
        return fast_labels_value(&f->labels, s, len);
    default:
        return 0;
    }
}

static int on_start_map(void *arg)
{
    struct fast *f = arg;
    if (f->depth > 0) {
        struct level *l = top(f);
        switch (l->frame) {
        case F_BATCH:
            break;
        case F_DECISION: {
            int m = decision_member(f);
            if (m == M_CONTEXT) {
                buf_reset(&f->text);
                buf_puts(&f->text, "{");
                return push(f, F_CONTEXT, false);
            }
            if (m == M_LABELS) {
                fast_labels_clear(&f->labels);
                return push(f, F_LABELS, false);
            }
            return 0;
        }
        case F_CONTEXT:
            value_prefix(f);
            buf_puts(&f->text, "{");
            return push(f, F_CONTEXT, false);
        case F_ALTERNATIVES:
            if (l->count++ >= TRACE_ALTERNATIVES_MAX)
                return 0;
            buf_puts(&f->text, l->count > 1 ? ",{" : "{");
            return push(f, F_ALTERNATIVE, false);
        default:
            return 0;
        }
    }
    /* A decision starts. */
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 16;
        struct decision **p = realloc(f->ds, f->cap * sizeof(*p));
        if (!p)
            abort();
        f->ds = p;
    }
    if (f->n >= TRACE_BATCH_MAX || !(f->d = calloc(1, sizeof(*f->d))))
        return 0;
    f->ds[f->n++] = f->d;
    return push(f, F_DECISION, false);
}

static int on_map_key(void *arg, const unsigned char *key, size_t len)
{
    struct fast *f = arg;
    struct level *l = top(f);
    if (len == 0 || memchr(key, '\0', len))
        return 0;
    switch (l->frame) {
    case F_DECISION:
        for (int m = 0; m < M_COUNT; m++) {
            if (members[m].len == len && memcmp(members[m].name, key, len) == 0) {
                if (l->seen & (1u << m))
                    return 0; /* a duplicate */
                l->seen |= 1u << m;
                l->member = m;
                return 1;
            }
        }
        return 0;
    case F_ALTERNATIVE: {
        static const struct {
            const char *name;
            size_t len;
        } names[] = {NAME("option"), NAME("reason_rejected"), NAME("score")};
        for (int m = 0; m < 3; m++) {
            if (names[m].len == len && memcmp(names[m].name, key, len) == 0) {
                if (l->seen & (1u << m))
                    return 0;
                l->seen |= 1u << m;
                l->member = m;
                if (l->count++)
                    buf_puts(&f->text, ",");
                write_string(&f->text, key, len);
                buf_puts(&f->text, ":");
                return 1;
            }
        }
        return 0;
    }
    case F_CONTEXT: {
        if (f->n_keys - l->keys_at >= KEYS_MAX)
            return 0;
        for (size_t k = l->keys_at; k < f->n_keys; k++) {
            const char *seen = f->keys.data + f->key_offs[k];
            if (strlen(seen) == len && memcmp(seen, key, len) == 0)
                return 0;
        }
        f->key_offs[f->n_keys++] = f->keys.len;
        buf_append(&f->keys, key, len);
        buf_append(&f->keys, "", 1);
        if (l->count++)
            buf_puts(&f->text, ",");
        write_string(&f->text, key, len);
        buf_puts(&f->text, ":");
        return 1;
    }
    case F_LABELS:
        return fast_labels_key(&f->labels, key, len);
    default:
        return 0;
    }
}

/* Leaves the innermost level; notes where the body's value ends when that was the top one. */
static struct level pop(struct fast *f)
{
    struct level l = *top(f);
    if (--f->depth == 0)
        f->end = yajl_get_bytes_consumed(f->h);
    return l;
}

static int on_end_map(void *arg)
{
    struct fast *f = arg;
    struct level l = pop(f);
    switch (l.frame) {
    case F_DECISION: {
        struct decision *d = f->d;
        if (!d->execution_id[0] || !d->agent_id[0] ||
            (d->decision_id[0] && strcmp(d->decision_id, d->parent_id) == 0))
            return 0;
        if (!d->alternatives_json)
            d->alternatives_json = fast_dup((const unsigned char *)"[]", 2);
        if (!d->labels_json)
            d->labels_json = fast_dup((const unsigned char *)"{}", 2);
        f->d = NULL;
        return 1;
    }
    case F_CONTEXT:
        buf_puts(&f->text, "}");
        /* Forget this object's keys. */
        if (l.keys_at < f->n_keys)
            f->keys.len = f->key_offs[l.keys_at];
        f->n_keys = l.keys_at;
        if (top(f)->frame == F_DECISION) {
            if (f->text.len > CONTEXT_SURE_MAX)
                return 0;
            f->d->context_json = fast_dup((const unsigned char *)f->text.data, f->text.len);
        }
        return 1;
    case F_ALTERNATIVE:
        if (!(l.seen & 1u))
            return 0; /* option is required */
        buf_puts(&f->text, "}");
        return 1;
    case F_LABELS:
        return (f->d->labels_json = fast_labels_render(&f->labels)) != NULL;
    default:
        return 0;
    }
}

static int on_start_array(void *arg)
{
    struct fast *f = arg;
    if (f->depth == 0)
        return push(f, F_BATCH, true);
    struct level *l = top(f);
    if (l->frame == F_CONTEXT) {
        value_prefix(f);
        buf_puts(&f->text, "[");
        return push(f, F_CONTEXT, true);
    }
    if (l->frame == F_DECISION && decision_member(f) == M_ALTERNATIVES) {
        buf_reset(&f->text);
        buf_puts(&f->text, "[");
        return push(f, F_ALTERNATIVES, true);
    }
    return 0;
}

static int on_end_array(void *arg)
{
    struct fast *f = arg;
    struct level l = pop(f);
    switch (l.frame) {
    case F_BATCH:
        return 1;
    case F_CONTEXT:
        buf_puts(&f->text, "]");
        return 1;
    case F_ALTERNATIVES:
        buf_puts(&f->text, "]");
        f->d->alternatives_json = fast_dup((const unsigned char *)f->text.data, f->text.len);
        return 1;
    default:
        return 0;
    }
}

static const yajl_callbacks callbacks = {
    on_null,      on_boolean, NULL,       NULL,           on_number,    on_string,
    on_start_map, on_map_key, on_end_map, on_start_array, on_end_array,
};

int decisions_parse_fast(const char *body, size_t len, struct decision ***out, size_t *n)
{
    struct fast *f = calloc(1, sizeof(*f));
    if (!f)
        abort();
    bool ok =
        fast_parse(&callbacks, f, &f->h, body, len, &f->end) && f->depth == 0 && f->n > 0 && !f->d;
    fast_labels_clear(&f->labels);
    buf_free(&f->text);
    buf_free(&f->keys);
    if (!ok) {
        for (size_t i = 0; i < f->n; i++) {
            decision_clear(f->ds[i]);
            free(f->ds[i]);
        }
        free(f->ds);
        free(f);
        return AEI_EINVAL;
    }
    *out = f->ds;
    *n = f->n;
    free(f);
    return 0;
}
