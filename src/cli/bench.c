/* bench.c - `aei bench`: simulated agents send heartbeats; reports throughput and latency */
#define _GNU_SOURCE /* epoll_pwait2 */
#include "cli/cli.h"
#include "cli/hist.h"
#include "cli/resp.h"

#include "aei/error.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef AEI_VERSION
#define AEI_VERSION "0.0.0"
#endif

#define NS_PER_S 1000000000ull
#define MAX_AGENTS 100000u
#define MAX_THREADS 64u
#define MAX_TOKEN 4096
#define MAX_PATH_LEN 1024
#define MAX_LABEL 256
#define BODY_MAX 768
#define RBUF_INIT 4096
#define RBUF_MAX (1u << 20)
#define SCAN_NS 20000000ull        /* how often timeouts and reconnects are checked */
#define BACKOFF_MIN_NS 50000000ull /* first delay before reconnecting after a failure */
#define BACKOFF_MAX_NS 1000000000ull
#define PROBE_MS 2000
#define MAX_EVENTS 256

struct opts {
    char host[256];
    char port[8];
    char authority[272]; /* HOST:PORT as sent in the Host header */
    const char *token;
    unsigned agents;
    double rate;
    double duration;
    double warmup;
    double timeout;
    const char *path;
    const char *json;
    const char *label;
    unsigned threads;
    bool quiet;
};

struct target {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int family;
};

enum conn_state { CONN_DOWN, CONN_CONNECTING, CONN_IDLE, CONN_BUSY };

struct conn {
    int fd;
    enum conn_state state;
    unsigned id;          /* agent number across all threads, shown as bench-%06u */
    unsigned slot;        /* index within its worker, for the open-loop schedule */
    uint64_t seq;         /* requests started; in open loop also the next schedule slot */
    uint64_t origin_ns;   /* latency origin of the request in flight */
    uint64_t deadline_ns; /* busy or connecting: timeout; down: next connect attempt */
    uint64_t backoff_ns;
    bool counted;  /* the request in flight falls inside the measurement window */
    bool want_out; /* EPOLLOUT is registered */
    char *wbuf;
    size_t wlen, woff;
    char *rbuf;
    size_t rlen, rcap;
    uint64_t rng;
    double cost_usd;
};

enum err_kind { ERR_CONNECT, ERR_TIMEOUT, ERR_CLOSED, ERR_IO, ERR_PROTOCOL, ERR_KINDS };
static const char *const err_names[ERR_KINDS] = {"connect", "timeout", "closed", "io", "protocol"};

struct run {
    uint64_t t0;              /* start of warmup */
    uint64_t warm_end;        /* start of the measurement window */
    uint64_t end;             /* end of the measurement window */
    _Atomic uint64_t stop_ns; /* set when interrupted early; 0 otherwise */
    atomic_uint finished;     /* workers done */
};

struct worker {
    pthread_t tid;
    const struct opts *o;
    const struct target *t;
    struct run *run;
    struct conn *conns;
    unsigned nconns;
    double rate;        /* this worker's share of --rate; 0 means closed loop */
    double interval_ns; /* between two schedule slots of this worker */
    uint64_t tick;      /* next open-loop schedule slot across this worker's agents */
    bool stopping;
    int ep;
    char *prefix; /* request line and fixed headers */
    size_t prefix_len;
    time_t ts_sec;
    char ts_buf[32];
    struct hist hist;
    _Atomic uint64_t responses;
    _Atomic uint64_t ok;
    _Atomic uint64_t errors[ERR_KINDS];
    _Atomic uint64_t http[600];
    _Atomic uint64_t unsent;
    _Atomic uint64_t connects;
};

/* Signals received: the first ends the run early, a second one also skips the drain. */
static atomic_int interrupts;

static void on_signal(int sig)
{
    (void)sig;
    atomic_fetch_add(&interrupts, 1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

void bench_help(FILE *out)
{
    fputs(
        "Usage: aei bench [options]\n"
        "\n"
        "Simulates N agents, each on its own HTTP/1.1 keep-alive connection, posting heartbeats\n"
        "to an AEI server (or any HTTP server), then prints throughput and latency percentiles.\n"
        "\n"
        "Options:\n"
        "  --server HOST:PORT   server to load (default 127.0.0.1:3000)\n"
        "  --token T            bearer token (default: $AEI_TOKEN; none if unset)\n"
        "  --agents N           simulated agents = connections (default 100)\n"
        "  --rate R             total requests per second across all agents; 0 = closed loop\n"
        "                       (default 0: each agent sends its next heartbeat as soon as the\n"
        "                       previous answer arrives)\n"
        "  --duration SECONDS   measured time (default 10)\n"
        "  --warmup SECONDS     time before measuring, not counted (default 1)\n"
        "  --path P             request path (default /api/v0/heartbeats)\n"
        "  --timeout SECONDS    per-request and connect timeout (default 5)\n"
        "  --threads N          client threads sharing the agents (default 1)\n"
        "  --json FILE          also write the results as JSON to FILE ('-' for stdout)\n"
        "  --label TEXT         name of this run, stored in the JSON\n"
        "  --quiet              no progress line, no warnings\n"
        "  -h, --help           show this help\n"
        "\n"
        "With --rate, sends are scheduled open-loop at a fixed interval per agent and latency is\n"
        "measured from each request's scheduled send time, not from when it was actually sent,\n"
        "so a stalled server is charged for the requests it delayed (no coordinated omission).\n"
        "Scheduled requests that could not be sent before the end are reported as 'unsent'.\n"
        "Closed loop measures from the actual send.\n"
        "\n"
        "Percentiles come from a log-linear histogram of every measured request (128 sub-buckets\n"
        "per power of two: under 0.4% relative error). Non-2xx answers count as errors by status;\n"
        "connect failures, timeouts and closed connections are counted too, and agents reconnect.\n"
        "A progress line goes to stderr once a second; the summary goes to stdout.\n"
        "\n"
        "Exit status: 0 when the run completed (even with HTTP errors), 1 when the server could\n"
        "not be reached at all, 2 on a bad command line.\n",
        out);
}

/* ---- option parsing ---- */

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("aei bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (see 'aei bench --help')\n", stderr);
    va_end(ap);
    return AEI_EINVAL;
}

static int parse_uint(const char *opt, const char *s, unsigned min, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9')
        goto bad;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v < min || v > max)
        goto bad;
    *out = (unsigned)v;
    return 0;
bad:
    fprintf(stderr, "aei bench: %s: expected a whole number from %u to %u, got '%s'\n", opt, min,
            max, s);
    return AEI_EINVAL;
}

