/* bench.c - `aei bench`: simulated agents send heartbeats; reports throughput and latency */
#define _GNU_SOURCE /* epoll_pwait2 */
#include "cli/bench_util.h"
#include "cli/bench_ws.h"
#include "cli/cli.h"
#include "cli/hist.h"
#include "cli/net.h"
#include "cli/proc.h"
#include "cli/resp.h"
#include "cli/rss.h"
#include "cli/trace_gen.h"
#include "cli/units.h"

#include "aei/error.h"
#include "common/time.h"

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
#define MAX_CPU_PIDS 4
#define BODY_MAX 768
#define RBUF_INIT 4096
#define RBUF_MAX (1u << 20)
#define SCAN_NS 20000000ull        /* how often timeouts and reconnects are checked */
#define BACKOFF_MIN_NS 50000000ull /* first delay before reconnecting after a failure */
#define BACKOFF_MAX_NS 1000000000ull
#define PROBE_MS 2000
#define MAX_EVENTS 256
#define MAX_SUBSCRIBERS 50000u
#define STORM_FDS 8192u /* storm connections open at once, as bench_ws.c allows */
#define WS_READY_S 10.0 /* how long subscribers may take to connect and subscribe */
#define WS_DRAIN_S 10.0 /* how long to wait for the last deltas after the agents stopped */

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
    struct ws_opts ws; /* ws.subscribers == 0: no WebSocket part */
    char ws_host[256];
    char ws_port[8];
    int memory_pid; /* 0: no memory sampling */
    double memory_interval;
    int cpu_pids[MAX_CPU_PIDS]; /* --cpu-pid: processes whose CPU time is measured */
    unsigned n_cpu_pids;
    unsigned traces;         /* decisions per request: POST /api/v0/traces; 0: heartbeats */
    unsigned execution_size; /* decisions per execution with --traces */
    /* --actions: the actions each agent takes in turn, by POST /api/v0/agents/{id}/<action>
     * (indexes of action_names), or n_actions 0 for none. */
    unsigned actions[8], n_actions;
};

/* The actions --actions takes, with the body each is sent with. */
static const char *const action_names[] = {"pause", "resume", "execute", "assign", "override"};
static const char *const action_bodies[] = {
    "{\"reason\":\"aei bench\"}", "{\"reason\":\"aei bench\"}",
    "{\"prompt\":\"summarise the benchmark run\",\"reason\":\"aei bench\"}",
    "{\"task\":\"look at the benchmark queue\"}", "{\"outcome\":\"keep the current plan\"}"};
#define N_ACTION_NAMES (sizeof(action_names) / sizeof(action_names[0]))

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
    uint8_t *rbuf;
    size_t rlen, rcap;
    uint64_t rng;
    double cost_usd;
    struct trace_gen gen; /* with --traces: this agent's decisions */
};

enum err_kind { ERR_CONNECT, ERR_TIMEOUT, ERR_CLOSED, ERR_IO, ERR_PROTOCOL, ERR_KINDS };
static const char *const err_names[ERR_KINDS] = {"connect", "timeout", "closed", "io", "protocol"};

