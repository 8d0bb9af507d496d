/* test_resp.c - incremental HTTP/1.1 response parser of the load generator */
#include "cli/resp.h"

#include "aei/error.h"

#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses the first `len` bytes of `s` from a heap copy of exactly that size, so that the
 * sanitizer build catches any read past what was received. */
static int parse_n(const char *s, size_t len, struct http_resp *out)
{
    char *b = malloc(len ? len : 1);
    cr_assert_not_null(b);
    memcpy(b, s, len);
    int rc = resp_parse(b, len, out);
    free(b);
    return rc;
}

static int parse(const char *s, struct http_resp *out)
{
    return parse_n(s, strlen(s), out);
}

/* A complete response: 1 at full length, 0 for every shorter prefix (a read boundary at every
 * byte), and the same result with the next response's bytes already behind it. */
static struct http_resp parse_whole(const char *s)
{
    size_t len = strlen(s);
    struct http_resp r;
    for (size_t k = 0; k < len; k++) {
        memset(&r, 0, sizeof(r));
        int rc = parse_n(s, k, &r);
        cr_assert_eq(rc, 0, "prefix of %zu of %zu bytes: expected 0 (need more), got %d\n%s", k,
                     len, rc, s);
        cr_assert(!r.until_close, "prefix of %zu bytes is not delimited by close", k);
    }
    memset(&r, 0, sizeof(r));
    int rc = parse_n(s, len, &r);
    cr_assert_eq(rc, 1, "whole response of %zu bytes: got %d\n%s", len, rc, s);
    cr_assert_eq(r.total_len, len, "total_len %zu of %zu\n%s", r.total_len, len, s);
    cr_assert_leq(r.head_len, r.total_len);

    static const char next[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    char *two = malloc(len + sizeof(next));
    cr_assert_not_null(two);
    memcpy(two, s, len);
    memcpy(two + len, next, sizeof(next));
    for (size_t extra = 1; extra < sizeof(next); extra++) {
        struct http_resp r2;
        cr_assert_eq(parse_n(two, len + extra, &r2), 1);
        cr_assert_eq(r2.total_len, len, "pipelined: the next response's bytes are not counted");
        cr_assert_eq(r2.status, r.status);
        cr_assert_eq(r2.close, r.close);
    }
    free(two);
    return r;
}

static void assert_invalid(const char *s, size_t len)
{
    struct http_resp r;
    int rc = parse_n(s, len, &r);
    cr_assert_eq(rc, AEI_EINVAL, "expected AEI_EINVAL, got %d for:\n%.*s", rc, (int)len, s);
}

Test(resp, status_line)
{
    struct http_resp r = parse_whole("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.head_len, 38);
    cr_assert_eq(r.total_len, 38);
    cr_assert(!r.close);
    cr_assert(!r.until_close);

    r = parse_whole("HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n");
    cr_assert_eq(r.status, 404, "the reason phrase is optional");
    r = parse_whole("HTTP/1.1 503 \r\nContent-Length: 0\r\n\r\n");
    cr_assert_eq(r.status, 503, "an empty reason phrase");
    r = parse_whole("HTTP/1.1 599 Whatever It Says: here\r\nContent-Length: 0\r\n\r\n");
    cr_assert_eq(r.status, 599);
}

Test(resp, content_length_body)
{
    const char *head = "HTTP/1.1 200 OK\r\n"
                       "Content-Type: application/json\r\n"
                       "Content-Length: 13\r\n"
                       "\r\n";
    char buf[128];
    snprintf(buf, sizeof(buf), "%s%s", head, "{\"ok\": true}\n");
    struct http_resp r = parse_whole(buf);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.head_len, strlen(head));
    cr_assert_eq(r.total_len, strlen(head) + 13);

    r = parse_whole("HTTP/1.1 201 Created\r\ncontent-LENGTH:\t 5 \t\r\n\r\nhello");
    cr_assert_eq(r.total_len - r.head_len, 5, "names are case-insensitive, values trimmed");
    r = parse_whole("HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd");
    cr_assert_eq(r.total_len - r.head_len, 4, "a repeated equal Content-Length is fine");
    /* The body may hold anything, even what looks like a head. */
    r = parse_whole("HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n\r\n\r\n\r\n\r\n");
    cr_assert_eq(r.total_len - r.head_len, 8);
}

Test(resp, chunked_body)
{
    struct http_resp r = parse_whole("HTTP/1.1 200 OK\r\n"
                                     "Transfer-Encoding: chunked\r\n"
                                     "\r\n"
                                     "5\r\nhello\r\n"
                                     "6;name=value\r\n world\r\n"
                                     "A \r\n0123456789\r\n"
                                     "0\r\n"
                                     "\r\n");
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.head_len, 47);

    r = parse_whole("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"
                    "1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Checksum: 1\r\nX-More: 2\r\n\r\n");
    cr_assert_eq(r.status, 200, "trailer fields are skipped");

