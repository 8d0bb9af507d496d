/* net.c - the server address option and a small blocking HTTP/1.1 client for `aei` commands */
#include "cli/net.h"
#include "aei/error.h"

#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int cli_parse_server(const char *cmd, const char *opt, const char *s, char *host_out,
                     char *port_out, char *authority)
{
    const char *p = s;
    if (strncmp(p, "http://", 7) == 0 || strncmp(p, "ws://", 5) == 0)
        p += p[0] == 'h' ? 7 : 5;
    size_t n = strlen(p);
    if (n && p[n - 1] == '/')
        n--;
    const char *colon;
    const char *host;
    size_t hlen;
    bool bracket = n && p[0] == '[';
    if (bracket) {
        const char *rb = memchr(p, ']', n);
        if (!rb || rb + 1 >= p + n || rb[1] != ':')
            goto bad;
        host = p + 1;
        hlen = (size_t)(rb - host);
        colon = rb + 1;
    } else {
        colon = NULL;
        for (size_t i = 0; i < n; i++)
            if (p[i] == ':')
                colon = p + i;
        if (!colon)
            goto bad;
        host = p;
        hlen = (size_t)(colon - p);
        if (memchr(host, ':', hlen))
            goto bad;
    }
    size_t plen = (size_t)(p + n - colon - 1);
    if (hlen == 0 || hlen >= 256 || plen == 0 || plen > 5)
        goto bad;
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)host[i];
        if (c <= ' ' || c >= 127 || c == '/' || c == '@')
            goto bad;
    }
    unsigned port = 0;
    for (size_t i = 0; i < plen; i++) {
        char c = colon[1 + i];
        if (c < '0' || c > '9')
            goto bad;
        port = port * 10 + (unsigned)(c - '0');
    }
    if (port == 0 || port > 65535)
        goto bad;
    memcpy(host_out, host, hlen);
    host_out[hlen] = '\0';
    snprintf(port_out, 8, "%u", port);
    if (bracket)
        snprintf(authority, 272, "[%s]:%u", host_out, port);
    else
        snprintf(authority, 272, "%s:%u", host_out, port);
    return 0;
bad:
    fprintf(stderr,
            "%s: %s: expected HOST:PORT such as 127.0.0.1:3000 or [::1]:3000, "
            "got '%s'\n",
            cmd, opt, s);
    return AEI_EINVAL;
}

int cli_http_open(struct cli_http *c, const char *cmd, const char *host, const char *port,
                  const char *authority, int timeout_s)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->chunk_left = -1;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int r = getaddrinfo(host, port, &hints, &res);
    if (r != 0 || !res) {
        fprintf(stderr, "%s: cannot resolve '%s': %s; check --server\n", cmd, host,
                gai_strerror(r));
        return AEI_EUNAVAILABLE;
    }
    int e = 0;
    for (struct addrinfo *a = res; a && c->fd < 0; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        struct timeval tv = {.tv_sec = timeout_s};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            c->fd = fd;
        } else {
            e = errno;
            close(fd);
        }
    }
    freeaddrinfo(res);
    if (c->fd < 0) {
        fprintf(stderr, "%s: cannot connect to %s: %s; start aeid there or pass --server\n", cmd,
                authority, strerror(e));
        return AEI_EUNAVAILABLE;
    }
    return 0;
}

