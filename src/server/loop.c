/* loop.c - the service loop: a libwebsockets context on lws's poll() or on libev's epoll */
#include "server/loop.h"

#include <ev.h>
#include <stdlib.h>

struct loop {
    struct lws_context *ctx;
    struct ev_loop *ev; /* NULL when the context polls */
};

struct loop *loop_new(struct lws_context_creation_info *info, bool epoll, bool *polls)
{
    struct loop *l = calloc(1, sizeof(*l));
    if (!l)
        abort();
    /* The context runs on a loop of ours (lws calls it foreign), one turn per loop_run_once(), so
     * that the caller's loop sees a stop request between turns. */
    l->ev = epoll ? ev_loop_new(EVBACKEND_EPOLL) : NULL;
    if (l->ev) {
        void *foreign[1] = {l->ev};
        info->options |= LWS_SERVER_OPTION_LIBEV;
        info->foreign_loops = foreign;
        l->ctx = lws_create_context(info);
        info->options &= ~(uint64_t)LWS_SERVER_OPTION_LIBEV;
        info->foreign_loops = NULL;
        if (!l->ctx) {
            ev_loop_destroy(l->ev);
            l->ev = NULL;
        }
    }
    if (!l->ctx)
        l->ctx = lws_create_context(info);
    if (!l->ctx) {
        free(l);
        return NULL;
    }
    if (polls)
        *polls = epoll && l->ev == NULL;
    return l;
}

struct lws_context *loop_context(const struct loop *l)
{
    return l->ctx;
}

int loop_run_once(struct loop *l)
{
    if (!l->ev)
        return lws_service(l->ctx, 0);
    ev_run(l->ev, EVRUN_ONCE);
    return 0;
}

void loop_free(struct loop *l)
{
    if (!l)
        return;
    lws_context_destroy(l->ctx);
    if (l->ev)
        ev_loop_destroy(l->ev);
    free(l);
}
