/* bench_ws.c - `aei bench` WebSocket subscribers: push latency, slow readers, reconnect storms */
#include "cli/bench_ws.h"
#include "cli/bench_util.h"
#include "cli/feed.h"
#include "cli/hist.h"
#include "cli/resp.h"
#include "cli/ws.h"

#include "aei/error.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_S 1000000000ull
#define SCAN_NS 20000000ull        /* how often deadlines and reconnects are checked */
#define BACKOFF_MIN_NS 50000000ull /* first delay before a subscriber reconnects */
#define BACKOFF_MAX_NS 1000000000ull
#define CLOSE_WAIT_NS 1000000000ull /* how long a close handshake may take */
#define RBUF_STEADY (256u * 1024)
#define RBUF_STORM (16u * 1024)
#define MAX_MESSAGE (64u * 1024 * 1024) /* a larger frame or message is a protocol error */
#define READS_PER_EVENT 4               /* then the next connection gets its turn */
#define STORM_SLOTS 8192                /* storm connections open at once */
#define SLOW_RCVBUF 4096
#define MAX_EVENTS 256
#define MAX_CLOSE_CODES 8
#define PHASES 3 /* before, during and after the storm; other scenarios use the first */

static const char subscribe_msg[] = "{\"op\":\"subscribe\",\"topic\":\"agents:all\"}";

enum ws_state { WSC_DOWN, WSC_CONNECTING, WSC_HANDSHAKE, WSC_OPEN, WSC_CLOSING };

enum ws_role { ROLE_STEADY, ROLE_SLOW, ROLE_STORM };

enum ws_err { WE_CONNECT, WE_HANDSHAKE, WE_TIMEOUT, WE_CLOSED, WE_PROTOCOL, WE_IO, WE_KINDS };
static const char *const we_names[WE_KINDS] = {"connect", "handshake", "timeout",
                                               "closed",  "protocol",  "io"};

/* What the subscribers of one role received. */
struct ws_counts {
    uint64_t delivered; /* deltas of heartbeats sent inside the window */
    uint64_t outside;   /* deltas of heartbeats sent before or after it */
    uint64_t untimed;   /* deltas without a (valid) agent_ts: liveness changes */
    uint64_t snapshots;
    uint64_t subscribed;
    uint64_t events;
    uint64_t totals;
    uint64_t server_errors; /* {"type":"error"} */
    uint64_t other;
    uint64_t messages;    /* hub messages (an array frame holds several) */
    uint64_t ws_messages; /* WebSocket text messages */
    uint64_t bytes;       /* payload bytes of those */
    uint64_t bad_json;    /* text messages that are not a message or an array of them */
    uint64_t seq_gaps;    /* updates skipped without a snapshot in between */
    uint64_t seq_regressions;
};

struct ws_conn {
    int fd;
    enum ws_state state;
    enum ws_role role;
    unsigned id;
    uint32_t events; /* registered with epoll */
    bool registered;
    bool ready; /* subscribed (or upgraded, without subscribing) */
    bool ever_ready;
    bool got_subscribed;
    bool got_snapshot;
    bool close_sent;
    bool paused; /* the slow subscriber, not reading */
    bool in_msg; /* inside a fragmented message */
    unsigned msg_op;
    bool seq_known;
    uint64_t last_seq;
    uint64_t deadline_ns;
    uint64_t backoff_ns;
    uint64_t opened_ns;
    char key[WS_KEY_LEN];
    uint8_t *rbuf;
    size_t rlen, rcap, need;
    uint8_t *msg;
    size_t mlen, mcap;
    char *wbuf;
    size_t wlen, woff, wcap;
};

/* The slow subscriber's story; times are CLOCK_MONOTONIC ns, 0 when it did not happen. */
struct ws_slow {
    bool present;
    uint64_t paused_ns;
    uint64_t dropped_ns; /* the kernel reported a hang-up or reset while it was not reading */
    const char *dropped_how;
    uint64_t resumed_ns;
    unsigned close_code; /* 0: no close frame seen */
    uint64_t close_ns;
    bool eof;
    const char *end; /* how its connection ended */
    bool end_set;
    struct ws_counts c;
};

struct ws_worker {
    pthread_t tid;
    bool started;
    struct ws_bench *b;
    int ep;
    bool storm;
    struct ws_conn *conns;
    unsigned nconns;
    unsigned *free_slots; /* storm: unused entries of conns */
    unsigned nfree;
    uint64_t rng;
    struct ws_window win;
    bool have_win;
    bool stopping;
    atomic_bool slow_resumed;
    double cpu_s; /* CPU time this thread used */
    /* Steady subscribers' push latency by the phase of the heartbeat's send time. */
    struct hist lat[PHASES];
    _Atomic uint64_t delivered;
    atomic_uint ready;
    struct ws_counts c; /* steady subscribers */
    struct ws_slow slow;
    uint64_t errors[WE_KINDS];
    uint64_t http[600];
    uint64_t connects, disconnects;
    struct {
        unsigned code;
        uint64_t n;
    } closes[MAX_CLOSE_CODES];
    /* Storm. */
    uint64_t storm_k;
    struct hist storm_ready; /* connect to subscribed (and snapshot) */
    uint64_t storm_attempted, storm_ready_n, storm_clean, storm_skipped;
    atomic_bool storm_idle; /* the storm is over and its connections are gone */
    atomic_bool slow_done;
    _Atomic uint64_t slow_last_rx;
};

struct ws_bench {
    const struct ws_opts *o;
    int64_t wall_off_ns;
    struct ws_window win;
    atomic_bool go;
    atomic_bool stop;
    atomic_int fatal; /* a subscriber's handshake was refused; `why` says how */
    char why[512];
    pthread_mutex_t why_lock;
    struct ws_worker *ws; /* o->threads steady workers, then the storm worker if any */
    unsigned nworkers;
    uint64_t committed;
};

/* Seconds from the start of the measurement window to `t`. */
static double rel_s(const struct ws_bench *b, uint64_t t)
{
    return ((double)t - (double)b->win.warm_end) / 1e9;
}

static struct ws_counts *counts(struct ws_worker *w, const struct ws_conn *c)
{
    return c->role == ROLE_SLOW ? &w->slow.c : &w->c;
}

static void note_close(struct ws_worker *w, unsigned code)
{
    if (w->stopping)
        return; /* the answers to our own goodbyes */
    for (int i = 0; i < MAX_CLOSE_CODES; i++) {
        if (w->closes[i].n == 0)
            w->closes[i].code = code;
        if (w->closes[i].code == code) {
            w->closes[i].n++;
            return;
        }
    }
}

/* The first refusal of a steady subscriber's handshake ends the wait for readiness. */
static void set_fatal(struct ws_worker *w, const char *msg)
{
    struct ws_bench *b = w->b;
    pthread_mutex_lock(&b->why_lock);
    if (!atomic_load(&b->fatal)) {
        snprintf(b->why, sizeof(b->why), "%s", msg);
        atomic_store(&b->fatal, 1);
    }
    pthread_mutex_unlock(&b->why_lock);
}

/* ---- connections ---- */