static int parse_seconds(const char *opt, const char *s, double min, bool min_open, double max,
                         double *out)
{
    char *end;
    errno = 0;
    if ((*s < '0' || *s > '9') && *s != '.')
        goto bad;
    double v = strtod(s, &end);
    if (*end == 's' && end[1] == '\0')
        end++;
    if (errno || *end || !isfinite(v) || v < min || (min_open && v == min) || v > max)
        goto bad;
    *out = v;
    return 0;
bad:
    fprintf(stderr, "aei bench: %s: expected a number %s %g and at most %g, got '%s'\n", opt,
            min_open ? ">" : ">=", min, max, s);
    return AEI_EINVAL;
}

/* Accepts HOST:PORT, [IPV6]:PORT, optionally prefixed by http:// and followed by a slash. */
static int parse_server(const char *s, struct opts *o)
{
    const char *p = s;
    if (strncmp(p, "http://", 7) == 0)
        p += 7;
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
    if (hlen == 0 || hlen >= sizeof(o->host) || plen == 0 || plen > 5)
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
    memcpy(o->host, host, hlen);
    o->host[hlen] = '\0';
    snprintf(o->port, sizeof(o->port), "%u", port);
    if (bracket)
        snprintf(o->authority, sizeof(o->authority), "[%s]:%u", o->host, port);
    else
        snprintf(o->authority, sizeof(o->authority), "%s:%u", o->host, port);
    return 0;
bad:
    fprintf(stderr,
            "aei bench: --server: expected HOST:PORT such as 127.0.0.1:3000 or [::1]:3000, "
            "got '%s'\n",
            s);
    return AEI_EINVAL;
}

static bool is_header_safe(const char *s, bool allow_space)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 32 || c == 127 || (!allow_space && c == ' '))
            return false;
    }
    return true;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"server", required_argument, NULL, 's'},   {"token", required_argument, NULL, 'T'},
        {"agents", required_argument, NULL, 'a'},   {"rate", required_argument, NULL, 'r'},
        {"duration", required_argument, NULL, 'd'}, {"warmup", required_argument, NULL, 'w'},
        {"path", required_argument, NULL, 'p'},     {"json", required_argument, NULL, 'j'},
        {"label", required_argument, NULL, 'l'},    {"threads", required_argument, NULL, 't'},
        {"timeout", required_argument, NULL, 'o'},  {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    const char *server = "127.0.0.1:3000";
    bool threads_set = false;

    memset(o, 0, sizeof(*o));
    o->agents = 100;
    o->duration = 10;
    o->warmup = 1;
    o->timeout = 5;
    o->threads = 1;
    o->path = "/api/v0/heartbeats";
    o->token = getenv("AEI_TOKEN");
    if (o->token && !*o->token)
        o->token = NULL;

    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":hq", longopts, NULL)) != -1) {
        int r = 0;
        switch (c) {
        case 's':
            server = optarg;
            break;
        case 'T':
            o->token = optarg;
            break;
        case 'a':
            r = parse_uint("--agents", optarg, 1, MAX_AGENTS, &o->agents);
            break;
        case 'r':
            r = parse_seconds("--rate", optarg, 0, false, 1e7, &o->rate);
            break;
        case 'd':
            r = parse_seconds("--duration", optarg, 0, true, 86400, &o->duration);
            break;
        case 'w':
            r = parse_seconds("--warmup", optarg, 0, false, 3600, &o->warmup);
            break;
        case 'o':
            r = parse_seconds("--timeout", optarg, 0, true, 600, &o->timeout);
            break;
        case 't':
            r = parse_uint("--threads", optarg, 1, MAX_THREADS, &o->threads);
            threads_set = true;
            break;
        case 'p':
            o->path = optarg;
            break;
        case 'j':
            o->json = optarg;
            break;
        case 'l':
            o->label = optarg;
            break;
        case 'q':
            o->quiet = true;
            break;
        case 'h':
            bench_help(stdout);
            return 1;
        case ':':
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            if (optopt) {
                char opt[3] = {'-', (char)optopt, '\0'};
                return usage_error("unknown option '%s'", opt);
            }
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
        if (r < 0)
            return r;
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (parse_server(server, o) < 0)
        return AEI_EINVAL;
    if (o->path[0] != '/' || strlen(o->path) > MAX_PATH_LEN || !is_header_safe(o->path, false))
        return usage_error("--path: expected an absolute path such as /api/v0/heartbeats "
                           "(no spaces or control characters), got '%s'",
                           o->path);
    if (o->token && (strlen(o->token) > MAX_TOKEN || !is_header_safe(o->token, false))) {
        fputs("aei bench: the token contains spaces or control characters, or is longer than "
              "4096 bytes; check --token or AEI_TOKEN\n",
              stderr);
        return AEI_EINVAL;
    }
    if (o->label && strlen(o->label) > MAX_LABEL)
        return usage_error("--label: at most %d bytes", MAX_LABEL);
    if (o->rate > 0 && o->rate < 0.01)
        return usage_error("--rate: use 0 for closed loop or at least 0.01 requests/s");
    if (o->threads > o->agents) {
        if (threads_set && !o->quiet)
            fprintf(stderr, "aei bench: --threads lowered to %u, one per agent\n", o->agents);
        o->threads = o->agents;
    }
    return 0;
}

/* ---- request generation ---- */

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64*: plenty for varying payloads. */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

static const char *pick_status(uint64_t *rng)
{
    unsigned r = (unsigned)(rng_next(rng) % 100);
    if (r < 60)
        return "processing";
    if (r < 80)
        return "waiting";
    if (r < 95)
        return "idle";
    if (r < 98)
        return "error";
    return "complete";
}

/* Formats the agent-side timestamp with millisecond precision; caches the seconds part. */
static const char *agent_time(struct worker *w, long *ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != w->ts_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(w->ts_buf, sizeof(w->ts_buf), "%Y-%m-%dT%H:%M:%S", &tm);
        w->ts_sec = ts.tv_sec;
    }
    *ms = ts.tv_nsec / 1000000;
    return w->ts_buf;
}

