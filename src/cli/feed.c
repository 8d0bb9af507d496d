/* feed.c - reads the hub's WebSocket messages (or a relay's raw heartbeats) for the load generator
 */
#include "cli/feed.h"

#include "aei/error.h"

#include <string.h>

/* ---- times ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* Reads exactly `k` digits at s[*i]. */
static bool digits(const char *s, size_t n, size_t *i, int k, int *out)
{
    int v = 0;
    if (n - *i < (size_t)k)
        return false;
    for (int j = 0; j < k; j++) {
        char c = s[*i + (size_t)j];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *i += (size_t)k;
    *out = v;
    return true;
}

static bool sep(const char *s, size_t n, size_t *i, const char *any)
{
    if (*i >= n || !strchr(any, s[*i]) || s[*i] == '\0')
        return false;
    (*i)++;
    return true;
}

bool feed_time_parse(const char *s, size_t n, int64_t *us)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    size_t i = 0;
    int y, mo, d, h, mi, se, frac = 0;
    if (!digits(s, n, &i, 4, &y) || !sep(s, n, &i, "-") || !digits(s, n, &i, 2, &mo) ||
        !sep(s, n, &i, "-") || !digits(s, n, &i, 2, &d) || !sep(s, n, &i, "Tt ") ||
        !digits(s, n, &i, 2, &h) || !sep(s, n, &i, ":") || !digits(s, n, &i, 2, &mi) ||
        !sep(s, n, &i, ":") || !digits(s, n, &i, 2, &se))
        return false;
    if (i < n && s[i] == '.') {
        i++;
        int k = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (k < 6)
                frac = frac * 10 + (s[i] - '0');
            k++;
            i++;
        }
        if (k == 0)
            return false;
        for (; k < 6; k++)
            frac *= 10;
    }
    int off = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else {
        int oh, om;
        if (i >= n || (s[i] != '+' && s[i] != '-'))
            return false;
        int sign = s[i] == '-' ? -1 : 1;
        i++;
        if (!digits(s, n, &i, 2, &oh) || !sep(s, n, &i, ":") || !digits(s, n, &i, 2, &om) ||
            oh > 23 || om > 59)
            return false;
        off = sign * (oh * 60 + om);
    }
    if (i != n)
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 || mi > 59 ||
        se > 60)
        return false;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off * 60;
    *us = secs * 1000000 + frac;
    return true;
}

void feed_time_format(int64_t us, char out[FEED_TIME_LEN])
{
    int64_t secs = us / 1000000, frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    int64_t days = secs / 86400, rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        days -= 1;
    }
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 0)
        y = 0;
    if (y > 9999)
        y = 9999;
    int f[7] = {(int)y, m, d, (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), (int)frac};
    static const int width[7] = {4, 2, 2, 2, 2, 2, 6};
    static const char seps[7] = {'-', '-', 'T', ':', ':', '.', 'Z'};
    char *p = out;
    for (int i = 0; i < 7; i++) {
        for (int k = width[i] - 1, v = f[i]; k >= 0; k--, v /= 10)
            p[k] = (char)('0' + v % 10);
        p += width[i];
        *p++ = seps[i];
    }
    *p = '\0';
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
            m.has_ts = feed_time_parse(ts, tslen, &m.ts_us);
    } else if (top_ts) {
        m.type = FEED_HEARTBEAT;
        m.has_ts = feed_time_parse(top_ts, top_tslen, &m.ts_us);
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
