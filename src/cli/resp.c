/* resp.c - incremental HTTP/1.1 response parser for the load generator */
#include "cli/resp.h"

#include "aei/error.h"

#include <stdint.h>
#include <string.h>

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

bool resp_name_is(const char *p, size_t n, const char *name)
{
    size_t k = strlen(name);
    if (n != k)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)p[i]) != name[i])
            return false;
    return true;
}

bool resp_value_has(const char *v, size_t n, const char *token)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (resp_name_is(v + s, e - s, token))
            return true;
    }
    return false;
}

static int parse_length(const char *v, size_t n, uint64_t *out)
{
    uint64_t x = 0;
    if (n == 0)
        return AEI_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return AEI_EINVAL;
        if (x > (UINT64_MAX - 9) / 10)
            return AEI_EINVAL;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    *out = x;
    return 0;
}

/* Finds "\r\n" in [p, p+n); returns its offset or -1. */
static long find_crlf(const char *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++)
        if (p[i] == '\r' && p[i + 1] == '\n')
            return (long)i;
    return -1;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Walks chunks starting at `p`; sets *used to the body length once the last chunk is in. */
static int parse_chunked(const char *p, size_t n, size_t *used)
{
    size_t off = 0;
    for (;;) {
        long eol = find_crlf(p + off, n - off);
        if (eol < 0)
            return n - off > 1024 ? AEI_EINVAL : 0;
        uint64_t size = 0;
        size_t i = off;
        int digits = 0;
        for (; i < off + (size_t)eol; i++) {
            int h = hexval((unsigned char)p[i]);
            if (h < 0)
                break;
            if (++digits > 15)
                return AEI_EINVAL;
            size = size * 16 + (uint64_t)h;
        }
        if (digits == 0 || (i < off + (size_t)eol && p[i] != ';' && p[i] != ' ' && p[i] != '\t'))
            return AEI_EINVAL;
        off += (size_t)eol + 2;
        if (size == 0) {
            /* Trailer fields until an empty line. */
            for (;;) {
                long t = find_crlf(p + off, n - off);
                if (t < 0)
                    return n - off > RESP_MAX_HEAD ? AEI_EINVAL : 0;
                off += (size_t)t + 2;
                if (t == 0) {
                    *used = off;
                    return 1;
                }
            }
        }
        if (size > RESP_MAX_CHUNK)
            return AEI_EINVAL;
        if (n - off < size + 2)
            return 0;
        if (p[off + size] != '\r' || p[off + size + 1] != '\n')
            return AEI_EINVAL;
        off += (size_t)size + 2;
    }
}

int resp_parse(const char *buf, size_t len, struct http_resp *out)
{
    const char *end = NULL;
    for (size_t i = 0; i + 3 < len; i++) {
        if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n') {
            end = buf + i + 4;
            break;
        }
    }
    if (!end)
        return len > RESP_MAX_HEAD ? AEI_EINVAL : 0;
    size_t head_len = (size_t)(end - buf);
    if (head_len > RESP_MAX_HEAD)
        return AEI_EINVAL;

    /* Status line: HTTP/1.x SP 3DIGIT [SP reason] CRLF */
    if (head_len < 14 || memcmp(buf, "HTTP/1.", 7) != 0 || (buf[7] != '0' && buf[7] != '1') ||
        buf[8] != ' ')
        return AEI_EINVAL;
    bool http10 = buf[7] == '0';
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return AEI_EINVAL;
        status = status * 10 + (buf[i] - '0');
    }
    if (status < 100 || status > 599 || (buf[12] != ' ' && buf[12] != '\r'))
        return AEI_EINVAL;

    long sl = find_crlf(buf, head_len);
    size_t pos = (size_t)sl + 2;
    bool have_len = false, chunked = false, close = http10, keep = false;
    uint64_t clen = 0;
    while (pos < head_len - 2) {
        long eol = find_crlf(buf + pos, head_len - pos);
        if (eol <= 0)
            return AEI_EINVAL;
        const char *line = buf + pos;
        size_t n = (size_t)eol;
        const char *colon = memchr(line, ':', n);
        if (!colon || colon == line)
            return AEI_EINVAL;
        size_t nlen = (size_t)(colon - line);
        /* No white space may stand between a field name and its colon (RFC 9112, 5.1). */
        if (line[nlen - 1] == ' ' || line[nlen - 1] == '\t')
            return AEI_EINVAL;
        const char *v = colon + 1;
        size_t vlen = n - nlen - 1;
        while (vlen && (*v == ' ' || *v == '\t')) {
            v++;
            vlen--;
        }
        while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        if (resp_name_is(line, nlen, "content-length")) {
            uint64_t x;
            if (parse_length(v, vlen, &x) < 0 || (have_len && x != clen))
                return AEI_EINVAL;
            have_len = true;
            clen = x;
        } else if (resp_name_is(line, nlen, "transfer-encoding")) {
            chunked = resp_value_has(v, vlen, "chunked");
        } else if (resp_name_is(line, nlen, "connection")) {
            if (resp_value_has(v, vlen, "close"))
                close = true;
            if (resp_value_has(v, vlen, "keep-alive"))
                keep = true;
        }
        pos += n + 2;
    }
    if (http10 && keep)
        close = false;

    memset(out, 0, sizeof(*out));
    out->status = status;
    out->head_len = head_len;
    out->close = close;

    /* 1xx, 204 and 304 never carry a body (we never send HEAD). */
    if (status < 200 || status == 204 || status == 304) {
        out->total_len = head_len;
        return 1;
    }
    if (chunked) {
        size_t used = 0;
        int r = parse_chunked(end, len - head_len, &used);
        if (r <= 0)
            return r;
        out->total_len = head_len + used;
        return 1;
    }
    if (have_len) {
        if (clen > SIZE_MAX / 2)
            return AEI_EINVAL;
        if (len - head_len < clen)
            return 0;
        out->total_len = head_len + (size_t)clen;
        return 1;
    }
    out->until_close = true;
    out->close = true;
    return 0;
}