struct run {
    uint64_t t0;              /* start of warmup */
    uint64_t warm_end;        /* start of the measurement window */
    uint64_t end;             /* end of the measurement window */
    _Atomic uint64_t stop_ns; /* set when interrupted early; 0 otherwise */
    atomic_uint finished;     /* workers done */
    int64_t wall_off_ns;      /* CLOCK_REALTIME - CLOCK_MONOTONIC, for heartbeat timestamps */
    uint64_t nonce;           /* unique to the run, in the ids of generated decisions */
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

void bench_help(FILE *out)
{
    fputs(
        "Usage: aei bench [options]\n"
        "\n"
        "Simulates N agents, each on its own HTTP/1.1 keep-alive connection, posting heartbeats\n"
        "to an AEI server (or any HTTP server), then prints throughput and latency percentiles.\n"
        "With --subscribers, WebSocket clients also subscribe to the live feed and measure how\n"
        "long each heartbeat takes to reach them as a delta (push latency).\n"
        "\n"
        "Options:\n"
        "  --server HOST:PORT   server to load (default 127.0.0.1:3000)\n"
        "  --token T            bearer token (default: $AEI_TOKEN; none if unset)\n"
        "  --agents N           simulated agents = connections (default 100)\n"
        "  --rate R             total requests per second across all agents; 0 = closed loop\n"
        "                       (default 0: each agent sends its next heartbeat as soon as the\n"
        "                       previous answer arrives)\n"
        "  --duration TIME      measured time (default 10); TIME is seconds, or a number with\n"
        "                       a unit: 500ms, 90s, 10m, 1h\n"
        "  --warmup TIME        time before measuring, not counted (default 1)\n"
        "  --path P             request path (default /api/v0/heartbeats)\n"
        "  --timeout TIME       per-request, connect and WebSocket handshake timeout (default 5)\n"
        "  --threads N          client threads sharing the agents (default 1)\n"
        "  --json FILE          also write the results as JSON to FILE ('-': to stdout, and the\n"
        "                       summary to stderr)\n"
        "  --label TEXT         name of this run, stored in the JSON\n"
        "  --quiet              no progress line, no warnings\n"
        "  -h, --help           show this help\n"
        "\n"
        "Decision traces instead of heartbeats:\n"
        "  --traces N           each request posts a batch of N decisions (1-1000) to\n"
        "                       /api/v0/traces; throughput is also given in decisions/s. Each\n"
        "                       agent grows its own executions, trees four-way branching\n"
        "  --execution-size K   decisions per execution before the agent starts the next\n"
        "                       (default 1000); ids are unique to the run\n"
        "\n"
        "Audited actions instead of heartbeats:\n"
        "  --actions LIST       each agent takes these actions in turn, comma-separated from\n"
        "                       pause, resume, execute, assign, override (e.g. pause,resume),\n"
        "                       by POST /api/v0/agents/bench-NNNNNN/<action>; each answer comes\n"
        "                       after the action and its audit row are committed. The agents\n"
        "                       must exist: run a heartbeat bench with as many agents first\n"
        "\n"
        "WebSocket subscribers and server memory:\n"
        "  --subscribers M      WebSocket clients subscribing to agents:all (default 0: none);\n"
        "                       they connect and subscribe before the agents start\n"
        "  --ws HOST:PORT       WebSocket address (default 127.0.0.1:8080, aeid's --ws)\n"
        "  --ws-path PATH       WebSocket path (default /; use /ws with aeid's HTTP port)\n"
        "  --ws-threads N       client threads sharing the subscribers (default 1)\n"
        "  --no-subscribe       send no subscribe message and count every relayed heartbeat:\n"
        "                       for a plain broadcast server such as bench/peers/ws-relay.mjs\n"
        "  --scenario S         steady (default), slow-subscriber, reconnect-storm or soak:\n"
        "      steady           every subscriber reads everything\n"
        "      slow-subscriber  one of the M subscribers stops reading once subscribed (with a\n"
        "                       4 KiB receive buffer) and reads again after the window (or\n"
        "                       --slow-resume), to see whether the server closed it with 4008;\n"
        "                       latency and drops are those of the other M-1\n"
        "      reconnect-storm  5 s calm, then --duration of storm, then 5 s calm: besides the\n"
        "                       M steady subscribers, new connections open at --storm-rate per\n"
        "                       second, each upgrading, subscribing, waiting for its snapshot\n"
        "                       and closing; the steady ones' latency and the server's RSS are\n"
        "                       reported before, during and after\n"
        "      soak             steady for --duration, sampling RSS every 10 s by default\n"
        "  --storm-rate N       storm connects per second (default 1000)\n"
        "  --slow-resume TIME   the slow subscriber reads again TIME after it stopped (default:\n"
        "                       when the window ends). aeid closes a subscriber that stays\n"
        "                       behind for --slow-consumer-timeout (10 s) with 4008 and drops\n"
        "                       the TCP connection 5 s later: read in between to see the frame\n"
        "  --memory-pid PID     sample the RSS of process PID (VmRSS in /proc/PID/status)\n"
        "  --memory-interval TIME  between RSS samples (default 1 s; 10 s for soak)\n"
        "\n"
        "CPU time:\n"
        "  --cpu-pid PID        also measure the CPU time process PID, its threads and its\n"
        "                       descendants use during the window (up to 4 times: aeid's pid\n"
        "                       and PostgreSQL's postmaster, say). The client's own is always\n"
        "                       measured. Each is given in cores (CPU seconds per second) and\n"
        "                       in microseconds per request: on a machine that client and\n"
        "                       server share, what each costs of it\n"
        "\n"
        "With --rate, sends are scheduled open-loop at a fixed interval per agent and latency is\n"
        "measured from each request's scheduled send time, not from when it was actually sent,\n"
        "so a stalled server is charged for the requests it delayed (no coordinated omission).\n"
        "Scheduled requests that could not be sent before the end are reported as 'unsent'.\n"
        "Closed loop measures from the actual send.\n"
        "\n"
        "Each heartbeat's timestamp is that same origin (RFC 3339 UTC, microseconds). aeid echoes\n"
        "it as agent_ts in the delta's 'changed'; a relay forwards the heartbeat itself. Push\n"
        "latency = time the frame holding the delta was received - that origin, for every delta\n"
        "of a heartbeat sent inside the window. Expected deltas = heartbeats answered 2xx in the\n"
        "window x reading subscribers; drops = expected - delivered (snapshots are counted\n"
        "apart). Memory: start, end and max RSS of the samples inside the window, and their\n"
        "least-squares slope in KiB/min.\n"
        "\n"
        "Percentiles come from a log-linear histogram of every measured request (128 sub-buckets\n"
        "per power of two: under 0.4% relative error). Non-2xx answers count as errors by status;\n"
        "connect failures, timeouts and closed connections are counted too, and agents reconnect.\n"
        "A progress line goes to stderr once a second; the summary goes to stdout.\n"
        "\n"
        "Exit status: 0 when the run completed (even with HTTP errors), 1 when the server could\n"
        "not be reached at all or the subscribers could not subscribe, 2 on a bad command line.\n",
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

static int parse_number(const char *opt, const char *s, double min, bool min_open, double max,
                        double *out)
{
    char *end;
    errno = 0;
    if ((*s < '0' || *s > '9') && *s != '.')
        goto bad;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < min || (min_open && v == min) || v > max)
        goto bad;
    *out = v;
    return 0;
bad:
    fprintf(stderr, "aei bench: %s: expected a number %s %g and at most %g, got '%s'\n", opt,
            min_open ? ">" : ">=", min, max, s);
    return AEI_EINVAL;
}

/* A time span: seconds, or a number with a unit (ms, s, m, h); see units_duration(). */
static int parse_duration(const char *opt, const char *s, double min, bool min_open, double max,
                          double *out)
{
    double v;
    if (units_duration(s, &v) < 0 || v < min || (min_open && v == min) || v > max) {
        fprintf(stderr,
                "aei bench: %s: expected a time %s %gs and at most %gs, as seconds or with a unit "
                "(500ms, 90s, 10m, 1h), got '%s'\n",
                opt, min_open ? ">" : ">=", min, max, s);
        return AEI_EINVAL;
    }
    *out = v;
    return 0;
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

/* The WebSocket and memory options, once all are read: they constrain one another. */
static int check_ws_args(struct opts *o, const char *ws, bool storm_rate_set, bool interval_set)
{
    struct ws_opts *w = &o->ws;
    if (cli_parse_server("aei bench", "--ws", ws, o->ws_host, o->ws_port, w->authority) < 0)
        return AEI_EINVAL;
    if (w->path[0] != '/' || strlen(w->path) > MAX_PATH_LEN || !is_header_safe(w->path, false))
        return usage_error("--ws-path: expected an absolute path such as / or /ws (no spaces or "
                           "control characters), got '%s'",
                           w->path);
    if (w->scenario != WS_STEADY && w->subscribers == 0)
        return usage_error("--scenario needs --subscribers (how many steady WebSocket clients)");
    if (w->scenario == WS_SLOW_SUBSCRIBER && w->subscribers < 2)
        return usage_error("--scenario slow-subscriber needs --subscribers 2 or more: one stops "
                           "reading, the others are measured");
    if (storm_rate_set && w->scenario != WS_RECONNECT_STORM)
        return usage_error("--storm-rate applies only to --scenario reconnect-storm");
    if (interval_set && !o->memory_pid)
        return usage_error("--memory-interval needs --memory-pid (the process to sample)");
    if (!interval_set && w->scenario == WS_SOAK)
        o->memory_interval = 10;
    if (w->threads > w->subscribers && w->subscribers)
        w->threads = w->subscribers;
    w->token = o->token;
    w->timeout = o->timeout;
    w->quiet = o->quiet;
    return 0;
}

/* Reads --actions: a comma-separated list of action names. */
static int parse_actions(const char *list, struct opts *o)
{
    o->n_actions = 0;
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        unsigned k = 0;
        while (k < N_ACTION_NAMES &&
               !(strlen(action_names[k]) == len && strncmp(action_names[k], p, len) == 0))
            k++;
        if (k == N_ACTION_NAMES || o->n_actions == sizeof(o->actions) / sizeof(o->actions[0]))
            return usage_error("--actions: expected up to 8 of pause, resume, execute, assign, "
                               "override separated by commas, got '%s'",
                               list);
        o->actions[o->n_actions++] = k;
        p += len + (p[len] == ',');
    }
    return o->n_actions ? 0 : usage_error("--actions: expected at least one action");
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"server", required_argument, NULL, 's'},
        {"token", required_argument, NULL, 'T'},
        {"agents", required_argument, NULL, 'a'},
        {"rate", required_argument, NULL, 'r'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'w'},
        {"path", required_argument, NULL, 'p'},
        {"json", required_argument, NULL, 'j'},
        {"label", required_argument, NULL, 'l'},
        {"threads", required_argument, NULL, 't'},
        {"timeout", required_argument, NULL, 'o'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"subscribers", required_argument, NULL, 'S'},
        {"ws", required_argument, NULL, 'W'},
        {"ws-path", required_argument, NULL, 'P'},
        {"ws-threads", required_argument, NULL, 'X'},
        {"no-subscribe", no_argument, NULL, 'N'},
        {"scenario", required_argument, NULL, 'C'},
        {"storm-rate", required_argument, NULL, 'R'},
        {"memory-pid", required_argument, NULL, 'M'},
        {"memory-interval", required_argument, NULL, 'I'},
        {"cpu-pid", required_argument, NULL, 'U'},
        {"slow-resume", required_argument, NULL, 'Z'},
        {"traces", required_argument, NULL, 'D'},
        {"execution-size", required_argument, NULL, 'E'},
        {"actions", required_argument, NULL, 'A'},
        {NULL, 0, NULL, 0},
    };
    const char *server = "127.0.0.1:3000";
    const char *ws = "127.0.0.1:8080";
    bool threads_set = false, storm_rate_set = false, interval_set = false, resume_set = false;
    bool path_set = false, size_set = false;
    unsigned pid = 0;
    const char *ws_opt = NULL; /* the last WebSocket option given, for an error without them */