    r = parse_whole("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "0\r\n\r\n");
    cr_assert_eq(r.total_len - r.head_len, 5, "chunked wins over Content-Length");
}

Test(resp, chunked_errors)
{
    const char *bodies[] = {
        "5\r\nhelloXY0\r\n\r\n", /* no CRLF after the chunk data */
        "g\r\nx\r\n0\r\n\r\n",   /* not hex */
        "\r\n0\r\n\r\n",         /* no size */
        "5x\r\nhello\r\n0\r\n\r\n",
        "-1\r\nx\r\n0\r\n\r\n",
        "1000000000000000\r\n", /* 16 hex digits */
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        char buf[256];
        int n = snprintf(buf, sizeof(buf),
                         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%s", bodies[i]);
        assert_invalid(buf, (size_t)n);
    }

    /* A chunk-size line that never ends. */
    size_t n = 47 + 2000;
    char *big = malloc(n);
    cr_assert_not_null(big);
    memcpy(big, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 47);
    memset(big + 47, '1', 5);
    memset(big + 52, ';', n - 52);
    assert_invalid(big, n);
    free(big);
}

Test(resp, interim_1xx_then_final)
{
    const char *s = "HTTP/1.1 100 Continue\r\n\r\n"
                    "HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n"
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    size_t len = strlen(s);
    struct http_resp r;

    cr_assert_eq(parse(s, &r), 1);
    cr_assert_eq(r.status, 100);
    cr_assert_eq(r.total_len, 25, "an interim response has no body");
    cr_assert_eq(r.head_len, 25);
    size_t off = r.total_len;

    cr_assert_eq(parse_n(s + off, len - off, &r), 1);
    cr_assert_eq(r.status, 103);
    off += r.total_len;

    cr_assert_eq(parse_n(s + off, len - off, &r), 1);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(off + r.total_len, len);

    /* Each one alone, split at every byte. */
    parse_whole("HTTP/1.1 100 Continue\r\n\r\n");
    r = parse_whole("HTTP/1.1 101 Switching Protocols\r\nContent-Length: 9\r\n\r\n");
    cr_assert_eq(r.status, 101);
    cr_assert_eq(r.total_len, r.head_len, "1xx never has a body, whatever the headers say");
}

Test(resp, no_body_statuses)
{
    struct http_resp r = parse_whole("HTTP/1.1 204 No Content\r\n\r\n");
    cr_assert_eq(r.status, 204);
    cr_assert(!r.until_close);
    r = parse_whole("HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n");
    cr_assert_eq(r.total_len, r.head_len);
}

Test(resp, connection_close)
{
    struct http_resp r =
        parse_whole("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi");
    cr_assert(r.close);
    r = parse_whole(
        "HTTP/1.1 503 Busy\r\nConnection: Keep-Alive, CLOSE\r\nContent-Length: 0\r\n\r\n");
    cr_assert(r.close, "close in a list, any case");
    r = parse_whole("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
    cr_assert(!r.close);
    r = parse_whole("HTTP/1.1 200 OK\r\nX-Connection: close\r\nContent-Length: 0\r\n\r\n");
    cr_assert(!r.close, "only the Connection header counts");
    r = parse_whole("HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 0\r\n\r\n");
    cr_assert(!r.close, "whole tokens only");

    r = parse_whole("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
    cr_assert(r.close, "HTTP/1.0 closes by default");
    r = parse_whole("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
    cr_assert(!r.close, "unless it says keep-alive");
    r = parse_whole("HTTP/1.1 100 Continue\r\nConnection: close\r\n\r\n");
    cr_assert(r.close);
}

Test(resp, body_until_close)
{
    const char *s = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome bytes";
    size_t len = strlen(s);
    size_t head = strlen("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
    for (size_t k = 0; k <= len; k++) {
        struct http_resp r;
        memset(&r, 0, sizeof(r));
        cr_assert_eq(parse_n(s, k, &r), 0, "prefix %zu", k);
        cr_assert_eq(r.until_close, k >= head, "prefix %zu: until_close once the head is in", k);
        if (k >= head) {
            cr_assert(r.close);
            cr_assert_eq(r.status, 200);
            cr_assert_eq(r.head_len, head);
        }
    }
}

Test(resp, malformed_status_lines)
{
    const char *lines[] = {
        "",
        "HTTP/1.1",
        "HTTP/1.1 ",
        "HTTP/1.1 200OK",
        "HTTP/1.1 20 OK",
        "HTTP/1.1 2000 OK",
        "HTTP/1.1 099 Too Low",
        "HTTP/1.1 600 Too High",
        "HTTP/1.1 abc OK",
        "HTTP/1.1 -20 OK",
        "HTTP/1.1  200 OK",
        "HTTP/1.2 200 OK",
        "HTTP/2 200 OK",
        "HTTP/2.0 200 OK",
        "http/1.1 200 OK",
        "HTTP/1.1\t200 OK",
        "ICY 200 OK",
        " HTTP/1.1 200 OK",
        "GET / HTTP/1.1",
        "\x16\x03\x01\x02\x01\x01\xfc\x03\x03\xff",
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        char buf[256];
        int n = snprintf(buf, sizeof(buf), "%s\r\nContent-Length: 0\r\n\r\n", lines[i]);
        assert_invalid(buf, (size_t)n);
        n = snprintf(buf, sizeof(buf), "%s\r\n\r\n", lines[i]);
        assert_invalid(buf, (size_t)n);
    }
    const char nul[] = "HTTP/1.1 2\0"
                       "0 OK\r\n\r\n";
    assert_invalid(nul, sizeof(nul) - 1);
}

Test(resp, malformed_headers)
{
    const char *heads[] = {
        "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        "HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    };
    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++)
        assert_invalid(heads[i], strlen(heads[i]));
}

Test(resp, oversized_head)
{
    const char *status = "HTTP/1.1 200 OK\r\n";
    const char *tail = "\r\nContent-Length: 0\r\n\r\n";
    size_t n = RESP_MAX_HEAD + 2;
    char *buf = malloc(n);
    cr_assert_not_null(buf);

    /* A head of exactly RESP_MAX_HEAD bytes is fine; one byte more is not. */
    for (size_t head = RESP_MAX_HEAD; head <= RESP_MAX_HEAD + 1; head++) {
        size_t pad = head - strlen(status) - strlen(tail) - strlen("X-Pad: ");
        size_t off = 0;
        memcpy(buf + off, status, strlen(status));
        off += strlen(status);
        memcpy(buf + off, "X-Pad: ", 7);
        off += 7;
        memset(buf + off, 'a', pad);
        off += pad;
        memcpy(buf + off, tail, strlen(tail));
        off += strlen(tail);
        cr_assert_eq(off, head);
        struct http_resp r;
        int rc = parse_n(buf, off, &r);
        if (head == RESP_MAX_HEAD) {
            cr_assert_eq(rc, 1, "a %zu-byte head", head);
            cr_assert_eq(r.head_len, head);
        } else {
            cr_assert_eq(rc, AEI_EINVAL, "a %zu-byte head", head);
        }
    }

    /* A head that never ends: wait up to the limit, then give up. */
    memcpy(buf, status, strlen(status));
    memset(buf + strlen(status), 'b', n - strlen(status));
    struct http_resp r;
    cr_assert_eq(parse_n(buf, RESP_MAX_HEAD, &r), 0);
    cr_assert_eq(parse_n(buf, RESP_MAX_HEAD + 1, &r), AEI_EINVAL);
    free(buf);

    /* Megabytes of garbage without a single line end. */
    size_t big = 4 << 20;
    char *junk = malloc(big);
    cr_assert_not_null(junk);
    memset(junk, 'z', big);
    cr_assert_eq(parse_n(junk, big, &r), AEI_EINVAL);
    free(junk);
}

/* xorshift64*: deterministic mutations without libc's rand(). */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

Test(resp, mutated_responses_never_crash)
{
    static const char *seeds[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n",
        "HTTP/1.0 100 Continue\r\n\r\nHTTP/1.0 204 No Content\r\n\r\n",
    };
    static const char alphabet[] = "\r\n :;0123456789aAfFgHTP/.,\t\x00\xff";
    uint64_t seed = 12345;
    char buf[160];
    for (int iter = 0; iter < 3000; iter++) {
        const char *src = seeds[iter % 3];
        size_t len = strlen(src);
        memcpy(buf, src, len);
        int edits = 1 + (int)(rng_next(&seed) % 4);
        for (int e = 0; e < edits; e++) {
            size_t at = rng_next(&seed) % len;
            char c = alphabet[rng_next(&seed) % (sizeof(alphabet) - 1)];
            switch (rng_next(&seed) % 3) {
            case 0: /* replace */
                buf[at] = c;
                break;
            case 1: /* insert */
                if (len < sizeof(buf)) {
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = c;
                    len++;
                }
                break;
            default: /* delete */
                memmove(buf + at, buf + at + 1, len - at - 1);
                len--;
                break;
            }
        }
        for (size_t k = 0; k <= len; k++) {
            struct http_resp r;
            memset(&r, 0, sizeof(r));
            int rc = parse_n(buf, k, &r);
            cr_assert(rc == 1 || rc == 0 || rc == AEI_EINVAL, "result %d", rc);
            if (rc == 1) {
                cr_assert(r.status >= 100 && r.status <= 599);
                cr_assert_leq(r.head_len, r.total_len);
                cr_assert_leq(r.total_len, k, "total_len within what was received");
            }
        }
    }
}

Test(resp, rejects_space_before_colon_and_absurd_chunk_sizes)
{
    const char *bad[] = {
        "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct http_resp r;
        cr_assert_eq(resp_parse(bad[i], strlen(bad[i]), &r), AEI_EINVAL, "case %zu", i);
    }
}
