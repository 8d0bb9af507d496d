/* fast.c - what the streaming (yajl) fast paths of request bodies share (fast.h) */
#include "server/fast.h"
#include "common/buf.h"
#include "common/json.h"
#include "common/time.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

char *fast_dup(const unsigned char *s, size_t len)
{
    char *p = malloc(len + 1);
    if (!p)
        abort();
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

bool fast_is_unusual(const char *s, size_t len)
{
    if (memchr(s, '\v', len) || memchr(s, '\f', len))
        return true;
    const char *end = s + len;
    for (const char *p = s; (p = memchr(p, '\\', (size_t)(end - p))) && p + 1 < end; p += 2) {
        if (p[1] == 'u' && p + 3 < end && (p[2] | 0x20) == 'd' &&
            memchr("89abcdef", p[3] | 0x20, 8))
            return true;
    }
    return !utf8_valid(s, len);
}

bool fast_number(const char *s, size_t len, double *out)
{
    char buf[64];
    if (len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    /* yajl may take leading zeros, which jansson refuses. */
    const char *digits = buf + (buf[0] == '-');
    if (digits[0] == '0' && digits[1] >= '0' && digits[1] <= '9')
        return false;
    if (!strpbrk(buf, ".eE")) {
        /* jansson reads an integer as int64 ("-0" is 0) and refuses one past 64 bits. */
        if (len > 18)
            return false;
        *out = (double)strtoll(buf, NULL, 10);
        return true;
    }
    *out = strtod(buf, NULL);
    return isfinite(*out);
}

bool fast_id(const unsigned char *s, size_t len, char *out)
{
    if (len == 0 || len > AEI_ID_MAX)
        return false;
    memcpy(out, s, len);
    out[len] = '\0';
    return id_is_valid(out);
}

bool fast_chars_within(const unsigned char *s, size_t len, size_t limit)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += (s[i] & 0xC0) != 0x80;
    return n <= limit;
}

bool fast_time(const unsigned char *s, size_t len, int64_t *us)
{
    char z[64];
    if (len >= sizeof(z))
        return false;
    memcpy(z, s, len);
    z[len] = '\0';
    return aei_time_parse(z, us);
}

bool fast_labels_key(struct fast_labels *l, const unsigned char *key, size_t len)
{
    if (l->n >= HB_LABELS_MAX || l->key || len == 0 ||
        !fast_chars_within(key, len, HB_LABEL_KEY_MAX))
        return false;
    for (size_t i = 0; i < l->n; i++) {
        if (strlen(l->items[i].key) == len && memcmp(l->items[i].key, key, len) == 0)
            return false;
    }
    l->key = fast_dup(key, len);
    return true;
}

bool fast_labels_value(struct fast_labels *l, const unsigned char *s, size_t len)
{
    if (!l->key || !fast_chars_within(s, len, HB_LABEL_VALUE_MAX))
        return false;
    l->items[l->n].key = l->key;
    l->items[l->n++].value = fast_dup(s, len);
    l->key = NULL;
    return true;
}

static int by_key(const void *a, const void *b)
{
    return strcmp(((const struct fast_label *)a)->key, ((const struct fast_label *)b)->key);
}

char *fast_labels_render(struct fast_labels *l)
{
    if (l->key) {
        fast_labels_clear(l);
        return NULL;
    }
    qsort(l->items, l->n, sizeof(l->items[0]), by_key);
    struct buf out = {0};
    buf_puts(&out, "{");
    for (size_t i = 0; i < l->n; i++) {
        if (i)
            buf_puts(&out, ",");
        json_write_string(&out, l->items[i].key);
        buf_puts(&out, ":");
        json_write_string(&out, l->items[i].value);
    }
    buf_puts(&out, "}");
    char *text = fast_dup((const unsigned char *)out.data, out.len);
    buf_free(&out);
    fast_labels_clear(l);
    return text;
}

void fast_labels_clear(struct fast_labels *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].key);
        free(l->items[i].value);
    }
    l->n = 0;
    free(l->key);
    l->key = NULL;
}

bool fast_parse(const yajl_callbacks *callbacks, void *ctx, yajl_handle *h, const char *body,
                size_t len, const size_t *end)
{
    if (fast_is_unusual(body, len))
        return false;
    if (!(*h = yajl_alloc(callbacks, NULL, ctx)))
        abort();
    bool ok = yajl_parse(*h, (const unsigned char *)body, len) == yajl_status_ok &&
              yajl_complete_parse(*h) == yajl_status_ok;
    /* yajl lets an unfinished token after the value pass: only whitespace may follow it. */
    for (size_t i = ok ? *end : len; i < len; i++)
        ok = ok && body[i] && strchr(" \t\r\n", body[i]);
    yajl_free(*h);
    *h = NULL;
    return ok;
}
