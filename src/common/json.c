/* json.c - jansson wrappers whose errors name the line, column or field at fault */
#include "common/json.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set(struct problem *pb, const char *code, const char *field)
{
    memset(pb, 0, sizeof(*pb));
    pb->code = code;
    snprintf(pb->field, sizeof(pb->field), "%s", field);
}

json_t *json_parse_body(const char *data, size_t len, struct problem *pb)
{
    size_t i = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
        i++;
    if (i == len) {
        set(pb, "empty_body", "");
        snprintf(pb->message, sizeof(pb->message), "the request body is empty: send a JSON object");
        return NULL;
    }
    json_error_t err;
    json_t *v = json_loadb(data, len, JSON_REJECT_DUPLICATES, &err);
    if (!v) {
        set(pb, "malformed_json", "");
        pb->line = err.line;
        pb->column = err.column;
        snprintf(pb->message, sizeof(pb->message), "malformed JSON at line %d, column %d: %s",
                 err.line, err.column, err.text);
        return NULL;
    }
    if (json_depth(v) > JSON_MAX_DEPTH) {
        json_decref(v);
        set(pb, "malformed_json", "");
        snprintf(pb->message, sizeof(pb->message),
                 "JSON nested deeper than %d levels: flatten the document", JSON_MAX_DEPTH);
        return NULL;
    }
    return v;
}

void json_describe(const json_t *v, char *out, size_t n)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        snprintf(out, n, "an object");
        break;
    case JSON_ARRAY:
        snprintf(out, n, "an array");
        break;
    case JSON_STRING: {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        /* Cut long strings short, and never in the middle of a UTF-8 sequence. */
        size_t cut = len > 40 ? 40 : len;
        while (cut < len && cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
            cut--;
        snprintf(out, n, "\"%.*s%s\"", (int)cut, s, cut < len ? "..." : "");
        break;
    }
    case JSON_INTEGER:
        snprintf(out, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        snprintf(out, n, "%.17g", json_real_value(v));
        break;
    case JSON_TRUE:
        snprintf(out, n, "true");
        break;
    case JSON_FALSE:
        snprintf(out, n, "false");
        break;
    case JSON_NULL:
        snprintf(out, n, "null");
        break;
    }
}

void problem_field(struct problem *pb, const char *field, const char *expected, const json_t *got)
{
    char desc[64] = "nothing";
    if (got)
        json_describe(got, desc, sizeof(desc));
    set(pb, "invalid_field", field);
    snprintf(pb->message, sizeof(pb->message), "field %s: expected %s, got %s", field, expected,
             desc);
}

/* Returns the length of the valid UTF-8 sequence at s (1-4), or 0 if there is none. */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned char c = s[0];
    size_t n;
    unsigned int cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    /* Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8. */
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

bool utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        uint64_t word;
        if (i + 8 <= len && (memcpy(&word, p + i, 8), (word & 0x8080808080808080ull) == 0)) {
            i += 8; /* eight ASCII bytes */
            continue;
        }
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        /* utf8_seq() reads up to 4 bytes: copy a sequence cut short by the end. */
        unsigned char seq[4] = {0};
        memcpy(seq, p + i, len - i < 4 ? len - i : 4);
        size_t n = utf8_seq(seq);
        if (n == 0 || n > len - i)
            return false;
        i += n;
    }
    return true;
}

json_t *json_string_lossy(const char *s)
{
    size_t len = strlen(s), o = 0;
    char *clean = malloc(len + 1);
    if (!clean)
        return NULL;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq((const unsigned char *)s + i);
        if (n == 0) {
            clean[o++] = '?';
            i++;
        } else {
            memcpy(clean + o, s + i, n);
            o += n;
            i += n;
        }
    }
    clean[o] = '\0';
    json_t *v = json_string(clean);
    free(clean);
    return v;
}