static void set_events(struct ws_worker *w, struct ws_conn *c, uint32_t ev)
{
    if (c->registered && c->events == ev)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(w->ep, c->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &e) == 0) {
        c->registered = true;
        c->events = ev;
    }
}

static uint32_t base_events(const struct ws_conn *c)
{
    return c->paused ? (EPOLLRDHUP | EPOLLET) : (EPOLLIN | EPOLLRDHUP);
}

static void conn_reset(struct ws_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = WSC_DOWN;
    c->registered = false;
    c->ready = false;
    c->got_subscribed = false;
    c->got_snapshot = false;
    c->close_sent = false;
    c->in_msg = false;
    c->seq_known = false;
    c->rlen = c->need = c->mlen = 0;
    c->wlen = c->woff = 0;
}

static void storm_release(struct ws_worker *w, struct ws_conn *c)
{
    w->free_slots[w->nfree++] = (unsigned)(c - w->conns);
}

/* A connection is over, cleanly (`kind` < 0) or not. A second call is a no-op. */
static void conn_end(struct ws_worker *w, struct ws_conn *c, int kind, uint64_t now)
{
    if (c->state == WSC_DOWN)
        return;
    bool was_ready = c->ready;
    conn_reset(c);
    if (w->stopping && c->role == ROLE_SLOW && !w->slow.end_set) {
        w->slow.end = "still open at the end of the run";
        w->slow.end_set = true;
    }
    if (w->stopping)
        return;
    if (kind >= 0 && c->role != ROLE_SLOW)
        w->errors[kind]++;
    switch (c->role) {
    case ROLE_STORM:
        if (kind < 0)
            w->storm_clean++;
        storm_release(w, c);
        return;
    case ROLE_SLOW:
        if (kind < 0)
            w->slow.end = "closed after a close handshake";
        else if (kind == WE_CLOSED && !w->slow.end_set)
            w->slow.end = "the server ended the connection without a close frame";
        else if (!w->slow.end_set)
            w->slow.end = we_names[kind];
        w->slow.end_set = true;
        atomic_store(&w->slow_done, true);
        return;
    case ROLE_STEADY:
        if (was_ready || kind < 0)
            w->disconnects++;
        if (kind >= 0) {
            c->backoff_ns = c->backoff_ns ? c->backoff_ns * 2 : BACKOFF_MIN_NS;
            if (c->backoff_ns > BACKOFF_MAX_NS)
                c->backoff_ns = BACKOFF_MAX_NS;
        } else {
            c->backoff_ns = BACKOFF_MIN_NS;
        }
        c->deadline_ns = now + c->backoff_ns;
        return;
    }
}

static bool conn_flush(struct ws_worker *w, struct ws_conn *c, uint64_t now)
{
    int r = bench_send(c->fd, c->wbuf, &c->woff, c->wlen);
    if (r < 0) {
        conn_end(w, c, errno == EPIPE || errno == ECONNRESET ? WE_CLOSED : WE_IO, now);
        return false;
    }
    if (r == 0) {
        if (!c->paused)
            set_events(w, c, base_events(c) | EPOLLOUT);
        return true;
    }
    c->wlen = c->woff = 0;
    if (!c->paused)
        set_events(w, c, base_events(c));
    return true;
}

static bool wbuf_reserve(struct ws_conn *c, size_t more)
{
    if (c->wcap - c->wlen >= more)
        return true;
    size_t cap = c->wcap ? c->wcap : 512;
    while (cap - c->wlen < more)
        cap *= 2;
    char *nb = realloc(c->wbuf, cap);
    if (!nb)
        return false;
    c->wbuf = nb;
    c->wcap = cap;
    return true;
}

/* Queues one masked frame and tries to send it. Returns false when the connection ended. */
static bool send_frame(struct ws_worker *w, struct ws_conn *c, unsigned op, const void *p,
                       size_t len, uint64_t now)
{
    if (!wbuf_reserve(c, len + WS_MAX_HEADER)) {
        conn_end(w, c, WE_IO, now);
        return false;
    }
    c->wlen +=
        ws_frame_build((uint8_t *)c->wbuf + c->wlen, op, p, len, (uint32_t)bench_rng_next(&w->rng));
    return conn_flush(w, c, now);
}

static bool send_close(struct ws_worker *w, struct ws_conn *c, unsigned code, uint64_t now)
{
    uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    c->close_sent = true;
    c->state = WSC_CLOSING;
    c->deadline_ns = now + CLOSE_WAIT_NS;
    return send_frame(w, c, WS_OP_CLOSE, p, code == 1005 ? 0 : 2, now);
}

static void conn_connected(struct ws_worker *w, struct ws_conn *c, uint64_t now)
{
    uint8_t raw[16];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        uint64_t a = bench_rng_next(&w->rng), b2 = bench_rng_next(&w->rng);
        memcpy(raw, &a, 8);
        memcpy(raw + 8, &b2, 8);
    }
    ws_key_encode(raw, c->key);
    const struct ws_opts *o = w->b->o;
    size_t need = strlen(o->path) + strlen(o->authority) + (o->token ? strlen(o->token) : 0) + 256;
    if (!wbuf_reserve(c, need)) {
        conn_end(w, c, WE_IO, now);
        return;
    }
    int n =
        ws_request(c->wbuf + c->wlen, c->wcap - c->wlen, o->path, o->authority, o->token, c->key);
    if (n < 0) {
        conn_end(w, c, WE_IO, now);
        return;
    }
    c->wlen += (size_t)n;
    c->state = WSC_HANDSHAKE;
    c->deadline_ns = now + (uint64_t)(o->timeout * 1e9);
    conn_flush(w, c, now);
}