static int build_request(struct worker *w, struct conn *c)
{
    char body[BODY_MAX];
    char parent[32];
    long ms;
    const char *ts = agent_time(w, &ms);

    /* Agents come in teams of ten: the first is the lead, the others report to it. */
    if (c->id % 10)
        snprintf(parent, sizeof(parent), "\"bench-%06u\"", c->id - c->id % 10);
    else
        snprintf(parent, sizeof(parent), "null");
    c->cost_usd += 0.0001 + rng_unit(&c->rng) * 0.002;
    int n = snprintf(body, sizeof(body),
                     "{\"agent_id\":\"bench-%06u\",\"status\":\"%s\",\"metrics\":{\"cpu_pct\":%.1f,"
                     "\"mem_pct\":%.1f,\"tokens_per_min\":%u,\"cost_usd\":%.4f,\"confidence\":%u},"
                     "\"parent_agent_id\":%s,\"timestamp\":\"%s.%03ldZ\",\"schema_version\":\"0\"}",
                     c->id, pick_status(&c->rng), rng_unit(&c->rng) * 100.0,
                     20.0 + rng_unit(&c->rng) * 70.0, (unsigned)(rng_next(&c->rng) % 5000),
                     c->cost_usd, (unsigned)(50 + rng_next(&c->rng) % 51), parent, ts, ms);
    if (n < 0 || (size_t)n >= sizeof(body))
        return AEI_EINVAL;
    memcpy(c->wbuf, w->prefix, w->prefix_len);
    size_t off = w->prefix_len;
    int h = snprintf(c->wbuf + off, 64, "Content-Length: %d\r\n\r\n", n);
    off += (size_t)h;
    memcpy(c->wbuf + off, body, (size_t)n);
    c->wlen = off + (size_t)n;
    c->woff = 0;
    return 0;
}

static char *build_prefix(const struct opts *o, size_t *len)
{
    size_t cap = strlen(o->path) + strlen(o->authority) + (o->token ? strlen(o->token) : 0) + 256;
    char *p = malloc(cap);
    if (!p)
        return NULL;
    int n = snprintf(p, cap,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: aei-bench/%s\r\n"
                     "Content-Type: application/json\r\n%s%s%s",
                     o->path, o->authority, AEI_VERSION, o->token ? "Authorization: Bearer " : "",
                     o->token ? o->token : "", o->token ? "\r\n" : "");
    if (n < 0 || (size_t)n >= cap) {
        free(p);
        return NULL;
    }
    *len = (size_t)n;
    return p;
}

/* ---- connections ---- */

static bool in_window(const struct worker *w, uint64_t t)
{
    return t >= w->run->warm_end;
}

static void count_error(struct worker *w, enum err_kind k)
{
    atomic_fetch_add_explicit(&w->errors[k], 1, memory_order_relaxed);
}