int cli_http_send(struct cli_http *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return AEI_EIO;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Receives more bytes after the unconsumed ones. Returns the bytes added, 0 at the end of the
 * connection, or AEI_EIO. */
static long fill(struct cli_http *c)
{
    if (c->off > 0) {
        memmove(c->buf, c->buf + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    if (c->len == sizeof(c->buf))
        return AEI_EIO; /* a line longer than the buffer */
    for (;;) {
        ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return AEI_EIO;
        c->len += (size_t)n;
        return (long)n;
    }
}

/* The first occurrence of `needle` in the n bytes at p, or NULL (memmem is a GNU extension). */
static const char *find(const char *p, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(p + i, needle, k) == 0)
            return p + i;
    return NULL;
}

/* Finds the next CRLF-ended line in the unconsumed bytes, receiving more as needed. Returns its
 * start and sets *n to its length (without CRLF), consuming it; NULL at the end or on error. */
static const char *next_line(struct cli_http *c, size_t *n)
{
    for (;;) {
        char *start = c->buf + c->off;
        const char *crlf = find(start, c->len - c->off, "\r\n");
        if (crlf) {
            *n = (size_t)(crlf - start);
            c->off += *n + 2;
            return start;
        }
        if (fill(c) <= 0)
            return NULL;
    }
}

int cli_http_read_head(struct cli_http *c)
{
    size_t n;
    const char *line = next_line(c, &n);
    if (!line || n < 12 || strncmp(line, "HTTP/1.", 7) != 0)
        return AEI_EIO;
    c->status = atoi(line + 9);
    c->content_length = -1;
    while ((line = next_line(c, &n)) && n > 0) {
        if (n > 15 && strncasecmp(line, "content-length:", 15) == 0)
            c->content_length = strtoll(line + 15, NULL, 10);
        else if (n > 18 && strncasecmp(line, "transfer-encoding:", 18) == 0 &&
                 find(line, n, "chunked"))
            c->chunked = true;
    }
    if (!line)
        return AEI_EIO;
    if (c->content_length == 0 && !c->chunked)
        c->done = true;
    return 0;
}

/* Moves past a chunk's size line (and the CRLF ending the chunk before it). */
static int next_chunk(struct cli_http *c)
{
    size_t n;
    const char *line;
    if (c->chunk_left == 0 && (!(line = next_line(c, &n)) || n != 0))
        return AEI_EIO;
    if (!(line = next_line(c, &n)) || n == 0)
        return AEI_EIO;
    char *end;
    long long size = strtoll(line, &end, 16);
    if (end == line || size < 0)
        return AEI_EIO;
    c->chunk_left = size;
    if (size == 0) {
        /* Trailers, if any, end with an empty line. */
        while ((line = next_line(c, &n)) && n > 0)
            ;
        if (!line)
            return AEI_EIO;
        c->done = true;
    }
    return 0;
}

long cli_http_read_body(struct cli_http *c, char *out, size_t n)
{
    while (!c->done) {
        if (c->chunked && c->chunk_left <= 0) {
            if (next_chunk(c) != 0)
                return AEI_EIO;
            continue;
        }
        if (c->off == c->len) {
            long got = fill(c);
            if (got < 0)
                return AEI_EIO;
            if (got == 0) {
                if (!c->chunked && c->content_length < 0) {
                    c->done = true; /* a body that runs until the server closes */
                    return 0;
                }
                return AEI_EIO;
            }
        }
        size_t have = c->len - c->off;
        int64_t want = c->chunked ? c->chunk_left : c->content_length;
        if (want >= 0 && (int64_t)have > want)
            have = (size_t)want;
        if (have > n)
            have = n;
        memcpy(out, c->buf + c->off, have);
        c->off += have;
        if (c->chunked)
            c->chunk_left -= (int64_t)have;
        else if (c->content_length >= 0 && (c->content_length -= (int64_t)have) == 0)
            c->done = true;
        return (long)have;
    }
    return 0;
}

char *cli_http_read_all(struct cli_http *c, size_t max)
{
    char *text = malloc(max + 1);
    size_t len = 0;
    if (!text)
        return NULL;
    for (;;) {
        char piece[4096];
        long n = cli_http_read_body(c, piece, sizeof(piece));
        if (n < 0) {
            free(text);
            return NULL;
        }
        if (n == 0)
            break;
        size_t keep = len + (size_t)n > max ? max - len : (size_t)n;
        memcpy(text + len, piece, keep);
        len += keep;
    }
    text[len] = '\0';
    return text;
}

void cli_http_close(struct cli_http *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

void cli_http_report(const char *cmd, int status, const char *body)
{
    json_t *doc = body ? json_loads(body, 0, NULL) : NULL;
    const char *message =
        json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
    fprintf(stderr, "%s: the server answered %d: %s\n", cmd, status,
            message ? message : (body && *body ? body : "(no message)"));
    if (status == 401)
        fprintf(stderr, "%s: pass the server's token with --token or AEI_TOKEN\n", cmd);
    json_decref(doc);
}
