/* resp.h - incremental HTTP/1.1 response parser for the load generator */
#ifndef AEI_CLI_RESP_H
#define AEI_CLI_RESP_H

#include <stdbool.h>
#include <stddef.h>

/* Responses whose head is longer than this are rejected as malformed. */
#define RESP_MAX_HEAD 65536
/* The largest chunk of a chunked body accepted; a larger size is taken as garbage. */
#define RESP_MAX_CHUNK (64u * 1024 * 1024)

struct http_resp {
    int status;       /* 100-599 */
    size_t head_len;  /* bytes of status line and headers, including the blank line */
    size_t total_len; /* head plus body; valid when resp_parse() returned 1 */
    bool close;       /* the server will close the connection after this response */
    bool until_close; /* the body runs until the server closes the connection */
};

/*
 * Parses the response at the start of `buf` (`len` bytes received so far). Returns 1 when a
 * whole response is there (fills `out`), 0 when more bytes are needed, AEI_EINVAL when the bytes
 * are not a valid HTTP/1.x response. A body delimited by connection close (no Content-Length,
 * not chunked) returns 0 with `out->until_close` set; the caller completes it at end of stream.
 * Interim 1xx responses are reported like final ones; the caller skips them.
 */
int resp_parse(const char *buf, size_t len, struct http_resp *out);

/* True if the `n` bytes at `p` are `name`, which is in lower case, compared without ASCII case:
 * a header name. */
bool resp_name_is(const char *p, size_t n, const char *name);

/* True if the comma-separated header value of `n` bytes at `v` holds `token` (lower case, not
 * empty), compared without ASCII case; white space around the list's items is ignored. */
bool resp_value_has(const char *v, size_t n, const char *token);

#endif