static void set_out(struct worker *w, struct conn *c, bool on)
{
    if (c->want_out == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->want_out = on;
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = CONN_DOWN;
    c->rlen = 0;
    c->want_out = false;
}

static void conn_open(struct worker *w, struct conn *c, uint64_t now);

/* Counts a failure of kind `k` and schedules a reconnect with exponential backoff. */
static void conn_fail(struct worker *w, struct conn *c, enum err_kind k, uint64_t now)
{
    if (c->state == CONN_BUSY ? c->counted : in_window(w, now))
        count_error(w, k);
    conn_close(c);
    c->backoff_ns = c->backoff_ns ? c->backoff_ns * 2 : BACKOFF_MIN_NS;
    if (c->backoff_ns > BACKOFF_MAX_NS)
        c->backoff_ns = BACKOFF_MAX_NS;
    c->deadline_ns = now + c->backoff_ns;
}

/* Closes a connection the server ended cleanly and opens a new one at once. */
static void conn_recycle(struct worker *w, struct conn *c, uint64_t now)
{
    conn_close(c);
    c->deadline_ns = now;
    if (!w->stopping)
        conn_open(w, c, now);
}

static uint64_t slot_time(const struct worker *w, const struct conn *c, uint64_t seq)
{
    double k = (double)seq * (double)w->nconns + (double)c->slot;
    return w->run->t0 + (uint64_t)(k * w->interval_ns);
}

static void conn_flush(struct worker *w, struct conn *c, uint64_t now)
{
    while (c->woff < c->wlen) {
        ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
        if (n > 0) {
            c->woff += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_out(w, c, true);
            return;
        }
        /* A keep-alive connection the server already closed shows up here. */
        conn_fail(w, c, errno == EPIPE || errno == ECONNRESET ? ERR_CLOSED : ERR_IO, now);
        return;
    }
    set_out(w, c, false);
}

/* Sends the next heartbeat if the agent is idle and (open loop) its next slot is due. */
static void conn_try_send(struct worker *w, struct conn *c, uint64_t now)
{
    if (c->state != CONN_IDLE || w->stopping)
        return;
    uint64_t origin = now;
    if (w->rate > 0) {
        origin = slot_time(w, c, c->seq);
        if (origin > now || origin >= w->run->end)
            return;
    } else if (now >= w->run->end) {
        return;
    }
    if (build_request(w, c) < 0) {
        conn_fail(w, c, ERR_IO, now);
        return;
    }
    c->seq++;
    c->origin_ns = origin;
    c->counted = in_window(w, origin);
    c->state = CONN_BUSY;
    c->deadline_ns = now + (uint64_t)(w->o->timeout * 1e9);
    conn_flush(w, c, now);
}

static void conn_connected(struct worker *w, struct conn *c, uint64_t now)
{
    c->state = CONN_IDLE;
    atomic_fetch_add_explicit(&w->connects, 1, memory_order_relaxed);
    set_out(w, c, false);
    conn_try_send(w, c, now);
}

static void conn_open(struct worker *w, struct conn *c, uint64_t now)
{
    const struct target *t = w->t;
    int fd = socket(t->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        conn_fail(w, c, ERR_CONNECT, now);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    c->rlen = 0;
    int r = connect(fd, (const struct sockaddr *)&t->addr, t->addrlen);
    bool pending = r < 0 && errno == EINPROGRESS;
    if (r < 0 && !pending) {
        conn_fail(w, c, ERR_CONNECT, now);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (pending ? EPOLLOUT : 0),
                             .data.ptr = c};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        conn_fail(w, c, ERR_CONNECT, now);
        return;
    }
    c->want_out = pending;
    if (pending) {
        c->state = CONN_CONNECTING;
        c->deadline_ns = now + (uint64_t)(w->o->timeout * 1e9);
    } else {
        conn_connected(w, c, now);
    }
}

static void record(struct worker *w, struct conn *c, int status, uint64_t now)
{
    c->state = CONN_IDLE;
    c->backoff_ns = 0;
    if (!c->counted)
        return;
    hist_record(&w->hist, now > c->origin_ns ? now - c->origin_ns : 0);
    atomic_fetch_add_explicit(&w->responses, 1, memory_order_relaxed);
    if (status >= 200 && status < 300)
        atomic_fetch_add_explicit(&w->ok, 1, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&w->http[status], 1, memory_order_relaxed);
}

static void conn_readable(struct worker *w, struct conn *c, uint64_t now)
{
    bool eof = false;
    for (;;) {
        if (c->rcap - c->rlen < 512) {
            size_t cap = c->rcap ? c->rcap * 2 : RBUF_INIT;
            if (cap > RBUF_MAX) {
                conn_fail(w, c, ERR_PROTOCOL, now);
                return;
            }
            char *nb = realloc(c->rbuf, cap);
            if (!nb) {
                conn_fail(w, c, ERR_IO, now);
                return;
            }
            c->rbuf = nb;
            c->rcap = cap;
        }
        size_t room = c->rcap - c->rlen;
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, room, 0);
        if (n > 0) {
            c->rlen += (size_t)n;
            if ((size_t)n < room)
                break;
            continue;
        }
        if (n == 0) {
            eof = true;
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
        conn_fail(w, c, errno == ECONNRESET ? ERR_CLOSED : ERR_IO, now);
        return;
    }

    while (c->state == CONN_BUSY && (c->rlen > 0 || eof)) {
        struct http_resp r = {0};
        int p = resp_parse(c->rbuf, c->rlen, &r);
        if (p < 0) {
            conn_fail(w, c, ERR_PROTOCOL, now);
            return;
        }
        if (p == 0) {
            if (!eof)
                return;
            if (!r.until_close) {
                conn_fail(w, c, ERR_CLOSED, now);
                return;
            }
            r.total_len = c->rlen;
        }
        memmove(c->rbuf, c->rbuf + r.total_len, c->rlen - r.total_len);
        c->rlen -= r.total_len;
        if (r.status < 200)
            continue; /* interim response: the final one follows */
        record(w, c, r.status, now);
        if (r.close || eof || c->rlen > 0) {
            /* Closing, or bytes nobody asked for: start over on a fresh connection. */
            conn_recycle(w, c, now);
            return;
        }
        conn_try_send(w, c, now);
        return;
    }
    if (c->state != CONN_BUSY && (eof || c->rlen > 0))
        conn_recycle(w, c, now); /* the server closed an idle connection or spoke unasked */
}

static void on_event(struct worker *w, struct epoll_event *ev, uint64_t now)
{
    struct conn *c = ev->data.ptr;
    if (c->fd < 0)
        return;
    if (c->state == CONN_CONNECTING) {
        if (!(ev->events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
            conn_fail(w, c, ERR_CONNECT, now);
            return;
        }
        conn_connected(w, c, now);
        return;
    }
    if ((ev->events & EPOLLOUT) && c->state == CONN_BUSY && c->woff < c->wlen) {
        conn_flush(w, c, now);
        if (c->fd < 0)
            return;
    }
    if (ev->events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
        conn_readable(w, c, now);
}

/* Times out slow requests and connects, reconnects dropped agents, sends overdue slots. */
static void scan(struct worker *w, uint64_t now)
{
    for (unsigned i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        switch (c->state) {
        case CONN_BUSY:
            if (now >= c->deadline_ns)
                conn_fail(w, c, ERR_TIMEOUT, now);
            break;
        case CONN_CONNECTING:
            if (now >= c->deadline_ns)
                conn_fail(w, c, ERR_CONNECT, now);
            break;
        case CONN_DOWN:
            if (!w->stopping && now >= c->deadline_ns)
                conn_open(w, c, now);
            break;
        case CONN_IDLE:
            conn_try_send(w, c, now);
            break;
        }
    }
}

static int wait_events(struct worker *w, struct epoll_event *evs, uint64_t timeout_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(timeout_ns / NS_PER_S),
                          .tv_nsec = (long)(timeout_ns % NS_PER_S)};
    int n = epoll_pwait2(w->ep, evs, MAX_EVENTS, &ts, NULL);
    if (n < 0 && errno == ENOSYS) {
        /* Kernels before 5.11: millisecond resolution, rounded up. */
        n = epoll_wait(w->ep, evs, MAX_EVENTS, (int)((timeout_ns + 999999) / 1000000));
    }
    return n;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct run *run = w->run;
    struct epoll_event evs[MAX_EVENTS];
    uint64_t now = now_ns();
    uint64_t next_scan = now + SCAN_NS;

    for (unsigned i = 0; i < w->nconns; i++)
        conn_open(w, &w->conns[i], now);

    for (;;) {
        now = now_ns();
        uint64_t wake = run->end;
        /* Fire the due slots first, so that none before the end is lost by breaking out. */
        if (w->rate > 0) {
            for (;;) {
                uint64_t when = run->t0 + (uint64_t)((double)w->tick * w->interval_ns);
                if (when > now) {
                    if (when < wake)
                        wake = when;
                    break;
                }
                if (when >= run->end)
                    break;
                conn_try_send(w, &w->conns[w->tick % w->nconns], now);
                w->tick++;
            }
        }
        if (now >= run->end || atomic_load_explicit(&run->stop_ns, memory_order_relaxed))
            break;
        if (now >= next_scan) {
            scan(w, now);
            next_scan = now + SCAN_NS;
        }
        if (next_scan < wake)
            wake = next_scan;
        int n = wait_events(w, evs, wake > now ? wake - now : 0);
        now = now_ns();
        for (int i = 0; i < n; i++)
            on_event(w, &evs[i], now);
    }

    /* Stop sending; wait for the requests in flight, up to the timeout. */
    w->stopping = true;
    uint64_t stop = now < run->end ? now : run->end;
    uint64_t drain_end = now + (uint64_t)(w->o->timeout * 1e9);
    for (;;) {
        unsigned busy = 0;
        for (unsigned i = 0; i < w->nconns; i++)
            busy += w->conns[i].state == CONN_BUSY;
        now = now_ns();
        if (!busy || now >= drain_end || atomic_load(&interrupts) > 1)
            break;
        int n = wait_events(w, evs, SCAN_NS);
        now = now_ns();
        for (int i = 0; i < n; i++)
            on_event(w, &evs[i], now);
        scan(w, now);
    }
    for (unsigned i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if (c->state == CONN_BUSY)
            conn_fail(w, c, ERR_TIMEOUT, now);
        conn_close(c);
        /* Open loop: slots of the window that never got sent mean the server fell behind. */
        if (w->rate > 0) {
            for (uint64_t s = c->seq;; s++) {
                uint64_t t = slot_time(w, c, s);
                if (t >= stop)
                    break;
                if (t >= run->warm_end)
                    atomic_fetch_add_explicit(&w->unsent, 1, memory_order_relaxed);
            }
        }
    }
    atomic_fetch_add(&run->finished, 1);
    return NULL;
}

/* ---- setup, progress and results ---- */

static int resolve(const struct opts *o, struct target *t)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int r = getaddrinfo(o->host, o->port, &hints, &res);
    if (r != 0 || !res) {
        fprintf(stderr, "aei bench: cannot resolve '%s': %s; check --server\n", o->host,
                gai_strerror(r));
        return AEI_EUNAVAILABLE;
    }
    memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
    t->addrlen = res->ai_addrlen;
    t->family = res->ai_family;
    freeaddrinfo(res);
    return 0;
}

/* One blocking connect up front, so that a server that is not there fails fast and clearly. */
static int probe(const struct opts *o, const struct target *t)
{
    int fd = socket(t->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    if (connect(fd, (const struct sockaddr *)&t->addr, t->addrlen) < 0) {
        if (errno != EINPROGRESS)
            goto fail;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int r = poll(&p, 1, PROBE_MS);
        if (r == 0) {
            errno = ETIMEDOUT;
            goto fail;
        }
        int err = 0;
        socklen_t len = sizeof(err);
        if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            goto fail;
        if (err) {
            errno = err;
            goto fail;
        }
    }
    close(fd);
    return 0;
fail:;
    int e = errno;
    if (fd >= 0)
        close(fd);
    fprintf(stderr, "aei bench: cannot connect to %s: %s; start the server or pass --server\n",
            o->authority, strerror(e));
    return AEI_EUNAVAILABLE;
}

static int raise_fd_limit(unsigned agents)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)agents + 32;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need)
        return 0;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
        fprintf(stderr,
                "aei bench: %u agents need %llu open files but the limit is %llu; "
                "use fewer --agents or raise the limit (ulimit -n)\n",
                agents, (unsigned long long)need, (unsigned long long)rl.rlim_max);
        return AEI_EINVAL;
    }
    rl.rlim_cur = need;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        fprintf(stderr, "aei bench: cannot raise the open-file limit to %llu: %s\n",
                (unsigned long long)need, strerror(errno));
        return AEI_EINVAL;
    }
    return 0;
}