    memset(o, 0, sizeof(*o));
    o->agents = 100;
    o->duration = 10;
    o->warmup = 1;
    o->timeout = 5;
    o->threads = 1;
    o->path = "/api/v0/heartbeats";
    o->ws.threads = 1;
    o->ws.scenario = WS_STEADY;
    o->ws.storm_rate = 1000;
    o->ws.subscribe = true;
    o->ws.path = "/";
    o->memory_interval = 1;
    o->execution_size = 1000;
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
            r = parse_number("--rate", optarg, 0, false, 1e7, &o->rate);
            break;
        case 'd':
            r = parse_duration("--duration", optarg, 0, true, 7 * 86400, &o->duration);
            break;
        case 'w':
            r = parse_duration("--warmup", optarg, 0, false, 3600, &o->warmup);
            break;
        case 'o':
            r = parse_duration("--timeout", optarg, 0, true, 600, &o->timeout);
            break;
        case 't':
            r = parse_uint("--threads", optarg, 1, MAX_THREADS, &o->threads);
            threads_set = true;
            break;
        case 'p':
            o->path = optarg;
            path_set = true;
            break;
        case 'D':
            r = parse_uint("--traces", optarg, 1, 1000, &o->traces);
            break;
        case 'E':
            r = parse_uint("--execution-size", optarg, 1, 1000000000u, &o->execution_size);
            size_set = true;
            break;
        case 'A':
            r = parse_actions(optarg, o);
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
        case 'S':
            r = parse_uint("--subscribers", optarg, 0, MAX_SUBSCRIBERS, &o->ws.subscribers);
            break;
        case 'W':
            ws = optarg;
            ws_opt = "--ws";
            break;
        case 'P':
            o->ws.path = optarg;
            ws_opt = "--ws-path";
            break;
        case 'X':
            r = parse_uint("--ws-threads", optarg, 1, MAX_THREADS, &o->ws.threads);
            ws_opt = "--ws-threads";
            break;
        case 'N':
            o->ws.subscribe = false;
            ws_opt = "--no-subscribe";
            break;
        case 'C':
            if (strcmp(optarg, "steady") == 0)
                o->ws.scenario = WS_STEADY;
            else if (strcmp(optarg, "slow-subscriber") == 0)
                o->ws.scenario = WS_SLOW_SUBSCRIBER;
            else if (strcmp(optarg, "reconnect-storm") == 0)
                o->ws.scenario = WS_RECONNECT_STORM;
            else if (strcmp(optarg, "soak") == 0)
                o->ws.scenario = WS_SOAK;
            else
                r = usage_error("--scenario: expected steady, slow-subscriber, reconnect-storm "
                                "or soak, got '%s'",
                                optarg);
            break;
        case 'R':
            r = parse_number("--storm-rate", optarg, 0, true, 1e6, &o->ws.storm_rate);
            storm_rate_set = true;
            break;
        case 'M':
            r = parse_uint("--memory-pid", optarg, 1, 1u << 30, &pid);
            o->memory_pid = (int)pid;
            break;
        case 'U':
            if (o->n_cpu_pids == MAX_CPU_PIDS)
                return usage_error("--cpu-pid: at most %d processes", MAX_CPU_PIDS);
            r = parse_uint("--cpu-pid", optarg, 1, 1u << 30, &pid);
            o->cpu_pids[o->n_cpu_pids++] = (int)pid;
            break;
        case 'I':
            r = parse_duration("--memory-interval", optarg, 0.05, false, 3600, &o->memory_interval);
            interval_set = true;
            break;
        case 'Z':
            r = parse_duration("--slow-resume", optarg, 0, true, 7 * 86400, &o->ws.slow_resume_s);
            resume_set = true;
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
    if (size_set && !o->traces)
        return usage_error("--execution-size applies only with --traces");
    if (o->n_actions && (o->traces || path_set))
        return usage_error("--actions goes with neither --traces nor --path");
    if (o->traces && !path_set)
        o->path = "/api/v0/traces";
    if (cli_parse_server("aei bench", "--server", server, o->host, o->port, o->authority) < 0)
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
    if (resume_set && o->ws.scenario != WS_SLOW_SUBSCRIBER)
        return usage_error("--slow-resume applies only to --scenario slow-subscriber");
    if (ws_opt && o->ws.subscribers == 0)
        return usage_error("%s needs --subscribers (how many WebSocket clients)", ws_opt);
    return check_ws_args(o, ws, storm_rate_set, interval_set);
}

