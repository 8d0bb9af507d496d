/* feed.c - reads the hub's WebSocket messages (or a relay's raw heartbeats) for the load generator
 */
#include "cli/feed.h"

#include "aei/error.h"
#include "common/time.h"

#include <string.h>

/* ---- times ---- */

/* Parses an RFC 3339 time of exactly `n` bytes, the raw contents of a JSON string (not followed
 * by a NUL); one longer than any real time, or one holding a NUL, is not one. */
static bool time_parse(const char *s, size_t n, int64_t *us)
{
    char buf[64];
    if (n >= sizeof(buf) || memchr(s, '\0', n))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return aei_time_parse(buf, us);
}

/* ---- a JSON walker that looks only at the few members it needs ---- */

struct cur {
    const char *p;
    size_t n, i;
};

static void ws(struct cur *c)
{
    while (c->i < c->n &&
           (c->p[c->i] == ' ' || c->p[c->i] == '\t' || c->p[c->i] == '\n' || c->p[c->i] == '\r'))
        c->i++;
}

/* Reads a string at the cursor; `*s`/`*len` get its raw (still escaped) contents. */
static bool string(struct cur *c, const char **s, size_t *len)
{
    if (c->i >= c->n || c->p[c->i] != '"')
        return false;
    size_t start = ++c->i;
    for (;;) {
        const char *q = memchr(c->p + c->i, '"', c->n - c->i);
        if (!q)
            return false;
        size_t at = (size_t)(q - c->p);
        /* The quote ends the string unless an odd number of backslashes stands before it. */
        size_t bs = 0;
        while (at - bs > start && c->p[at - bs - 1] == '\\')
            bs++;
        c->i = at + 1;
        if (bs % 2 == 0) {
            *s = c->p + start;
            *len = at - start;
            return true;
        }
    }
}

/* Skips one value: a string, an object or array (with everything inside), or a scalar. */
static bool skip(struct cur *c)
{
    if (c->i >= c->n)
        return false;
    char ch = c->p[c->i];
    const char *s;
    size_t len;
    if (ch == '"')
        return string(c, &s, &len);
    if (ch == '{' || ch == '[') {
        int depth = 0;
        while (c->i < c->n) {
            ch = c->p[c->i];
            if (ch == '"') {
                if (!string(c, &s, &len))
                    return false;
                continue;
            }
            if (ch == '{' || ch == '[')
                depth++;
            else if (ch == '}' || ch == ']')
                depth--;
            c->i++;
            if (depth == 0)
                return true;
        }
        return false;
    }
    size_t start = c->i;
    while (c->i < c->n) {
        ch = c->p[c->i];
        if (ch == ',' || ch == '}' || ch == ']' || ch == ' ' || ch == '\t' || ch == '\n' ||
            ch == '\r')
            break;
        if (ch == '"' || ch == '{' || ch == '[' || ch == ':')
            return false;
        c->i++;
    }
    return c->i > start;
}

static bool key_is(const char *k, size_t len, const char *want)
{
    size_t w = strlen(want);
    return len == w && memcmp(k, want, w) == 0;
}

/*
 * Walks the members of the object at the cursor. `depth1` is true for a message; false for its
 * "changed" member, where only "agent_ts" is looked at.
 */
