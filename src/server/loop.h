/* loop.h - the service loop: a libwebsockets context on lws's poll() or on libev's epoll */
#ifndef AEI_SERVER_LOOP_H
#define AEI_SERVER_LOOP_H

#include <libwebsockets.h>
#include <stdbool.h>

struct loop;

/*
 * Creates a libwebsockets context from `info`: with `epoll`, on an epoll loop of libev's, where
 * a wake-up costs the sockets that are ready rather than every socket open (decision 0013); else
 * on lws's own poll(). When epoll is asked for but libev or lws's libev plugin is unavailable,
 * the context polls and *polls (optional) is set to true. `info` is as it was on return (the
 * libev option and foreign loop are added for the call only). Returns NULL when no context can be
 * made; the caller frees the loop with loop_free().
 */
struct loop *loop_new(struct lws_context_creation_info *info, bool epoll, bool *polls);

/* The loop's context: borrowed, destroyed by loop_free(). */
struct lws_context *loop_context(const struct loop *l);

/* Waits for events (or lws_cancel_service()) and serves them once. Returns 0, or a negative
 * number when the context has failed for good. */
int loop_run_once(struct loop *l);

/* Destroys the context, then the event loop. loop_free(NULL) is a no-op. */
void loop_free(struct loop *l);

#endif