/* ---- request generation ---- */

static double rng_unit(uint64_t *s)
{
    return (double)(bench_rng_next(s) >> 11) * 0x1.0p-53;
}

static const char *pick_status(uint64_t *rng)
{
    unsigned r = (unsigned)(bench_rng_next(rng) % 100);
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

/*
 * Builds the next heartbeat. Its timestamp is `origin` (the latency origin, CLOCK_MONOTONIC) on
 * the wall clock, with microseconds: subscribers get it back in the delta and measure from it.
 */
/* Builds the next batch of decisions (--traces) after the fixed headers. */
static int build_traces(struct worker *w, struct conn *c)
{
    size_t body_at = w->prefix_len + 64, cap = (size_t)w->o->traces * TRACE_GEN_DECISION_MAX + 2;
    size_t n = trace_gen_batch(&c->gen, w->o->traces, c->wbuf + body_at, cap);
    if (n == 0)
        return AEI_EINVAL;
    memcpy(c->wbuf, w->prefix, w->prefix_len);
    int h = snprintf(c->wbuf + w->prefix_len, 64, "Content-Length: %zu\r\n\r\n", n);
    memmove(c->wbuf + w->prefix_len + h, c->wbuf + body_at, n);
    c->wlen = w->prefix_len + (size_t)h + n;
    c->woff = 0;
    return 0;
}

/* Builds the agent's next action (--actions): the request line names the agent and the action,
 * the other headers are the fixed ones. */
static int build_action(struct worker *w, struct conn *c)
{
    const struct opts *o = w->o;
    unsigned k = o->actions[c->seq % o->n_actions];
    const char *body = action_bodies[k];
    const char *headers = strstr(w->prefix, "\r\n"); /* after the fixed request line */
    size_t cap = w->prefix_len + 64 + BODY_MAX;      /* as allocated */
    int n = snprintf(c->wbuf, cap,
                     "POST /api/v0/agents/bench-%06u/%s HTTP/1.1%sContent-Length: %zu\r\n\r\n%s",
                     c->id, action_names[k], headers, strlen(body), body);
    if (n < 0 || (size_t)n >= cap)
        return AEI_EINVAL;
    c->wlen = (size_t)n;
    c->woff = 0;
    return 0;
}

static int build_request(struct worker *w, struct conn *c, uint64_t origin)
{
    if (w->o->traces)
        return build_traces(w, c);
    if (w->o->n_actions)
        return build_action(w, c);
    char body[BODY_MAX];
    char parent[32];
    char ts[AEI_TIME_LEN];
    aei_time_format(((int64_t)origin + w->run->wall_off_ns) / 1000, ts);

    /* Agents come in teams of ten: the first is the lead, the others report to it. */
    if (c->id % 10)
        snprintf(parent, sizeof(parent), "\"bench-%06u\"", c->id - c->id % 10);
    else
        snprintf(parent, sizeof(parent), "null");
    c->cost_usd += 0.0001 + rng_unit(&c->rng) * 0.002;
    int n = snprintf(body, sizeof(body),
                     "{\"agent_id\":\"bench-%06u\",\"status\":\"%s\",\"metrics\":{\"cpu_pct\":%.1f,"
                     "\"mem_pct\":%.1f,\"tokens_per_min\":%u,\"cost_usd\":%.4f,\"confidence\":%u},"
                     "\"parent_agent_id\":%s,\"timestamp\":\"%s\",\"schema_version\":\"0\"}",
                     c->id, pick_status(&c->rng), rng_unit(&c->rng) * 100.0,
                     20.0 + rng_unit(&c->rng) * 70.0, (unsigned)(bench_rng_next(&c->rng) % 5000),
                     c->cost_usd, (unsigned)(50 + bench_rng_next(&c->rng) % 51), parent, ts);
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
    int r = bench_send(c->fd, c->wbuf, &c->woff, c->wlen);
    if (r < 0) {
        /* A keep-alive connection the server already closed shows up here. */
        conn_fail(w, c, errno == EPIPE || errno == ECONNRESET ? ERR_CLOSED : ERR_IO, now);
        return;
    }
    set_out(w, c, r == 0);
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
    if (build_request(w, c, origin) < 0) {
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
        int rc = bench_rbuf_reserve(&c->rbuf, &c->rcap, c->rlen, 512, 0, RBUF_INIT, RBUF_MAX);
        if (rc < 0) {
            conn_fail(w, c, rc == AEI_ENOMEM ? ERR_IO : ERR_PROTOCOL, now);
            return;
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
        int p = resp_parse((const char *)c->rbuf, c->rlen, &r);
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
        if (bench_connect_failed(c->fd)) {
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
    uint64_t now = bench_now_ns();
    uint64_t next_scan = now + SCAN_NS;

    for (unsigned i = 0; i < w->nconns; i++)
        conn_open(w, &w->conns[i], now);

    for (;;) {
        now = bench_now_ns();
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
        now = bench_now_ns();
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
        now = bench_now_ns();
        if (!busy || now >= drain_end || atomic_load(&interrupts) > 1)
            break;
        int n = wait_events(w, evs, SCAN_NS);
        now = bench_now_ns();
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

/* Resolves HOST:PORT given to option `opt` (--server or --ws). */
static int resolve(const char *opt, const char *host, const char *port, struct target *t)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int r = getaddrinfo(host, port, &hints, &res);
    if (r != 0 || !res) {
        fprintf(stderr, "aei bench: cannot resolve '%s': %s; check %s\n", host, gai_strerror(r),
                opt);
        return AEI_EUNAVAILABLE;
    }
    memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
    t->addrlen = res->ai_addrlen;
    t->family = res->ai_family;
    freeaddrinfo(res);
    return 0;
}

/* One blocking connect up front, so that a server that is not there fails fast and clearly. */
static int probe(const char *opt, const char *authority, const struct target *t)
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
    fprintf(stderr, "aei bench: cannot connect to %s: %s; start the server or pass %s\n", authority,
            strerror(e), opt);
    return AEI_EUNAVAILABLE;
}

/* Room for the agents' and the subscribers' (`conns`) connections. */
static int raise_fd_limit(unsigned agents, unsigned conns)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)agents + conns + 32;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need)
        return 0;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
        fprintf(stderr,
                "aei bench: %u agents and %u WebSocket connections need %llu open files but "
                "the limit is %llu; use fewer --agents or --subscribers, or raise the limit "
                "(ulimit -n)\n",
                agents, conns, (unsigned long long)need, (unsigned long long)rl.rlim_max);
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

/* The server's memory, sampled by the main thread while the agents run. */
struct memory {
    struct rss_series series; /* t_s from the start of the measurement window */
    uint64_t idle_kib;        /* before any subscriber or agent connected */
    uint64_t next_ns;
    uint64_t last_kib;
    bool have_idle;
    bool gone; /* the process disappeared or became unreadable */
};

static void sample_memory(const struct opts *o, const struct run *run, struct memory *m,
                          uint64_t now)
{
    uint64_t kib;
    if (m->gone)
        return;
    if (rss_read(o->memory_pid, &kib) < 0) {
        m->gone = true;
        if (!o->quiet)
            fprintf(stderr, "\naei bench: process %d is gone; no more memory samples\n",
                    o->memory_pid);
        return;
    }
    m->last_kib = kib;
    if (rss_add(&m->series, ((double)now - (double)run->warm_end) / 1e9, kib) < 0)
        m->gone = true;
}

/* The CPU time of the client and of the --cpu-pid processes, read when the window opens and
 * when it closes. */
struct cpu {
    unsigned taken; /* readings so far: 0, 1 or 2 */
    uint64_t ns[2];
    double client_s[2];
    double proc_s[MAX_CPU_PIDS][2];
    unsigned nprocs[MAX_CPU_PIDS];
    char name[MAX_CPU_PIDS][32];
    bool gone[MAX_CPU_PIDS];
};

static void cpu_init(const struct opts *o, struct cpu *c)
{
    memset(c, 0, sizeof(*c));
    for (unsigned i = 0; i < o->n_cpu_pids; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/comm", o->cpu_pids[i]);
        int len = proc_read_file(path, c->name[i], sizeof(c->name[i]));
        while (len > 0 && c->name[i][len - 1] == '\n')
            c->name[i][--len] = '\0';
        if (len <= 0)
            snprintf(c->name[i], sizeof(c->name[i]), "?");
    }
}

static void sample_cpu(const struct opts *o, struct cpu *c, uint64_t now)
{
    unsigned k = c->taken++;
    c->ns[k] = now;
    c->client_s[k] = proc_own_cpu_s();
    for (unsigned i = 0; i < o->n_cpu_pids; i++)
        if (!c->gone[i] && proc_cpu_tree(o->cpu_pids[i], &c->proc_s[i][k], &c->nprocs[i]) < 0)
            c->gone[i] = true;
}

/* One process's share: CPU seconds, cores and microseconds a request; false without both
 * readings. `i` is a --cpu-pid index, or -1 for the client. */
static bool cpu_share(const struct cpu *c, int i, uint64_t requests, double secs, double *cpu_s,
                      double *cores, double *us_per_req)
{
    if (c->taken < 2 || c->ns[1] <= c->ns[0] || (i >= 0 && c->gone[i]))
        return false;
    const double *v = i < 0 ? c->client_s : c->proc_s[i];
    double span = (double)(c->ns[1] - c->ns[0]) / 1e9;
    *cpu_s = v[1] - v[0];
    *cores = *cpu_s / span;
    /* The readings bracket the window to within a few ms: scale by the window's rate. */
    *us_per_req = requests && secs > 0 ? *cores * 1e6 / ((double)requests / secs) : 0;
    return true;
}

static void print_cpu(const struct opts *o, const struct cpu *c, uint64_t requests, double secs)
{
    double s, cores, us;
    if (!cpu_share(c, -1, requests, secs, &s, &cores, &us)) {
        puts("cpu         not measured: the run ended before its window did");
        return;
    }
    printf("cpu         client %.2f cores, %.1f us/request", cores, us);
    for (unsigned i = 0; i < o->n_cpu_pids; i++) {
        if (!cpu_share(c, (int)i, requests, secs, &s, &cores, &us))
            printf("; pid %d (%s) gone during the run", o->cpu_pids[i], c->name[i]);
        else
            printf("; pid %d (%s, %u process%s) %.2f cores, %.1f us/request", o->cpu_pids[i],
                   c->name[i], c->nprocs[i], c->nprocs[i] == 1 ? "" : "es", cores, us);
    }
    putchar('\n');
}

static void json_cpu(FILE *f, const struct opts *o, const struct cpu *c, uint64_t requests,
                     double secs)
{
    double s, cores, us;
    fputs("\"cpu\": {\"client\": ", f);
    if (cpu_share(c, -1, requests, secs, &s, &cores, &us))
        fprintf(f, "{\"cpu_s\": %.3f, \"cores\": %.3f, \"us_per_request\": %.2f}", s, cores, us);
    else
        fputs("null", f);
    fputs(", \"processes\": [", f);
    for (unsigned i = 0; i < o->n_cpu_pids; i++) {
        fprintf(f, "%s{\"pid\": %d, \"name\": ", i ? ", " : "", o->cpu_pids[i]);
        bench_json_string(f, c->name[i]);
        if (cpu_share(c, (int)i, requests, secs, &s, &cores, &us))
            fprintf(f,
                    ", \"processes\": %u, \"cpu_s\": %.3f, \"cores\": %.3f, "
                    "\"us_per_request\": %.2f}",
                    c->nprocs[i], s, cores, us);
        else
            fputs(", \"gone\": true}", f);
    }
    fputs("]}", f);
}

/* What the previous progress line showed, to print rates since then. */
struct live {
    uint64_t resp, deltas, ns;
};

static void progress(const struct run *run, struct worker *ws, unsigned n, struct totals *t,
                     struct live *prev, struct ws_bench *wsb, const struct memory *mem, bool tty)
{
    uint64_t now = bench_now_ns();
    char line[320];
    size_t len = 0;
    double elapsed = (double)(now - run->t0) / 1e9;
    /* Rates need some of the window behind them. */
    if (now < run->warm_end + NS_PER_S / 10) {
        len = (size_t)snprintf(line, sizeof(line), "aei bench: %5.1fs  warming up", elapsed);
    } else {
        sum_workers(ws, n, t);
        double dt = (double)(now - prev->ns) / 1e9;
        double rps = dt > 0 ? (double)(t->responses - prev->resp) / dt : 0;
        prev->resp = t->responses;
        len = (size_t)snprintf(
            line, sizeof(line), "aei bench: %5.1fs  %9.0f req/s  p99 %8.3f ms  errors %llu",
            elapsed, rps, ms(hist_percentile(t->lat, 99)), (unsigned long long)t->err_total);
        if (wsb) {
            uint64_t d;
            double p99;
            ws_bench_progress(wsb, &d, &p99);
            double dps = dt > 0 ? (double)(d - prev->deltas) / dt : 0;
            prev->deltas = d;
            len += (size_t)snprintf(line + len, sizeof(line) - len,
                                    "  |  %9.0f deltas/s  push p99 %8.3f ms", dps, p99);
        }
        prev->ns = now;
    }
    if (mem && mem->series.n && len < sizeof(line))
        snprintf(line + len, sizeof(line) - len, "  |  RSS %.1f MiB", (double)mem->last_kib / 1024);
    if (tty)
        fprintf(stderr, "\r%s\033[K", line);
    else
        fprintf(stderr, "%s\n", line);
}

static void json_memory(FILE *f, const struct opts *o, const struct memory *m, double secs)
{
    struct rss_summary r;
    rss_summarize(&m->series, 0, secs + 1e-3, &r);
    fprintf(f, "\"memory\": {\"pid\": %d, \"interval_s\": %.3f, ", o->memory_pid,
            o->memory_interval);
    if (m->have_idle)
        fprintf(f, "\"idle_kib\": %llu, ", (unsigned long long)m->idle_kib);
    else
        fputs("\"idle_kib\": null, ", f);
    if (r.n)
        fprintf(f,
                "\"start_kib\": %llu, \"end_kib\": %llu, \"min_kib\": %llu, \"max_kib\": %llu, "
                "\"slope_kib_per_min\": %.3f, \"slope_second_half_kib_per_min\": %.3f, ",
                (unsigned long long)r.start, (unsigned long long)r.end, (unsigned long long)r.min,
                (unsigned long long)r.max, r.slope_kib_per_min, r.slope_late_kib_per_min);
    fprintf(f, "\"process_gone\": %s,\n    \"samples\": [", m->gone ? "true" : "false");
    for (size_t i = 0; i < m->series.n; i++)
        fprintf(f, "%s[%.3f, %llu]", i ? (i % 8 ? ", " : ",\n      ") : "", m->series.v[i].t_s,
                (unsigned long long)m->series.v[i].kib);
    fputs("]}", f);
}

/* Writes the results to `f` and closes it unless it is stdout. */
static int write_json(FILE *f, const struct opts *o, const struct totals *t, double secs,
                      time_t started, const struct ws_bench *wsb, const struct memory *mem,
                      const struct cpu *cpu)
{
    char when[32];
    struct tm tm;
    gmtime_r(&started, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    const struct hist_snap *l = t->lat;

    fputs("{\n  \"label\": ", f);
    bench_json_string(f, o->label ? o->label : "");
    fprintf(f, ",\n  \"tool\": \"aei bench %s\",\n  \"started_at\": \"%s\",\n", AEI_VERSION, when);
    fputs("  \"server\": ", f);
    bench_json_string(f, o->authority);
    fputs(",\n  \"path\": ", f);
    bench_json_string(f, o->path);
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
    fputs("}}", f);
    if (o->traces)
        fprintf(f,
                ",\n  \"traces\": {\"batch\": %u, \"execution_size\": %u, \"decisions_ok\": %llu, "
                "\"decisions_per_s\": %.1f}",
                o->traces, o->execution_size, (unsigned long long)t->ok * o->traces,
                secs > 0 ? (double)t->ok * o->traces / secs : 0.0);
    if (wsb) {
        fputs(",\n  ", f);
        ws_bench_json(f, wsb, secs, o->memory_pid ? &mem->series : NULL);
    }
    if (o->memory_pid) {
        fputs(",\n  ", f);
        json_memory(f, o, mem, secs);
    }
    fputs(",\n  ", f);
    json_cpu(f, o, cpu, t->responses, secs);
    fputs("\n}\n", f);
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
    if (o->n_actions)
        printf("aei bench: %u agents, %s, POST http://%s/api/v0/agents/bench-NNNNNN/<action>\n",
               o->agents, mode, o->authority);
    else
        printf("aei bench: %u agents, %s, POST http://%s%s\n", o->agents, mode, o->authority,
               o->path);
    printf("requests    %llu (%llu 2xx)\n", (unsigned long long)t->responses,
           (unsigned long long)t->ok);
    printf("duration    %.2f s (after %.2f s warmup)\n", secs, o->warmup);
    printf("throughput  %.1f req/s\n", secs > 0 ? (double)t->responses / secs : 0.0);
    if (o->traces)
        printf("decisions   %.1f/s stored or acknowledged (%u per request, 2xx only)\n",
               secs > 0 ? (double)t->ok * o->traces / secs : 0.0, o->traces);
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

static void print_memory(const struct opts *o, const struct memory *m, double secs)
{
    struct rss_summary r;
    rss_summarize(&m->series, 0, secs + 1e-3, &r);
    if (!r.n) {
        printf("memory      no RSS sample of process %d inside the window\n", o->memory_pid);
        return;
    }
    printf("memory      RSS of pid %d: start %.1f MiB  end %.1f MiB  max %.1f MiB  slope %+.1f "
           "KiB/min (second half %+.1f; %zu samples, every %.3g s)",
           o->memory_pid, (double)r.start / 1024, (double)r.end / 1024, (double)r.max / 1024,
           r.slope_kib_per_min, r.slope_late_kib_per_min, r.n, o->memory_interval);
    if (m->have_idle)
        printf("; %.1f MiB before connecting", (double)m->idle_kib / 1024);
    putchar('\n');
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
            c->wbuf =
                malloc(w->prefix_len + 64 +
                       (o->traces ? (size_t)o->traces * TRACE_GEN_DECISION_MAX + 2 : BODY_MAX));
            c->gen = (struct trace_gen){.agent = c->id, .size = o->execution_size, .rng = c->rng};
            snprintf(c->gen.run, sizeof(c->gen.run), "%016llx", (unsigned long long)run->nonce);
            if (!c->wbuf)
                return AEI_ENOMEM;
        }
    }
    return 0;
}

/* Seconds as nanoseconds, rounded to whole microseconds. */
static uint64_t us_to_ns(double secs)
{
    return (uint64_t)llround(secs * 1e6) * 1000;
}

int bench_main(int argc, char **argv)
{
    struct opts o;
    struct target t, wt;
    int r = parse_args(argc, argv, &o);
    if (r == 1)
        return CLI_EXIT_OK;
    if (r < 0)
        return CLI_EXIT_USAGE;
    bool storm = o.ws.scenario == WS_RECONNECT_STORM;
    if (raise_fd_limit(o.agents, o.ws.subscribers + (storm ? STORM_FDS : 0)) < 0)
        return CLI_EXIT_USAGE;
    if (o.memory_pid) {
        uint64_t kib;
        if (rss_read(o.memory_pid, &kib) < 0) {
            fprintf(stderr,
                    "aei bench: --memory-pid %d: cannot read /proc/%d/status (no such process, "
                    "or not ours to read)\n",
                    o.memory_pid, o.memory_pid);
            return CLI_EXIT_USAGE;
        }
    }
    for (unsigned i = 0; i < o.n_cpu_pids; i++) {
        double secs;
        if (proc_cpu_tree(o.cpu_pids[i], &secs, NULL) < 0) {
            fprintf(stderr,
                    "aei bench: --cpu-pid %d: cannot read /proc/%d/stat (no such process, or not "
                    "ours to read)\n",
                    o.cpu_pids[i], o.cpu_pids[i]);
            return CLI_EXIT_USAGE;
        }
    }
    /* Open the output first: a typo in --json should not cost a whole run. */
    FILE *json = NULL;
    bool json_stdout = o.json && strcmp(o.json, "-") == 0;
    if (json_stdout) {
        /* Standard output carries the JSON alone, so that it can be piped; the summary that
         * would go there goes to stderr instead. */
        int fd = dup(STDOUT_FILENO);
        if (fd >= 0 && !(json = fdopen(fd, "w")))
            close(fd);
        if (json)
            dup2(STDERR_FILENO, STDOUT_FILENO);
    } else if (o.json) {
        json = fopen(o.json, "w");
    }
    if (o.json) {
        if (!json) {
            fprintf(stderr, "aei bench: cannot write %s: %s; check --json\n", o.json,
                    strerror(errno));
            return CLI_EXIT_USAGE;
        }
    }
    if (resolve("--server", o.host, o.port, &t) < 0 || probe("--server", o.authority, &t) < 0 ||
        (o.ws.subscribers && (resolve("--ws", o.ws_host, o.ws_port, &wt) < 0 ||
                              probe("--ws", o.ws.authority, &wt) < 0))) {
        if (json) {
            fclose(json);
            if (!json_stdout)
                unlink(o.json);
        }
        return CLI_EXIT_FAIL;
    }
    if (o.ws.subscribers) {
        o.ws.addr = wt.addr;
        o.ws.addrlen = wt.addrlen;
        o.ws.family = wt.family;
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
    {
        struct timespec rt;
        clock_gettime(CLOCK_REALTIME, &rt);
        uint64_t mono = bench_now_ns();
        run.wall_off_ns = (int64_t)rt.tv_sec * (int64_t)NS_PER_S + rt.tv_nsec - (int64_t)mono;
        /* Whole microseconds, like the window's bounds below and the timestamps: then a
         * heartbeat's timestamp tells exactly on which side of a bound it was sent. */
        run.wall_off_ns -= run.wall_off_ns % 1000;
        run.nonce =
            ((uint64_t)rt.tv_sec * NS_PER_S + (uint64_t)rt.tv_nsec) ^ ((uint64_t)getpid() << 40);
    }

    int status = CLI_EXIT_FAIL;
    struct memory mem = {0};
    struct cpu cpu;
    cpu_init(&o, &cpu);
    struct ws_bench *wsb = NULL;
    struct hist_snap *lat = malloc(sizeof(*lat));
    struct worker *ws = NULL;
    unsigned started_threads = 0;
    if (!lat)
        goto out;
    if (o.memory_pid && rss_read(o.memory_pid, &mem.idle_kib) == 0)
        mem.have_idle = true;

    /* Subscribers first: every heartbeat of the window must find them subscribed. */
    if (o.ws.subscribers) {
        wsb = ws_bench_start(&o.ws, run.wall_off_ns);
        if (!wsb)
            goto out;
        if (ws_bench_wait_ready(wsb, WS_READY_S > o.timeout ? WS_READY_S : o.timeout) < 0)
            goto out;
    }

    double measured = o.duration + (storm ? 2 * WS_STORM_CALM_S : 0);
    run.t0 = (bench_now_ns() / 1000 + 1) * 1000;
    run.warm_end = run.t0 + us_to_ns(o.warmup);
    run.end = run.warm_end + us_to_ns(measured);
    time_t started = time(NULL);
    if (wsb) {
        struct ws_window win = {.warm_end = run.warm_end, .end = run.end};
        if (storm) {
            win.storm_start = run.warm_end + us_to_ns(WS_STORM_CALM_S);
            win.storm_end = win.storm_start + us_to_ns(o.duration);
        }
        ws_bench_go(wsb, &win);
    }

    ws = calloc(o.threads, sizeof(*ws));
    if (!ws || setup_workers(&o, &t, &run, ws) < 0) {
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
    for (; started_threads < o.threads; started_threads++)
        if (pthread_create(&ws[started_threads].tid, NULL, worker_main, &ws[started_threads]))
            break;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    bool all_started = started_threads == o.threads;
    if (!all_started) {
        fputs("aei bench: cannot start client threads; use fewer --threads\n", stderr);
        atomic_store(&run.stop_ns, bench_now_ns());
    }

    bool tty = isatty(STDERR_FILENO);
    bool shown = false, mem_final = false;
    struct live prev = {.ns = run.warm_end};
    uint64_t next = run.t0 + NS_PER_S;
    /* Long runs that log to a file get a line every 10 s, not 3,600 an hour. */
    uint64_t every = !tty && measured >= 120 ? 10 * NS_PER_S : NS_PER_S;
    uint64_t mem_every = (uint64_t)(o.memory_interval * 1e9);
    mem.next_ns = run.t0;
    while (atomic_load(&run.finished) < started_threads) {
        struct timespec ts = {0, 50000000};
        uint64_t now = bench_now_ns();
        uint64_t wake = cpu.taken == 0 ? run.warm_end : run.end;
        if (o.memory_pid && !mem_final && mem.next_ns < wake)
            wake = mem.next_ns;
        if (wake > now && wake - now < (uint64_t)ts.tv_nsec)
            ts.tv_nsec = (long)(wake - now);
        nanosleep(&ts, NULL);
        if (atomic_load(&interrupts) && !atomic_load(&run.stop_ns))
            atomic_store(&run.stop_ns, bench_now_ns());
        now = bench_now_ns();
        /* CPU time when the window opens and when it closes (or the run is stopped). */
        if (cpu.taken == 0 && now >= run.warm_end && !atomic_load(&run.stop_ns))
            sample_cpu(&o, &cpu, now);
        else if (cpu.taken == 1 && (now >= run.end || atomic_load(&run.stop_ns)))
            sample_cpu(&o, &cpu, now);
        /* RSS every interval inside the run, and once more at its very end. */
        if (o.memory_pid && !mem_final && (now >= mem.next_ns || now >= run.end)) {
            sample_memory(&o, &run, &mem, now);
            mem_final = now >= run.end || atomic_load(&run.stop_ns);
            while (mem.next_ns <= now)
                mem.next_ns += mem_every;
        }
        if (now >= next && now < run.end && !atomic_load(&run.stop_ns)) {
            if (!o.quiet) {
                progress(&run, ws, started_threads, &tot, &prev, wsb, o.memory_pid ? &mem : NULL,
                         tty);
                shown = true;
            }
            next += every * ((now - next) / every + 1);
        }
    }
    if (cpu.taken == 1)
        sample_cpu(&o, &cpu, bench_now_ns());
    for (unsigned i = 0; i < started_threads; i++)
        pthread_join(ws[i].tid, NULL);
    started_threads = 0;
    if (shown && tty)
        fputc('\n', stderr);
    if (!all_started)
        goto out;

    uint64_t stop = atomic_load(&run.stop_ns);
    uint64_t window_end = stop && stop < run.end ? stop : run.end;
    double secs = window_end > run.warm_end ? (double)(window_end - run.warm_end) / 1e9 : 0;
    sum_workers(ws, o.threads, &tot);
    if (wsb)
        ws_bench_finish(wsb, tot.ok, atomic_load(&interrupts) ? 1 : WS_DRAIN_S);
    if (!tot.connects) {
        fprintf(stderr, "aei bench: no agent could connect to %s; is the server up?\n",
                o.authority);
        goto out;
    }
    print_summary(&o, &tot, secs);
    if (wsb)
        ws_bench_print(wsb, secs, o.memory_pid ? &mem.series : NULL);
    if (o.memory_pid)
        print_memory(&o, &mem, secs);
    print_cpu(&o, &cpu, tot.responses, secs);
    fflush(stdout);
    if (json) {
        FILE *f = json;
        json = NULL;
        if (write_json(f, &o, &tot, secs, started, wsb, &mem, &cpu) < 0)
            goto out;
    }
    status = CLI_EXIT_OK;
out:
    /* Still open here means no results were written: leave no empty file behind. */
    if (json) {
        fclose(json);
        if (!json_stdout)
            unlink(o.json);
    }
    if (ws)
        free_workers(ws, o.threads);
    ws_bench_free(wsb);
    rss_series_free(&mem.series);
    free(lat);
    return status;
}
