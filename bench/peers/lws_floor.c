/* lws_floor.c - a peer for `make bench`: libwebsockets alone, answering 204 to every request.
 *
 * aeid serves HTTP through libwebsockets from one loop thread. This program does only what the
 * library must do for a heartbeat request: read the headers and the body on one keep-alive
 * connection among many, then write one answer with no body, from one thread, with the same
 * context and vhost options as aeid, on the same loop (src/server/loop.c). No JSON, no store, no
 * hub. Its rate is the most that aeid's HTTP layer could ever reach on this machine and this load,
 * beside nginx's `return 204`.
 *
 * Usage: lws-floor PORT (listens on 127.0.0.1:PORT until SIGTERM or SIGINT). */
#include "server/loop.h"

#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

/* libwebsockets 4.1 repeats BODY_COMPLETION without end for a request with a body pipelined
 * behind another (docs/decisions/0003): past this many, the connection is closed, as aeid does. */
#define COMPLETIONS_MAX 64

/* One request at a time per connection: whether its body has ended and the answer may go. */
struct pss {
    int body_done;
    int completions;
};

/* Whether the request has a body to wait for: a positive Content-Length. (A chunked body never
 * completes in libwebsockets 4.1, decision 0001: such a request is answered at once.) */
static int has_body(struct lws *wsi)
{
    char clen[24] = "";
    return lws_hdr_copy(wsi, clen, sizeof(clen), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
           strtoll(clen, NULL, 10) > 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct pss *pss = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        pss->body_done = 0;
        pss->completions = 0;
        /* A request without a body is complete with its headers. */
        if (!has_body(wsi)) {
            pss->body_done = 1;
            lws_callback_on_writable(wsi);
        }
        return 0;
    case LWS_CALLBACK_HTTP_BODY:
        return 0; /* read and dropped */
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (++pss->completions > COMPLETIONS_MAX)
            return -1;
        if (!pss->body_done) {
            pss->body_done = 1;
            lws_callback_on_writable(wsi);
        }
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE: {
        if (!pss->body_done)
            return 0;
        unsigned char buf[LWS_PRE + 256];
        unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf);
        /* Exactly one lws_write per WRITEABLE callback, as aeid does. */
        if (lws_add_http_common_headers(wsi, HTTP_STATUS_NO_CONTENT, NULL, 0, &p, end) ||
            lws_finalize_http_header(wsi, &p, end))
            return -1;
        if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS_CONTINUATION) < 0)
            return -1;
        pss->body_done = 0;
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    {"http", callback, sizeof(struct pss), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

int main(int argc, char **argv)
{
    char *end = NULL;
    long port = argc == 2 ? strtol(argv[1], &end, 10) : 0;
    if (argc != 2 || !end || *end || port < 1 || port > 65535) {
        fprintf(stderr, "usage: lws-floor PORT (listens on 127.0.0.1:PORT; answers 204)\n");
        return 2;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    lws_set_log_level(LLL_ERR | LLL_WARN, NULL);

    /* The options aeid's server_run() and listen_on() use, minus what a 204 does not need. */
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
    info.max_http_header_data = 4096;
    info.timeout_secs = 10;
    info.server_string = "lws-floor";
    struct loop *loop = loop_new(&info, false, NULL); /* aeid's default loop: poll */
    if (!loop) {
        fprintf(stderr, "lws-floor: cannot create the libwebsockets context\n");
        return 1;
    }
    struct lws_context *ctx = loop_context(loop);
    memset(&info, 0, sizeof(info));
    info.vhost_name = "http";
    info.port = (int)port;
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND | LWS_SERVER_OPTION_DISABLE_IPV6;
    info.keepalive_timeout = 30;
    info.timeout_secs = 10;
    if (!lws_create_vhost(ctx, &info)) {
        fprintf(stderr, "lws-floor: cannot listen on 127.0.0.1:%ld\n", port);
        loop_free(loop);
        return 1;
    }
    while (!stopping && loop_run_once(loop) >= 0)
        ;
    loop_free(loop);
    return 0;
}