struct totals {
    uint64_t responses, ok, errors[ERR_KINDS], http[600], unsent, connects, err_total;
    struct hist_snap *lat;
};

static void sum_workers(struct worker *ws, unsigned n, struct totals *t)
{
    struct hist_snap *lat = t->lat;
    memset(t, 0, sizeof(*t));
    t->lat = lat;
    hist_snap_init(lat);
    for (unsigned i = 0; i < n; i++) {
        struct worker *w = &ws[i];
        t->responses += atomic_load_explicit(&w->responses, memory_order_relaxed);
        t->ok += atomic_load_explicit(&w->ok, memory_order_relaxed);
        for (int k = 0; k < ERR_KINDS; k++)
            t->errors[k] += atomic_load_explicit(&w->errors[k], memory_order_relaxed);
        for (int s = 0; s < 600; s++)
            t->http[s] += atomic_load_explicit(&w->http[s], memory_order_relaxed);
        t->unsent += atomic_load_explicit(&w->unsent, memory_order_relaxed);
        t->connects += atomic_load_explicit(&w->connects, memory_order_relaxed);
        hist_snap_add(lat, &w->hist);
    }
    for (int k = 0; k < ERR_KINDS; k++)
        t->err_total += t->errors[k];
    t->err_total += t->responses - t->ok;
}

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static void progress(const struct run *run, struct worker *ws, unsigned n, struct totals *t,
                     uint64_t *prev_resp, uint64_t *prev_ns, bool tty)
{
    uint64_t now = now_ns();
    char line[160];
    double elapsed = (double)(now - run->t0) / 1e9;
    if (now < run->warm_end) {
        snprintf(line, sizeof(line), "aei bench: %5.1fs  warming up", elapsed);
    } else {
        sum_workers(ws, n, t);
        double dt = (double)(now - *prev_ns) / 1e9;
        double rps = dt > 0 ? (double)(t->responses - *prev_resp) / dt : 0;
        *prev_resp = t->responses;
        *prev_ns = now;
        snprintf(line, sizeof(line), "aei bench: %5.1fs  %9.0f req/s  p99 %8.3f ms  errors %llu",
                 elapsed, rps, ms(hist_percentile(t->lat, 99)), (unsigned long long)t->err_total);
    }
    if (tty)
        fprintf(stderr, "\r%s\033[K", line);
    else
        fprintf(stderr, "%s\n", line);
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* Writes the results to `f` and closes it unless it is stdout. */
static int write_json(FILE *f, const struct opts *o, const struct totals *t, double secs,
                      time_t started)
{
    char when[32];
    struct tm tm;
    gmtime_r(&started, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    const struct hist_snap *l = t->lat;

    fputs("{\n  \"label\": ", f);
    json_string(f, o->label ? o->label : "");
    fprintf(f, ",\n  \"tool\": \"aei bench %s\",\n  \"started_at\": \"%s\",\n", AEI_VERSION, when);
    fputs("  \"server\": ", f);
    json_string(f, o->authority);
    fputs(",\n  \"path\": ", f);
    json_string(f, o->path);
    fprintf(f,
            ",\n  \"mode\": \"%s\",\n  \"agents\": %u,\n  \"threads\": %u,\n  \"rate\": %.3f,\n"
            "  \"duration_s\": %.3f,\n  \"warmup_s\": %.3f,\n  \"requests\": %llu,\n"
            "  \"ok\": %llu,\n  \"rps\": %.1f,\n  \"ok_rps\": %.1f,\n  \"unsent\": %llu,\n",
            o->rate > 0 ? "open" : "closed", o->agents, o->threads, o->rate, secs, o->warmup,
            (unsigned long long)t->responses, (unsigned long long)t->ok,
            secs > 0 ? (double)t->responses / secs : 0.0, secs > 0 ? (double)t->ok / secs : 0.0,
            (unsigned long long)t->unsent);
    fprintf(f,
            "  \"latency_ms\": {\"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, \"p999\": %.3f, "
            "\"max\": %.3f, \"mean\": %.3f},\n",
            ms(hist_percentile(l, 50)), ms(hist_percentile(l, 90)), ms(hist_percentile(l, 99)),
            ms(hist_percentile(l, 99.9)), ms(l->max), l->total ? ms(l->sum / l->total) : 0.0);
    fprintf(f, "  \"errors\": {\"total\": %llu", (unsigned long long)t->err_total);
    for (int k = 0; k < ERR_KINDS; k++)
        fprintf(f, ", \"%s\": %llu", err_names[k], (unsigned long long)t->errors[k]);
    fputs(", \"http\": {", f);
    bool first = true;
    for (int s = 0; s < 600; s++) {
        if (!t->http[s])
            continue;
        fprintf(f, "%s\"%d\": %llu", first ? "" : ", ", s, (unsigned long long)t->http[s]);
        first = false;
    }
    fputs("}}\n}\n", f);
    int bad = ferror(f);
    if (f != stdout) {
        if (fclose(f) != 0)
            bad = 1;
    } else {
        fflush(f);
    }
    if (bad) {
        fprintf(stderr, "aei bench: writing %s failed; check the disk and the path\n", o->json);
        return AEI_EIO;
    }
    return 0;
}

static void print_summary(const struct opts *o, const struct totals *t, double secs)
{
    const struct hist_snap *l = t->lat;
    char mode[96];
    if (o->rate > 0)
        snprintf(mode, sizeof(mode), "open loop at %.0f req/s", o->rate);
    else
        snprintf(mode, sizeof(mode), "closed loop");
    printf("aei bench: %u agents, %s, POST http://%s%s\n", o->agents, mode, o->authority, o->path);
    printf("requests    %llu (%llu 2xx)\n", (unsigned long long)t->responses,
           (unsigned long long)t->ok);
    printf("duration    %.2f s (after %.2f s warmup)\n", secs, o->warmup);
    printf("throughput  %.1f req/s\n", secs > 0 ? (double)t->responses / secs : 0.0);
    printf("latency     p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms%s\n",
           ms(hist_percentile(l, 50)), ms(hist_percentile(l, 90)), ms(hist_percentile(l, 99)),
           ms(hist_percentile(l, 99.9)), ms(l->max), o->rate > 0 ? "  (from scheduled send)" : "");
    printf("errors      %llu", (unsigned long long)t->err_total);
    const char *sep = ": ";
    for (int s = 0; s < 600; s++) {
        if (t->http[s]) {
            printf("%shttp %d x%llu", sep, s, (unsigned long long)t->http[s]);
            sep = ", ";
        }
    }
    for (int k = 0; k < ERR_KINDS; k++) {
        if (t->errors[k]) {
            printf("%s%s x%llu", sep, err_names[k], (unsigned long long)t->errors[k]);
            sep = ", ";
        }
    }
    putchar('\n');
    /* A few slots are always queued behind an answer still in flight when the run ends. */
    if (t->unsent)
        printf("unsent      %llu scheduled requests were still queued behind a slower answer at "
               "the end%s\n",
               (unsigned long long)t->unsent,
               t->unsent * 100 > t->responses + t->unsent ? ": the server did not keep up" : "");
}

static void free_workers(struct worker *ws, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct worker *w = &ws[i];
        for (unsigned j = 0; w->conns && j < w->nconns; j++) {
            free(w->conns[j].wbuf);
            free(w->conns[j].rbuf);
        }
        free(w->conns);
        free(w->prefix);
        if (w->ep >= 0)
            close(w->ep);
    }
    free(ws);
}

static int setup_workers(const struct opts *o, const struct target *t, struct run *run,
                         struct worker *ws)
{
    for (unsigned i = 0; i < o->threads; i++)
        ws[i].ep = -1;
    for (unsigned i = 0; i < o->threads; i++) {
        struct worker *w = &ws[i];
        unsigned first = (unsigned)((uint64_t)o->agents * i / o->threads);
        unsigned last = (unsigned)((uint64_t)o->agents * (i + 1) / o->threads);
        w->o = o;
        w->t = t;
        w->run = run;
        w->nconns = last - first;
        w->rate = o->rate * w->nconns / o->agents;
        w->interval_ns = w->rate > 0 ? 1e9 / w->rate : 0;
        hist_init(&w->hist);
        atomic_init(&w->responses, 0);
        atomic_init(&w->ok, 0);
        atomic_init(&w->unsent, 0);
        atomic_init(&w->connects, 0);
        for (int k = 0; k < ERR_KINDS; k++)
            atomic_init(&w->errors[k], 0);
        for (int s = 0; s < 600; s++)
            atomic_init(&w->http[s], 0);
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        w->prefix = build_prefix(o, &w->prefix_len);
        w->conns = calloc(w->nconns, sizeof(*w->conns));
        if (w->ep < 0 || !w->prefix || !w->conns)
            return AEI_ENOMEM;
        for (unsigned j = 0; j < w->nconns; j++) {
            struct conn *c = &w->conns[j];
            c->fd = -1;
            c->id = first + j;
            c->slot = j;
            c->rng = 0x9E3779B97F4A7C15ull * (c->id + 1) ^ (uint64_t)run->t0;
            if (!c->rng)
                c->rng = 1;
            c->wbuf = malloc(w->prefix_len + 64 + BODY_MAX);
            if (!c->wbuf)
                return AEI_ENOMEM;
        }
    }
    return 0;
}

int bench_main(int argc, char **argv)
{
    struct opts o;
    struct target t;
    int r = parse_args(argc, argv, &o);
    if (r == 1)
        return CLI_EXIT_OK;
    if (r < 0)
        return CLI_EXIT_USAGE;
    if (raise_fd_limit(o.agents) < 0)
        return CLI_EXIT_USAGE;
    /* Open the output first: a typo in --json should not cost a whole run. */
    FILE *json = NULL;
    if (o.json) {
        json = strcmp(o.json, "-") == 0 ? stdout : fopen(o.json, "w");
        if (!json) {
            fprintf(stderr, "aei bench: cannot write %s: %s; check --json\n", o.json,
                    strerror(errno));
            return CLI_EXIT_USAGE;
        }
    }
    if (resolve(&o, &t) < 0 || probe(&o, &t) < 0) {
        if (json && json != stdout) {
            fclose(json);
            unlink(o.json);
        }
        return CLI_EXIT_FAIL;
    }
    if (!o.token && !o.quiet)
        fputs("aei bench: no token: requests go without Authorization (set AEI_TOKEN or pass "
              "--token)\n",
              stderr);

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct run run;
    memset(&run, 0, sizeof(run));
    atomic_init(&run.stop_ns, 0);
    atomic_init(&run.finished, 0);
    run.t0 = now_ns();
    run.warm_end = run.t0 + (uint64_t)(o.warmup * 1e9);
    run.end = run.warm_end + (uint64_t)(o.duration * 1e9);
    time_t started = time(NULL);

    int status = CLI_EXIT_FAIL;
    struct hist_snap *lat = malloc(sizeof(*lat));
    struct worker *ws = calloc(o.threads, sizeof(*ws));
    if (!lat || !ws || setup_workers(&o, &t, &run, ws) < 0) {
        fputs("aei bench: out of memory or file descriptors; use fewer --agents\n", stderr);
        goto out;
    }
    struct totals tot = {.lat = lat};

    /* Workers leave signals to this thread, which also prints progress. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    unsigned started_threads = 0;
    for (; started_threads < o.threads; started_threads++)
        if (pthread_create(&ws[started_threads].tid, NULL, worker_main, &ws[started_threads]))
            break;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (started_threads < o.threads) {
        fputs("aei bench: cannot start client threads; use fewer --threads\n", stderr);
        atomic_store(&run.stop_ns, now_ns());
    }

    bool tty = isatty(STDERR_FILENO);
    bool shown = false;
    uint64_t prev_resp = 0, prev_ns = run.warm_end;
    uint64_t next = run.t0 + NS_PER_S;
    while (atomic_load(&run.finished) < started_threads) {
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
        if (atomic_load(&interrupts) && !atomic_load(&run.stop_ns))
            atomic_store(&run.stop_ns, now_ns());
        uint64_t now = now_ns();
        if (now >= next && now < run.end && !atomic_load(&run.stop_ns)) {
            if (!o.quiet) {
                progress(&run, ws, started_threads, &tot, &prev_resp, &prev_ns, tty);
                shown = true;
            }
            next += NS_PER_S * ((now - next) / NS_PER_S + 1);
        }
    }
    for (unsigned i = 0; i < started_threads; i++)
        pthread_join(ws[i].tid, NULL);
    if (shown && tty)
        fputc('\n', stderr);
    if (started_threads < o.threads)
        goto out;

    uint64_t stop = atomic_load(&run.stop_ns);
    uint64_t window_end = stop && stop < run.end ? stop : run.end;
    double secs = window_end > run.warm_end ? (double)(window_end - run.warm_end) / 1e9 : 0;
    sum_workers(ws, o.threads, &tot);
    if (!tot.connects) {
        fprintf(stderr, "aei bench: no agent could connect to %s; is the server up?\n",
                o.authority);
        goto out;
    }
    print_summary(&o, &tot, secs);
    fflush(stdout);
    if (json) {
        FILE *f = json;
        json = NULL;
        if (write_json(f, &o, &tot, secs, started) < 0)
            goto out;
    }
    status = CLI_EXIT_OK;
out:
    /* Still open here means no results were written: leave no empty file behind. */
    if (json && json != stdout) {
        fclose(json);
        unlink(o.json);
    }
    if (ws)
        free_workers(ws, o.threads);
    free(lat);
    return status;
}