static bool object(struct cur *c, bool depth1, struct feed_msg *m, const char **ts, size_t *tslen,
                   const char **top_ts, size_t *top_tslen, const char **type, size_t *typelen)
{
    if (c->i >= c->n || c->p[c->i] != '{')
        return false;
    c->i++;
    ws(c);
    if (c->i < c->n && c->p[c->i] == '}') {
        c->i++;
        return true;
    }
    for (;;) {
        const char *k;
        size_t klen;
        ws(c);
        if (!string(c, &k, &klen))
            return false;
        ws(c);
        if (c->i >= c->n || c->p[c->i] != ':')
            return false;
        c->i++;
        ws(c);
        if (c->i >= c->n)
            return false;
        char ch = c->p[c->i];
        if (!depth1) {
            if (ch == '"' && key_is(k, klen, "agent_ts")) {
                if (!string(c, ts, tslen))
                    return false;
            } else if (!skip(c)) {
                return false;
            }
        } else if (ch == '"' && key_is(k, klen, "type")) {
            if (!string(c, type, typelen))
                return false;
        } else if (ch == '"' && key_is(k, klen, "timestamp")) {
            if (!string(c, top_ts, top_tslen))
                return false;
        } else if (ch == '{' && key_is(k, klen, "changed")) {
            if (!object(c, false, m, ts, tslen, NULL, NULL, NULL, NULL))
                return false;
        } else if (ch >= '0' && ch <= '9' && key_is(k, klen, "seq")) {
            uint64_t v = 0;
            size_t start = c->i;
            while (c->i < c->n && c->p[c->i] >= '0' && c->p[c->i] <= '9' && c->i - start < 19)
                v = v * 10 + (uint64_t)(c->p[c->i++] - '0');
            size_t end = c->i;
            c->i = start;
            if (!skip(c))
                return false;
            /* Only a plain whole number is a sequence number (not 1.5, 1e3 or 20 digits). */
            m->has_seq = c->i == end;
            m->seq = v;
        } else if (!skip(c)) {
            return false;
        }
        ws(c);
        if (c->i >= c->n)
            return false;
        if (c->p[c->i] == ',') {
            c->i++;
            continue;
        }
        if (c->p[c->i] == '}') {
            c->i++;
            return true;
        }
        return false;
    }
}

static bool message(struct cur *c, feed_fn fn, void *arg)
{
    struct feed_msg m = {0};
    const char *ts = NULL, *top_ts = NULL, *type = NULL;
    size_t tslen = 0, top_tslen = 0, typelen = 0;
    if (!object(c, true, &m, &ts, &tslen, &top_ts, &top_tslen, &type, &typelen))
        return false;
    if (type) {
        if (key_is(type, typelen, "delta"))
            m.type = FEED_DELTA;
        else if (key_is(type, typelen, "snapshot"))
            m.type = FEED_SNAPSHOT;
        else if (key_is(type, typelen, "subscribed"))
            m.type = FEED_SUBSCRIBED;
        else if (key_is(type, typelen, "event"))
            m.type = FEED_EVENT;
        else if (key_is(type, typelen, "totals"))
            m.type = FEED_TOTALS;
        else if (key_is(type, typelen, "error"))
            m.type = FEED_ERROR;
        else
            m.type = FEED_OTHER;
        if (m.type == FEED_DELTA && ts)
            m.has_ts = time_parse(ts, tslen, &m.ts_us);
    } else if (top_ts) {
        m.type = FEED_HEARTBEAT;
        m.has_ts = time_parse(top_ts, top_tslen, &m.ts_us);
    }
    fn(arg, &m);
    return true;
}

int feed_scan(const char *p, size_t n, feed_fn fn, void *arg)
{
    struct cur c = {p, n, 0};
    int count = 0;
    ws(&c);
    if (c.i < n && p[c.i] == '[') {
        c.i++;
        ws(&c);
        if (c.i < n && p[c.i] == ']') {
            c.i++;
        } else {
            for (;;) {
                ws(&c);
                if (!message(&c, fn, arg))
                    return AEI_EINVAL;
                count++;
                ws(&c);
                if (c.i < n && p[c.i] == ',') {
                    c.i++;
                    continue;
                }
                if (c.i < n && p[c.i] == ']') {
                    c.i++;
                    break;
                }
                return AEI_EINVAL;
            }
        }
    } else {
        if (!message(&c, fn, arg))
            return AEI_EINVAL;
        count = 1;
    }
    ws(&c);
    return c.i == n ? count : AEI_EINVAL;
}
