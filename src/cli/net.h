/* net.h - the server address option and a small blocking HTTP/1.1 client for `aei` commands */
#ifndef AEI_CLI_NET_H
#define AEI_CLI_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Accepts HOST:PORT, [IPV6]:PORT, optionally prefixed by http:// (ws:// for --ws) and followed
 * by a slash, into host[256], port[8] and authority[272]. On a bad value prints
 * "<cmd>: <opt>: expected ..." to stderr and returns AEI_EINVAL.
 */
int cli_parse_server(const char *cmd, const char *opt, const char *s, char *host_out,
                     char *port_out, char *authority);

/* One request and its answer over a connection of its own (Connection: close). */
struct cli_http {
    int fd;
    int status;             /* of the answer, once its head is read */
    bool chunked;           /* the body comes in chunks ... */
    int64_t content_length; /* ... or is this long, or -1: until the server closes */
    int64_t chunk_left;     /* bytes left in the current chunk; -1 before the first */
    bool done;              /* the whole body has been read */
    char buf[65536];        /* bytes received and not yet consumed: buf[off, len) */
    size_t off, len;
};

/* Connects to host:port (authority is for messages) with a `timeout_s` for connecting and for
 * each read. Returns 0, or AEI_EUNAVAILABLE after printing "<cmd>: cannot connect to ...". */
int cli_http_open(struct cli_http *c, const char *cmd, const char *host, const char *port,
                  const char *authority, int timeout_s);
/* Sends the whole request (head and body). Returns 0 or AEI_EIO. */
int cli_http_send(struct cli_http *c, const char *data, size_t len);
/* Reads the answer's status line and headers. Returns 0, or AEI_EIO when the connection ended
 * or the answer is not HTTP/1.x. */
int cli_http_read_head(struct cli_http *c);
/* Reads the next piece of the body into out (up to n bytes). Returns the bytes read, 0 at the
 * body's end (c->done set), or AEI_EIO when the connection ended before the body did. */
long cli_http_read_body(struct cli_http *c, char *out, size_t n);
/* Reads the rest of the body (at most `max` bytes kept) into a NUL-terminated string. Returns
 * it (caller frees with free()) or NULL when it could not be read whole. */
char *cli_http_read_all(struct cli_http *c, size_t max);
/* Closes the connection; safe to call twice. */
void cli_http_close(struct cli_http *c);

/* Prints "<cmd>: the server answered <status>: <message>" from an AEI error document, with a hint
 * for 401 and 404. */
void cli_http_report(const char *cmd, int status, const char *body);

#endif