static void conn_open(struct ws_worker *w, struct ws_conn *c, uint64_t now)
{
    const struct ws_opts *o = w->b->o;
    int fd = socket(o->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c->opened_ns = now;
    c->state = WSC_CONNECTING;
    if (fd < 0) {
        conn_end(w, c, WE_CONNECT, now);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (c->role == ROLE_SLOW) {
        /* A small window, so that the server's side fills up soon after it stops reading. */
        int sz = SLOW_RCVBUF;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    }
    c->fd = fd;
    c->paused = false;
    int r = connect(fd, (const struct sockaddr *)&o->addr, o->addrlen);
    bool pending = r < 0 && errno == EINPROGRESS;
    if (r < 0 && !pending) {
        conn_end(w, c, WE_CONNECT, now);
        return;
    }
    set_events(w, c, EPOLLIN | EPOLLRDHUP | (pending ? EPOLLOUT : 0));
    if (!c->registered) {
        conn_end(w, c, WE_CONNECT, now);
        return;
    }
    if (pending) {
        c->state = WSC_CONNECTING;
        c->deadline_ns = now + (uint64_t)(o->timeout * 1e9);
    } else {
        conn_connected(w, c, now);
    }
}

static unsigned phase_of(const struct ws_worker *w, uint64_t origin)
{
    if (!w->win.storm_end)
        return 0;
    if (origin < w->win.storm_start)
        return 0;
    return origin < w->win.storm_end ? 1 : 2;
}

static void pause_slow(struct ws_worker *w, struct ws_conn *c, uint64_t now)
{
    c->paused = true;
    w->slow.paused_ns = now;
    set_events(w, c, base_events(c));
}

static void mark_ready(struct ws_worker *w, struct ws_conn *c, uint64_t now)
{
    if (c->ready)
        return;
    c->ready = true;
    c->backoff_ns = 0;
    if (c->role == ROLE_STORM) {
        w->storm_ready_n++;
        hist_record(&w->storm_ready, now - c->opened_ns);
        send_close(w, c, 1000, now);
        return;
    }
    if (!c->ever_ready) {
        c->ever_ready = true;
        atomic_fetch_add(&w->ready, 1);
    }
    if (c->role == ROLE_SLOW && !atomic_load(&w->slow_resumed))
        pause_slow(w, c, now);
}

struct scan_ctx {
    struct ws_worker *w;
    struct ws_conn *c;
    struct ws_counts *k;
    uint64_t now;
};

static void on_message(void *arg, const struct feed_msg *m)
{
    struct scan_ctx *x = arg;
    struct ws_worker *w = x->w;
    struct ws_conn *c = x->c;
    struct ws_counts *k = x->k;
    k->messages++;
    switch (m->type) {
    case FEED_DELTA:
    case FEED_HEARTBEAT:
        if (!m->has_ts) {
            k->untimed++;
        } else {
            /* The agent wrote its send time on the wall clock; this maps it back. */
            int64_t origin = m->ts_us * 1000 - w->b->wall_off_ns;
            if (w->have_win && origin >= (int64_t)w->win.warm_end && origin < (int64_t)w->win.end) {
                k->delivered++;
                if (c->role == ROLE_STEADY) {
                    uint64_t o = (uint64_t)origin;
                    hist_record(&w->lat[phase_of(w, o)], x->now > o ? x->now - o : 0);
                    atomic_fetch_add_explicit(&w->delivered, 1, memory_order_relaxed);
                }
            } else {
                k->outside++;
            }
        }
        if (m->type == FEED_HEARTBEAT)
            break;
        /* A delta is an update with a sequence number, like an event. */
        /* fall through */
    case FEED_EVENT:
        if (m->type == FEED_EVENT)
            k->events++;
        if (m->has_seq) {
            if (c->seq_known) {
                if (m->seq <= c->last_seq)
                    k->seq_regressions++;
                else
                    k->seq_gaps += m->seq - c->last_seq - 1;
            }
            c->seq_known = true;
            c->last_seq = m->seq;
        }
        break;
    case FEED_SNAPSHOT:
        k->snapshots++;
        c->got_snapshot = true;
        if (m->has_seq) {
            c->seq_known = true;
            c->last_seq = m->seq;
        }
        break;
    case FEED_SUBSCRIBED:
        k->subscribed++;
        c->got_subscribed = true;
        if (m->has_seq) {
            c->seq_known = true;
            c->last_seq = m->seq;
        }
        break;
    case FEED_TOTALS:
        k->totals++;
        break;
    case FEED_ERROR:
        k->server_errors++;
        break;
    case FEED_OTHER:
        k->other++;
        break;
    }
}

static void on_text(struct ws_worker *w, struct ws_conn *c, const uint8_t *p, size_t len,
                    uint64_t now)
{
    struct scan_ctx x = {w, c, counts(w, c), now};
    x.k->ws_messages++;
    x.k->bytes += len;
    if (c->role == ROLE_STORM && c->ready)
        return; /* it has its snapshot and is closing: the rest is of no interest */
    if (feed_scan((const char *)p, len, on_message, &x) < 0)
        x.k->bad_json++;
    /* Subscribed means the snapshot (or the replay) is in too: live updates follow. */
    if (c->state == WSC_OPEN && !c->ready && c->got_subscribed && c->got_snapshot)
        mark_ready(w, c, now);
}

/* Handles one complete frame. Returns false when the connection ended. */
static bool on_frame(struct ws_worker *w, struct ws_conn *c, const struct ws_frame *f,
                     const uint8_t *p, uint64_t now)
{
    switch (f->opcode) {
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        if (c->in_msg)
            goto protocol;
        if (f->fin) {
            if (f->opcode == WS_OP_TEXT)
                on_text(w, c, p, f->payload_len, now);
            else
                counts(w, c)->other++;
            return true;
        }
        c->in_msg = true;
        c->msg_op = f->opcode;
        c->mlen = 0;
        /* The first fragment is kept like the ones that follow. */
        /* fall through */
    case WS_OP_CONT:
        if (!c->in_msg)
            goto protocol;
        if (c->mlen + f->payload_len > MAX_MESSAGE)
            goto protocol;
        if (c->mcap - c->mlen < f->payload_len) {
            size_t cap = c->mcap ? c->mcap : 4096;
            while (cap - c->mlen < f->payload_len)
                cap *= 2;
            uint8_t *nb = realloc(c->msg, cap);
            if (!nb) {
                conn_end(w, c, WE_IO, now);
                return false;
            }
            c->msg = nb;
            c->mcap = cap;
        }
        memcpy(c->msg + c->mlen, p, f->payload_len);
        c->mlen += f->payload_len;
        if (f->fin) {
            c->in_msg = false;
            if (c->msg_op == WS_OP_TEXT)
                on_text(w, c, c->msg, c->mlen, now);
            else
                counts(w, c)->other++;
        }
        return true;
    case WS_OP_PING:
        return c->close_sent || send_frame(w, c, WS_OP_PONG, p, f->payload_len, now);
    case WS_OP_PONG:
        return true;
    case WS_OP_CLOSE: {
        unsigned code = ws_close_code(p, f->payload_len);
        if (c->role == ROLE_STEADY)
            note_close(w, code);
        if (c->role == ROLE_SLOW && !c->close_sent) {
            w->slow.close_code = code;
            w->slow.close_ns = now;
        }
        if (c->close_sent) {
            /* Both sides said it; the server closes the TCP connection. */
            c->deadline_ns = now + CLOSE_WAIT_NS;
            return true;
        }
        return send_close(w, c, code == 1005 ? 1005 : (code < 3000 ? 1000 : code), now);
    }
    }
protocol:
    send_close(w, c, 1002, now);
    conn_end(w, c, WE_PROTOCOL, now);
    return false;
}

static bool on_handshake(struct ws_worker *w, struct ws_conn *c, bool eof, uint64_t now)
{
    struct http_resp r = {0};
    int p = resp_parse((const char *)c->rbuf, c->rlen, &r);
    if (p < 0) {
        conn_end(w, c, WE_PROTOCOL, now);
        return false;
    }
    if (p == 0) {
        if (!eof)
            return true; /* more to come */
        if (!r.until_close) {
            conn_end(w, c, WE_CLOSED, now);
            return false;
        }
        r.total_len = c->rlen;
    }
    if (r.status != 101) {
        w->http[r.status]++;
        if (c->role != ROLE_STORM && !c->ever_ready) {
            /* Show the server's own words: its error body, cut to one line. */
            char body[200];
            size_t bl = r.total_len - r.head_len;
            if (bl > sizeof(body) - 1)
                bl = sizeof(body) - 1;
            for (size_t i = 0; i < bl; i++) {
                char ch = (char)c->rbuf[r.head_len + i];
                body[i] = ch < 32 || ch == 127 ? ' ' : ch;
            }
            body[bl] = '\0';
            char msg[300];
            snprintf(msg, sizeof(msg), "the server answered the handshake with HTTP %d %s",
                     r.status, body);
            set_fatal(w, msg);
        }
        conn_end(w, c, WE_HANDSHAKE, now);
        return false;
    }
    const char *why;
    if (ws_response_check((const char *)c->rbuf, r.head_len, c->key, &why) < 0) {
        if (c->role != ROLE_STORM && !c->ever_ready) {
            char msg[300];
            snprintf(msg, sizeof(msg), "bad answer to the handshake: %s", why);
            set_fatal(w, msg);
        }
        conn_end(w, c, WE_HANDSHAKE, now);
        return false;
    }
    memmove(c->rbuf, c->rbuf + r.head_len, c->rlen - r.head_len);
    c->rlen -= r.head_len;
    c->state = WSC_OPEN;
    w->connects++;
    if (!w->b->o->subscribe) {
        mark_ready(w, c, now);
        return c->fd >= 0;
    }
    return send_frame(w, c, WS_OP_TEXT, subscribe_msg, sizeof(subscribe_msg) - 1, now);
}

/* Works through the bytes received so far. Returns false when the connection ended. */
static bool process(struct ws_worker *w, struct ws_conn *c, bool eof, uint64_t now)
{
    if (c->state == WSC_HANDSHAKE && !on_handshake(w, c, eof, now))
        return false;
    if (c->state != WSC_OPEN && c->state != WSC_CLOSING)
        return true;
    size_t off = 0;
    c->need = 0;
    while (off < c->rlen && !c->paused) {
        struct ws_frame f;
        int r = ws_frame_parse(c->rbuf + off, c->rlen - off, MAX_MESSAGE, &f);
        if (r < 0) {
            send_close(w, c, 1002, now);
            conn_end(w, c, WE_PROTOCOL, now);
            return false;
        }
        if (r == 0) {
            c->need = f.total_len;
            break;
        }
        if (!on_frame(w, c, &f, c->rbuf + off + f.header_len, now))
            return false;
        off += f.total_len;
    }
    if (off) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
    if (eof) {
        if (c->role == ROLE_SLOW)
            w->slow.eof = true;
        if (c->state == WSC_CLOSING) {
            conn_end(w, c, -1, now);
        } else {
            if (c->role != ROLE_SLOW)
                note_close(w, 1006);
            conn_end(w, c, WE_CLOSED, now);
        }
        return false;
    }
    return true;
}

static void conn_read(struct ws_worker *w, struct ws_conn *c, uint64_t now)
{
    for (int reads = 0; reads < READS_PER_EVENT; reads++) {
        int rc = bench_rbuf_reserve(&c->rbuf, &c->rcap, c->rlen, 4096, c->need,
                                    c->role == ROLE_STORM ? RBUF_STORM : RBUF_STEADY,
                                    MAX_MESSAGE + 2 * WS_MAX_HEADER + RBUF_STEADY);
        if (rc < 0) {
            conn_end(w, c, rc == AEI_ENOMEM ? WE_IO : WE_PROTOCOL, now);
            return;
        }
        size_t room = c->rcap - c->rlen;
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, room, 0);
        if (n > 0) {
            now = bench_now_ns();
            c->rlen += (size_t)n;
            if (c->role == ROLE_SLOW)
                atomic_store_explicit(&w->slow_last_rx, now, memory_order_relaxed);
            if (!process(w, c, false, now))
                return;
            if ((size_t)n < room || c->paused)
                return;
            continue;
        }
        if (n == 0) {
            process(w, c, true, bench_now_ns());
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        if (c->role == ROLE_SLOW) {
            w->slow.end = "the server reset the connection";
            w->slow.end_set = true;
        } else {
            note_close(w, 1006);
        }
        conn_end(w, c, errno == ECONNRESET ? WE_CLOSED : WE_IO, now);
        return;
    }
}

static void on_event(struct ws_worker *w, struct epoll_event *ev, uint64_t now)
{
    struct ws_conn *c = ev->data.ptr;
    if (c->fd < 0)
        return;
    if (c->paused) {
        /* Not reading; the kernel says the server hung up (FIN or reset). */
        if (!w->slow.dropped_ns) {
            w->slow.dropped_ns = now;
            w->slow.dropped_how = ev->events & EPOLLERR ? "reset" : "hang-up";
        }
        return;
    }
    if (c->state == WSC_CONNECTING) {
        if (!(ev->events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        if (bench_connect_failed(c->fd)) {
            conn_end(w, c, WE_CONNECT, now);
            return;
        }
        conn_connected(w, c, now);
        return;
    }
    if ((ev->events & EPOLLOUT) && c->woff < c->wlen) {
        if (!conn_flush(w, c, now))
            return;
    }
    if (ev->events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
        conn_read(w, c, now);
}

/* Deadlines, reconnects, and the slow subscriber's return to reading. */
static void scan(struct ws_worker *w, uint64_t now, bool stopping)
{
    for (unsigned i = 0; i < w->nconns; i++) {
        struct ws_conn *c = &w->conns[i];
        switch (c->state) {
        case WSC_CONNECTING:
        case WSC_HANDSHAKE:
            if (now >= c->deadline_ns)
                conn_end(w, c, WE_TIMEOUT, now);
            break;
        case WSC_CLOSING:
            /* A storm connection the server did not let go of counts as a timeout. */
            if (now >= c->deadline_ns)
                conn_end(w, c, c->role == ROLE_STORM ? WE_TIMEOUT : -1, now);
            break;
        case WSC_DOWN:
            if (c->role == ROLE_STEADY && !stopping && now >= c->deadline_ns)
                conn_open(w, c, now);
            break;
        case WSC_OPEN:
            if (c->role == ROLE_STORM && now - c->opened_ns >= (uint64_t)(w->b->o->timeout * 1e9))
                conn_end(w, c, WE_TIMEOUT, now);
            break;
        }
    }
    double resume_s = w->b->o->slow_resume_s;
    uint64_t resume_at = resume_s > 0 && w->slow.paused_ns
                             ? w->slow.paused_ns + (uint64_t)(resume_s * 1e9)
                             : w->win.end;
    if (w->have_win && w->slow.present && !atomic_load(&w->slow_resumed) && now >= resume_at) {
        /* Read what was left unread, to see how the server ended it (or caught it up). */
        w->slow.resumed_ns = now;
        atomic_store_explicit(&w->slow_last_rx, now, memory_order_relaxed);
        atomic_store(&w->slow_resumed, true);
        struct ws_conn *c = &w->conns[0];
        if (c->fd >= 0 && c->paused) {
            c->paused = false;
            set_events(w, c, base_events(c) | (c->woff < c->wlen ? EPOLLOUT : 0));
            if (process(w, c, false, now))
                conn_read(w, c, now);
        }
    }
}

static void storm_open(struct ws_worker *w, uint64_t now)
{
    w->storm_attempted++;
    if (!w->nfree) {
        w->storm_skipped++;
        return;
    }
    conn_open(w, &w->conns[w->free_slots[--w->nfree]], now);
}

static int wait_events(struct ws_worker *w, struct epoll_event *evs, uint64_t timeout_ns)
{
    int ms = (int)((timeout_ns + 999999) / 1000000);
    return epoll_wait(w->ep, evs, MAX_EVENTS, ms);
}

static void *worker_main(void *arg)
{
    struct ws_worker *w = arg;
    struct ws_bench *b = w->b;
    struct epoll_event evs[MAX_EVENTS];
    uint64_t now = bench_now_ns();
    uint64_t next_scan = now + SCAN_NS;
    if (!w->storm)
        for (unsigned i = 0; i < w->nconns; i++)
            conn_open(w, &w->conns[i], now);

    while (!atomic_load_explicit(&b->stop, memory_order_acquire)) {
        now = bench_now_ns();
        if (!w->have_win && atomic_load_explicit(&b->go, memory_order_acquire)) {
            w->win = b->win;
            w->have_win = true;
        }
        uint64_t wake = now + SCAN_NS;
        if (w->storm && w->have_win) {
            double interval = 1e9 / b->o->storm_rate;
            for (;;) {
                uint64_t when = w->win.storm_start + (uint64_t)((double)w->storm_k * interval);
                if (when >= w->win.storm_end)
                    break;
                if (when > now) {
                    if (when < wake)
                        wake = when;
                    break;
                }
                storm_open(w, now);
                w->storm_k++;
            }
            bool over =
                w->win.storm_start + (uint64_t)((double)w->storm_k * interval) >= w->win.storm_end;
            atomic_store(&w->storm_idle, over && w->nfree == w->nconns);
        }
        if (now >= next_scan) {
            scan(w, now, false);
            next_scan = now + SCAN_NS;
        }
        if (next_scan < wake)
            wake = next_scan;
        int n = wait_events(w, evs, wake > now ? wake - now : 0);
        now = bench_now_ns();
        for (int i = 0; i < n; i++)
            on_event(w, &evs[i], now);
    }

    /* Say goodbye properly, so that the server closes first and keeps the TIME_WAIT. */
    w->stopping = true;
    now = bench_now_ns();
    for (unsigned i = 0; i < w->nconns; i++) {
        struct ws_conn *c = &w->conns[i];
        if (c->paused) {
            c->paused = false;
            set_events(w, c, base_events(c));
        }
        if (c->state == WSC_OPEN)
            send_close(w, c, 1000, now);
        else if (c->state != WSC_CLOSING && c->fd >= 0)
            conn_end(w, c, -1, now);
    }
    uint64_t end = now + CLOSE_WAIT_NS;
    for (;;) {
        unsigned open = 0;
        for (unsigned i = 0; i < w->nconns; i++)
            open += w->conns[i].fd >= 0;
        now = bench_now_ns();
        if (!open || now >= end)
            break;
        int n = wait_events(w, evs, SCAN_NS);
        now = bench_now_ns();
        for (int i = 0; i < n; i++)
            on_event(w, &evs[i], now);
    }
    for (unsigned i = 0; i < w->nconns; i++) {
        struct ws_conn *c = &w->conns[i];
        /* Steady ones would reconnect from conn_end(); here they are only closed. */
        if (c->fd >= 0) {
            close(c->fd);
            c->fd = -1;
        }
    }
    struct timespec cpu;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu) == 0)
        w->cpu_s = (double)cpu.tv_sec + (double)cpu.tv_nsec / 1e9;
    return NULL;
}

/* ---- setup ---- */

struct ws_bench *ws_bench_start(const struct ws_opts *o, int64_t wall_off_ns)
{
    struct ws_bench *b = calloc(1, sizeof(*b));
    if (!b)
        goto oom;
    b->o = o;
    b->wall_off_ns = wall_off_ns;
    pthread_mutex_init(&b->why_lock, NULL);
    unsigned threads = o->threads < o->subscribers ? o->threads : o->subscribers;
    if (!threads)
        threads = 1;
    bool storm = o->scenario == WS_RECONNECT_STORM;
    b->nworkers = threads + storm;
    b->ws = calloc(b->nworkers, sizeof(*b->ws));
    if (!b->ws)
        goto oom;
    uint64_t seed;
    if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
        seed = bench_now_ns();
    for (unsigned i = 0; i < b->nworkers; i++) {
        struct ws_worker *w = &b->ws[i];
        w->b = b;
        w->ep = -1;
        w->storm = storm && i == threads;
        w->rng = (seed ^ (0x9E3779B97F4A7C15ull * (i + 1))) | 1;
        w->slow.end = "still open at the end";
        for (int p = 0; p < PHASES; p++)
            hist_init(&w->lat[p]);
        hist_init(&w->storm_ready);
        atomic_init(&w->delivered, 0);
        atomic_init(&w->ready, 0);
        atomic_init(&w->storm_idle, false);
        atomic_init(&w->slow_done, false);
        atomic_init(&w->slow_resumed, false);
        atomic_init(&w->slow_last_rx, 0);
        unsigned first = 0, last = 0;
        if (w->storm) {
            w->nconns = STORM_SLOTS;
        } else {
            first = (unsigned)((uint64_t)o->subscribers * i / threads);
            last = (unsigned)((uint64_t)o->subscribers * (i + 1) / threads);
            w->nconns = last - first;
        }
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        w->conns = calloc(w->nconns, sizeof(*w->conns));
        if (w->storm)
            w->free_slots = malloc(w->nconns * sizeof(*w->free_slots));
        if (w->ep < 0 || !w->conns || (w->storm && !w->free_slots))
            goto oom;
        for (unsigned j = 0; j < w->nconns; j++) {
            struct ws_conn *c = &w->conns[j];
            c->fd = -1;
            c->id = first + j;
            c->role = w->storm ? ROLE_STORM : ROLE_STEADY;
            if (w->storm)
                w->free_slots[w->nfree++] = w->nconns - 1 - j;
        }
        if (o->scenario == WS_SLOW_SUBSCRIBER && i == 0) {
            w->conns[0].role = ROLE_SLOW;
            w->slow.present = true;
        }
    }
    for (unsigned i = 0; i < b->nworkers; i++) {
        if (pthread_create(&b->ws[i].tid, NULL, worker_main, &b->ws[i]) != 0) {
            fputs("aei bench: cannot start the subscriber threads; use fewer --ws-threads\n",
                  stderr);
            ws_bench_free(b);
            return NULL;
        }
        b->ws[i].started = true;
    }
    return b;
oom:
    fputs("aei bench: out of memory or file descriptors for the subscribers; use fewer "
          "--subscribers\n",
          stderr);
    ws_bench_free(b);
    return NULL;
}

static unsigned steady_workers(const struct ws_bench *b)
{
    return b->nworkers - (b->o->scenario == WS_RECONNECT_STORM);
}

int ws_bench_wait_ready(struct ws_bench *b, double timeout_s)
{
    uint64_t end = bench_now_ns() + (uint64_t)(timeout_s * 1e9);
    unsigned ready = 0;
    for (;;) {
        ready = 0;
        for (unsigned i = 0; i < steady_workers(b); i++)
            ready += atomic_load(&b->ws[i].ready);
        if (ready >= b->o->subscribers)
            return 0;
        if (atomic_load(&b->fatal)) {
            pthread_mutex_lock(&b->why_lock);
            fprintf(stderr, "aei bench: ws://%s%s: %s\n", b->o->authority, b->o->path, b->why);
            pthread_mutex_unlock(&b->why_lock);
            fputs("aei bench: check --ws, --ws-path (/ for aeid's --ws port, /ws on its HTTP "
                  "port) and the token\n",
                  stderr);
            return AEI_EUNAVAILABLE;
        }
        if (bench_now_ns() >= end)
            break;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr,
            "aei bench: only %u of %u subscribers %s ws://%s%s within %.0f s; is the "
            "WebSocket server up (--ws)?%s\n",
            ready, b->o->subscribers, b->o->subscribe ? "subscribed at" : "connected to",
            b->o->authority, b->o->path, timeout_s,
            b->o->subscribe ? " A server without subscriptions needs --no-subscribe." : "");
    return AEI_EUNAVAILABLE;
}

void ws_bench_go(struct ws_bench *b, const struct ws_window *w)
{
    b->win = *w;
    atomic_store_explicit(&b->go, true, memory_order_release);
}

void ws_bench_progress(struct ws_bench *b, uint64_t *delivered, double *p99_ms)
{
    static struct hist_snap snap; /* only the progress thread calls this */
    hist_snap_init(&snap);
    uint64_t d = 0;
    for (unsigned i = 0; i < steady_workers(b); i++) {
        d += atomic_load_explicit(&b->ws[i].delivered, memory_order_relaxed);
        for (int p = 0; p < PHASES; p++)
            hist_snap_add(&snap, &b->ws[i].lat[p]);
    }
    *delivered = d;
    *p99_ms = (double)hist_percentile(&snap, 99) / 1e6;
}

static unsigned readers(const struct ws_bench *b)
{
    return b->o->subscribers - (b->o->scenario == WS_SLOW_SUBSCRIBER);
}

void ws_bench_finish(struct ws_bench *b, uint64_t committed, double drain_s)
{
    b->committed = committed;
    uint64_t want = committed * readers(b);
    uint64_t start = bench_now_ns(), end = start + (uint64_t)(drain_s * 1e9);
    uint64_t last = 0, last_change = start;
    bool storm_wait = b->o->scenario == WS_RECONNECT_STORM;
    for (;;) {
        uint64_t now = bench_now_ns(), d = 0;
        for (unsigned i = 0; i < steady_workers(b); i++)
            d += atomic_load_explicit(&b->ws[i].delivered, memory_order_relaxed);
        if (d != last) {
            last = d;
            last_change = now;
        }
        bool fed = d >= want || now - last_change >= NS_PER_S;
        bool slow_ok = true;
        if (b->o->scenario == WS_SLOW_SUBSCRIBER) {
            struct ws_worker *w = &b->ws[0];
            uint64_t rx = atomic_load_explicit(&w->slow_last_rx, memory_order_relaxed);
            /* Done when its connection ended, or it read nothing new for a second. */
            slow_ok = atomic_load(&w->slow_done) ||
                      (atomic_load(&w->slow_resumed) && now - rx >= NS_PER_S);
        }
        bool storm_ok = !storm_wait || atomic_load(&b->ws[b->nworkers - 1].storm_idle);
        if ((fed && slow_ok && storm_ok) || now >= end || atomic_load(&b->stop))
            break;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    atomic_store_explicit(&b->stop, true, memory_order_release);
    for (unsigned i = 0; i < b->nworkers; i++) {
        if (b->ws[i].started) {
            pthread_join(b->ws[i].tid, NULL);
            b->ws[i].started = false;
        }
    }
}

bool ws_bench_is_connected(const struct ws_bench *b)
{
    for (unsigned i = 0; i < steady_workers(b); i++)
        if (atomic_load(&b->ws[i].ready))
            return true;
    return false;
}

void ws_bench_free(struct ws_bench *b)
{
    if (!b)
        return;
    atomic_store(&b->stop, true);
    for (unsigned i = 0; b->ws && i < b->nworkers; i++) {
        struct ws_worker *w = &b->ws[i];
        if (w->started)
            pthread_join(w->tid, NULL);
        for (unsigned j = 0; w->conns && j < w->nconns; j++) {
            struct ws_conn *c = &w->conns[j];
            if (c->fd >= 0)
                close(c->fd);
            free(c->rbuf);
            free(c->msg);
            free(c->wbuf);
        }
        free(w->conns);
        free(w->free_slots);
        if (w->ep >= 0)
            close(w->ep);
    }
    free(b->ws);
    pthread_mutex_destroy(&b->why_lock);
    free(b);
}

/* ---- results ---- */

struct ws_totals {
    struct ws_counts c;
    uint64_t errors[WE_KINDS], http[600], connects, disconnects;
    struct {
        unsigned code;
        uint64_t n;
    } closes[MAX_CLOSE_CODES * 4];
    unsigned ncloses;
    struct hist_snap all, phase[PHASES], storm;
    uint64_t storm_attempted, storm_ready, storm_clean, storm_skipped, storm_errors[WE_KINDS];
    double cpu_s, storm_cpu_s;
    const struct ws_slow *slow;
};

static void add_counts(struct ws_counts *a, const struct ws_counts *b)
{
    const uint64_t *s = (const uint64_t *)b;
    uint64_t *d = (uint64_t *)a;
    for (size_t i = 0; i < sizeof(*a) / sizeof(uint64_t); i++)
        d[i] += s[i];
}

static struct ws_totals *gather(const struct ws_bench *b)
{
    struct ws_totals *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    hist_snap_init(&t->all);
    hist_snap_init(&t->storm);
    for (int p = 0; p < PHASES; p++)
        hist_snap_init(&t->phase[p]);
    for (unsigned i = 0; i < b->nworkers; i++) {
        const struct ws_worker *w = &b->ws[i];
        if (w->storm) {
            t->storm_attempted = w->storm_attempted;
            t->storm_ready = w->storm_ready_n;
            t->storm_clean = w->storm_clean;
            t->storm_skipped = w->storm_skipped;
            memcpy(t->storm_errors, w->errors, sizeof(t->storm_errors));
            hist_snap_add(&t->storm, &w->storm_ready);
            t->storm_cpu_s = w->cpu_s;
            continue;
        }
        if (w->slow.present)
            t->slow = &w->slow;
        t->cpu_s += w->cpu_s;
        add_counts(&t->c, &w->c);
        for (int k = 0; k < WE_KINDS; k++)
            t->errors[k] += w->errors[k];
        for (int s = 0; s < 600; s++)
            t->http[s] += w->http[s];
        t->connects += w->connects;
        t->disconnects += w->disconnects;
        for (int p = 0; p < PHASES; p++) {
            hist_snap_add(&t->phase[p], &w->lat[p]);
            hist_snap_add(&t->all, &w->lat[p]);
        }
        for (int k = 0; k < MAX_CLOSE_CODES && w->closes[k].n; k++) {
            unsigned j = 0;
            while (j < t->ncloses && t->closes[j].code != w->closes[k].code)
                j++;
            if (j == t->ncloses) {
                if (t->ncloses == MAX_CLOSE_CODES * 4)
                    continue;
                t->closes[t->ncloses++].code = w->closes[k].code;
            }
            t->closes[j].n += w->closes[k].n;
        }
    }
    return t;
}

static double pct_ms(const struct hist_snap *s, double p)
{
    return (double)hist_percentile(s, p) / 1e6;
}

/* RSS (KiB) around the storm: the last sample before it, the most during it, the last after. */
struct storm_rss {
    bool have;
    uint64_t before, during_max, after;
    double after_at_s;
};

static struct storm_rss storm_rss(const struct ws_bench *b, const struct rss_series *rss)
{
    struct storm_rss r = {0};
    if (!rss || !rss->n || !b->win.storm_end)
        return r;
    double s0 = ((double)b->win.storm_start - (double)b->win.warm_end) / 1e9;
    double s1 = ((double)b->win.storm_end - (double)b->win.warm_end) / 1e9;
    bool before = false, after = false;
    for (size_t i = 0; i < rss->n; i++) {
        const struct rss_sample *x = &rss->v[i];
        if (x->t_s <= s0) {
            r.before = x->kib;
            before = true;
        } else if (x->t_s <= s1) {
            if (x->kib > r.during_max)
                r.during_max = x->kib;
        } else {
            r.after = x->kib;
            r.after_at_s = x->t_s - s1;
            after = true;
        }
    }
    r.have = before && after;
    return r;
}

static const char *scenario_name(enum ws_scenario s)
{
    switch (s) {
    case WS_STEADY:
        return "steady";
    case WS_SLOW_SUBSCRIBER:
        return "slow-subscriber";
    case WS_RECONNECT_STORM:
        return "reconnect-storm";
    case WS_SOAK:
        return "soak";
    }
    return "?";
}

static void print_errors(const uint64_t *errors, const uint64_t *http)
{
    const char *sep = ": ";
    for (int s = 0; http && s < 600; s++) {
        if (http[s]) {
            printf("%shttp %d x%llu", sep, s, (unsigned long long)http[s]);
            sep = ", ";
        }
    }
    for (int k = 0; k < WE_KINDS; k++) {
        if (errors[k]) {
            printf("%s%s x%llu", sep, we_names[k], (unsigned long long)errors[k]);
            sep = ", ";
        }
    }
}

void ws_bench_print(const struct ws_bench *b, double secs, const struct rss_series *rss)
{
    struct ws_totals *t = gather(b);
    if (!t)
        return;
    const struct ws_opts *o = b->o;
    unsigned n = readers(b);
    uint64_t expected = b->committed * n;
    int64_t drops = (int64_t)expected - (int64_t)t->c.delivered;
    printf("subscribers %u on ws://%s%s, %s%s\n", o->subscribers, o->authority, o->path,
           scenario_name(o->scenario),
           o->subscribe ? ", subscribed to agents:all" : ", no subscribe");
    printf("delivered   %llu deltas = %.1f deltas/s (%.1f heartbeats/s committed x %u)\n",
           (unsigned long long)t->c.delivered, secs > 0 ? (double)t->c.delivered / secs : 0.0,
           secs > 0 ? (double)b->committed / secs : 0.0, n);
    printf("push        p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms  "
           "(heartbeat send to delta received%s)\n",
           pct_ms(&t->all, 50), pct_ms(&t->all, 90), pct_ms(&t->all, 99), pct_ms(&t->all, 99.9),
           (double)t->all.max / 1e6, o->scenario == WS_SLOW_SUBSCRIBER ? ", fast subscribers" : "");
    printf("drops       %lld of %llu expected deltas%s; snapshots %llu, seq gaps %llu\n",
           (long long)drops, (unsigned long long)expected,
           drops < 0 ? " (negative: more than expected arrived)" : "",
           (unsigned long long)t->c.snapshots, (unsigned long long)t->c.seq_gaps);
    printf("ws errors   %llu", (unsigned long long)(t->errors[0] + t->errors[1] + t->errors[2] +
                                                    t->errors[3] + t->errors[4] + t->errors[5]));
    print_errors(t->errors, t->http);
    if (t->disconnects)
        printf("; %llu reconnects", (unsigned long long)t->disconnects);
    printf("; client CPU %.2f s", t->cpu_s);
    if (t->c.server_errors || t->c.bad_json)
        printf("; server error messages %llu, unreadable frames %llu",
               (unsigned long long)t->c.server_errors, (unsigned long long)t->c.bad_json);
    putchar('\n');
    if (t->slow) {
        const struct ws_slow *s = t->slow;
        printf("slow        1 subscriber stopped reading at %.1f s (times from the window's "
               "start)",
               rel_s(b, s->paused_ns));
        if (s->dropped_ns)
            printf("; %s seen at %.1f s while not reading", s->dropped_how,
                   rel_s(b, s->dropped_ns));
        if (s->resumed_ns)
            printf("; read again from %.1f s", rel_s(b, s->resumed_ns));
        if (s->close_code)
            printf("; close %u%s read at %.1f s", s->close_code,
                   s->close_code == 4008 ? " (slow consumer)" : "", rel_s(b, s->close_ns));
        else
            printf("; no close frame read");
        printf("; %s; drained %llu deltas, %llu snapshots\n", s->end,
               (unsigned long long)s->c.delivered + s->c.outside,
               (unsigned long long)s->c.snapshots);
    }
    if (o->scenario == WS_RECONNECT_STORM) {
        double sd = ((double)b->win.storm_end - (double)b->win.storm_start) / 1e9;
        printf("storm       %llu connects in %.1f s (%.0f/s): %llu subscribed, %llu closed "
               "cleanly, %llu skipped",
               (unsigned long long)t->storm_attempted, sd,
               sd > 0 ? (double)t->storm_attempted / sd : 0.0, (unsigned long long)t->storm_ready,
               (unsigned long long)t->storm_clean, (unsigned long long)t->storm_skipped);
        print_errors(t->storm_errors, NULL);
        printf("; connect to snapshot p50 %.3f ms p99 %.3f ms\n", pct_ms(&t->storm, 50),
               pct_ms(&t->storm, 99));
        printf("steady p99  before %.3f ms  during %.3f ms  after %.3f ms\n",
               pct_ms(&t->phase[0], 99), pct_ms(&t->phase[1], 99), pct_ms(&t->phase[2], 99));
        struct storm_rss r = storm_rss(b, rss);
        if (r.have)
            printf("storm RSS   before %.1f MiB  during max %.1f MiB  after (%.1f s later) "
                   "%.1f MiB\n",
                   (double)r.before / 1024, (double)r.during_max / 1024, r.after_at_s,
                   (double)r.after / 1024);
    }
    free(t);
}

static void json_lat(FILE *f, const struct hist_snap *s)
{
    fprintf(f,
            "{\"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, \"p999\": %.3f, \"max\": %.3f, "
            "\"mean\": %.3f, \"count\": %llu}",
            pct_ms(s, 50), pct_ms(s, 90), pct_ms(s, 99), pct_ms(s, 99.9), (double)s->max / 1e6,
            s->total ? (double)s->sum / (double)s->total / 1e6 : 0.0, (unsigned long long)s->total);
}

static void json_counts(FILE *f, const struct ws_counts *c)
{
    fprintf(f,
            "{\"deltas_in_window\": %llu, \"deltas_outside_window\": %llu, "
            "\"deltas_untimed\": %llu, \"snapshots\": %llu, \"subscribed\": %llu, "
            "\"events\": %llu, \"totals\": %llu, \"server_errors\": %llu, \"other\": %llu, "
            "\"messages\": %llu, \"ws_messages\": %llu, \"bytes\": %llu, \"bad_json\": %llu, "
            "\"seq_gaps\": %llu, \"seq_regressions\": %llu}",
            (unsigned long long)c->delivered, (unsigned long long)c->outside,
            (unsigned long long)c->untimed, (unsigned long long)c->snapshots,
            (unsigned long long)c->subscribed, (unsigned long long)c->events,
            (unsigned long long)c->totals, (unsigned long long)c->server_errors,
            (unsigned long long)c->other, (unsigned long long)c->messages,
            (unsigned long long)c->ws_messages, (unsigned long long)c->bytes,
            (unsigned long long)c->bad_json, (unsigned long long)c->seq_gaps,
            (unsigned long long)c->seq_regressions);
}

static void json_errors(FILE *f, const uint64_t *errors, const uint64_t *http)
{
    uint64_t total = 0;
    for (int k = 0; k < WE_KINDS; k++)
        total += errors[k];
    fprintf(f, "{\"total\": %llu", (unsigned long long)total);
    for (int k = 0; k < WE_KINDS; k++)
        fprintf(f, ", \"%s\": %llu", we_names[k], (unsigned long long)errors[k]);
    if (http) {
        fputs(", \"http\": {", f);
        bool first = true;
        for (int s = 0; s < 600; s++) {
            if (!http[s])
                continue;
            fprintf(f, "%s\"%d\": %llu", first ? "" : ", ", s, (unsigned long long)http[s]);
            first = false;
        }
        fputc('}', f);
    }
    fputc('}', f);
}

void ws_bench_json(FILE *f, const struct ws_bench *b, double secs, const struct rss_series *rss)
{
    struct ws_totals *t = gather(b);
    if (!t) {
        fputs("\"ws\": null", f);
        return;
    }
    const struct ws_opts *o = b->o;
    unsigned n = readers(b);
    uint64_t expected = b->committed * n;
    fputs("\"ws\": {\"server\": ", f);
    bench_json_string(f, o->authority);
    fputs(", \"path\": ", f);
    bench_json_string(f, o->path);
    fprintf(f,
            ", \"scenario\": \"%s\", \"subscribers\": %u, \"reading_subscribers\": %u, "
            "\"subscribe\": %s, \"threads\": %u,\n"
            "    \"heartbeats_committed\": %llu, \"heartbeats_per_s\": %.1f, "
            "\"deltas_expected\": %llu, \"deltas_delivered\": %llu, \"deltas_per_s\": %.1f, "
            "\"drops\": %lld, \"snapshots\": %llu,\n    \"push_latency_ms\": ",
            scenario_name(o->scenario), o->subscribers, n, o->subscribe ? "true" : "false",
            steady_workers(b), (unsigned long long)b->committed,
            secs > 0 ? (double)b->committed / secs : 0.0, (unsigned long long)expected,
            (unsigned long long)t->c.delivered, secs > 0 ? (double)t->c.delivered / secs : 0.0,
            (long long)expected - (long long)t->c.delivered, (unsigned long long)t->c.snapshots);
    json_lat(f, &t->all);
    fputs(",\n    \"received\": ", f);
    json_counts(f, &t->c);
    fprintf(f,
            ",\n    \"client_cpu_s\": %.3f, \"connects\": %llu, \"reconnects\": %llu, "
            "\"errors\": ",
            t->cpu_s, (unsigned long long)t->connects, (unsigned long long)t->disconnects);
    json_errors(f, t->errors, t->http);
    fputs(", \"close_codes\": {", f);
    for (unsigned i = 0; i < t->ncloses; i++)
        fprintf(f, "%s\"%u\": %llu", i ? ", " : "", t->closes[i].code,
                (unsigned long long)t->closes[i].n);
    fputc('}', f);
    if (t->slow) {
        const struct ws_slow *s = t->slow;
        fprintf(f, ",\n    \"slow\": {\"paused_at_s\": %.3f, \"dropped_while_paused\": ",
                rel_s(b, s->paused_ns));
        if (s->dropped_ns) {
            fprintf(f, "{\"at_s\": %.3f, \"how\": ", rel_s(b, s->dropped_ns));
            bench_json_string(f, s->dropped_how);
            fputc('}', f);
        } else {
            fputs("null", f);
        }
        if (s->resumed_ns)
            fprintf(f, ", \"resumed_at_s\": %.3f", rel_s(b, s->resumed_ns));
        else
            fputs(", \"resumed_at_s\": null", f);
        fputs(", \"close_code\": ", f);
        if (s->close_code)
            fprintf(f, "%u, \"close_seen_at_s\": %.3f", s->close_code, rel_s(b, s->close_ns));
        else
            fputs("null, \"close_seen_at_s\": null", f);
        fprintf(f, ", \"closed_4008\": %s, \"eof\": %s, \"end\": ",
                s->close_code == 4008 ? "true" : "false", s->eof ? "true" : "false");
        bench_json_string(f, s->end);
        fputs(", \"received\": ", f);
        json_counts(f, &s->c);
        fputc('}', f);
    }
    if (o->scenario == WS_RECONNECT_STORM) {
        double sd = ((double)b->win.storm_end - (double)b->win.storm_start) / 1e9;
        fprintf(f,
                ",\n    \"storm\": {\"rate\": %.1f, \"duration_s\": %.3f, \"calm_s\": %.1f, "
                "\"attempted\": %llu, \"subscribed\": %llu, \"closed_cleanly\": %llu, "
                "\"skipped\": %llu, \"client_cpu_s\": %.3f, \"errors\": ",
                o->storm_rate, sd, WS_STORM_CALM_S, (unsigned long long)t->storm_attempted,
                (unsigned long long)t->storm_ready, (unsigned long long)t->storm_clean,
                (unsigned long long)t->storm_skipped, t->storm_cpu_s);
        json_errors(f, t->storm_errors, NULL);
        fputs(",\n      \"connect_to_snapshot_ms\": ", f);
        json_lat(f, &t->storm);
        fputs(",\n      \"steady_push_latency_ms\": {\"before\": ", f);
        json_lat(f, &t->phase[0]);
        fputs(",\n        \"during\": ", f);
        json_lat(f, &t->phase[1]);
        fputs(",\n        \"after\": ", f);
        json_lat(f, &t->phase[2]);
        fputc('}', f);
        struct storm_rss r = storm_rss(b, rss);
        if (r.have)
            fprintf(f,
                    ",\n      \"rss_kib\": {\"before\": %llu, \"during_max\": %llu, "
                    "\"after\": %llu, \"after_measured_s_after_storm\": %.1f}",
                    (unsigned long long)r.before, (unsigned long long)r.during_max,
                    (unsigned long long)r.after, r.after_at_s);
        else
            fputs(",\n      \"rss_kib\": null", f);
        fputc('}', f);
    }
    fputc('}', f);
    free(t);
}