void json_write_string_n(struct buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF"; /* as jansson writes them */
    const char *end = s + len;
    buf_puts(out, "\"");
    for (const char *run = s;; s++) {
        if (s < end && (unsigned char)*s >= 0x20 && *s != '"' && *s != '\\')
            continue;
        buf_append(out, run, (size_t)(s - run));
        if (s == end)
            break;
        unsigned char ch = (unsigned char)*s;
        char esc[7] = {'\\', (char)ch, 0};
        switch (ch) {
        case '"':
        case '\\':
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
        }
        buf_puts(out, esc);
        run = s + 1;
    }
    buf_puts(out, "\"");
}

void json_write_string(struct buf *out, const char *s)
{
    json_write_string_n(out, s, strlen(s));
}

/* Writes v as "%.15g" would, when v has at most 15 significant digits with up to 6 after the
 * point and needs no exponent (0 or 1e-4 <= |v| < 1e15): the metrics of every heartbeat.
 * Returns false for anything else. */
static bool write_short_real(struct buf *out, double v)
{
    static const double pow10[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6};
    double a = v < 0 ? -v : v;
    if (signbit(v) && v == 0)
        return false; /* "-0.0" */
    if (a != 0 && (a < 1e-4 || a >= 1e15))
        return false;
    for (int d = 0; d <= 6; d++) {
        double m = a * pow10[d];
        if (m >= 1e15)
            return false; /* more than 15 significant digits */
        uint64_t r = (uint64_t)llround(m);
        /* Exactly the double that this decimal parses to (both correctly rounded). */
        if ((double)r / pow10[d] != a)
            continue;
        /* Digits from the right: the fraction (no trailing zero: a shorter d would have
         * matched), the point, the integer part. */
        char num[40];
        char *p = num + sizeof(num);
        for (int k = 0; k < d; k++, r /= 10)
            *--p = (char)('0' + r % 10);
        if (d > 0)
            *--p = '.';
        do
            *--p = (char)('0' + r % 10);
        while ((r /= 10) > 0);
        if (v < 0)
            *--p = '-';
        buf_append(out, p, (size_t)(num + sizeof(num) - p));
        if (d == 0)
            buf_puts(out, ".0");
        return true;
    }
    return false;
}

void json_write_real(struct buf *out, double v)
{
    if (write_short_real(out, v))
        return;
    char num[40];
    snprintf(num, sizeof(num), "%.15g", v);
    /* Like jansson: keep it a real ("42.0"), and write exponents short ("6e-6", not "6e-06"). */
    char *e = strchr(num, 'e');
    if (e) {
        char *digits = e + 1 + (e[1] == '-' || e[1] == '+');
        char *d = digits;
        while (*d == '0' && d[1])
            d++;
        memmove(digits, d, strlen(d) + 1);
        if (e[1] == '+')
            memmove(e + 1, e + 2, strlen(e + 2) + 1);
    } else if (!strchr(num, '.') && !strchr(num, 'n') && !strchr(num, 'i')) {
        strcat(num, ".0");
    }
    buf_puts(out, num);
}

char *json_render(json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(doc);
    if (!text)
        abort();
    return text;
}

char *json_render_page(const char *name, json_t *list, bool more, int64_t last_key,
                       const char *last_id)
{
    json_t *next = json_null();
    if (more) {
        char cursor[320];
        snprintf(cursor, sizeof(cursor), "%lld-%s", (long long)last_key, last_id);
        next = json_string(cursor);
    }
    return json_render(json_pack("{s:o, s:o}", name, list, "next", next));
}

size_t utf8_length(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

int json_depth(const json_t *v)
{
    int max = 0;
    if (json_is_object(v)) {
        const char *key;
        json_t *child;
        json_object_foreach((json_t *)v, key, child)
        {
            int d = json_depth(child);
            if (d > max)
                max = d;
        }
        return max + 1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *child;
        json_array_foreach(v, i, child)
        {
            int d = json_depth(child);
            if (d > max)
                max = d;
        }
        return max + 1;
    }
    return 0;
}

bool id_is_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return false;
        if (n >= 128)
            return false;
    }
    return n >= 1;
}
