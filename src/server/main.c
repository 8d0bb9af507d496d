/* main.c - aeid: options, environment and signals around the server */
#include "aei/error.h"
#include "server/server.h"
#include "server/store.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <netdb.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define EXIT_USAGE 2

static const char usage[] =
    "Usage: aeid [options]\n"
    "\n"
    "AEI's server: takes agents' heartbeats over HTTP, stores them, serves the API and pushes\n"
    "every change to WebSocket subscribers live.\n"
    "\n"
    "Options (each may also come from the environment variable shown):\n"
    "  --http HOST:PORT   HTTP address of the API             [AEI_HTTP, default 127.0.0.1:3000]\n"
    "  --ws HOST:PORT     WebSocket hub address               [AEI_WS, default 127.0.0.1:8080]\n"
    "                     HOST is an address (0.0.0.0: all of them; [::1] for IPv6) or a\n"
    "                     name, resolved once at start to its first IPv4 address\n"
    "  --db URL           store: sqlite:PATH, postgres://...  [AEI_DATABASE_URL, default "
    "sqlite:aei.db]\n"
    "  --max-body BYTES   largest request body accepted       [AEI_MAX_BODY, default 65536]\n"
    "  --request-timeout SECONDS  time a client has to send a request's body\n"
    "                     [AEI_REQUEST_TIMEOUT, default 30]\n"
    "  --web-root DIR     the built dashboard, served at / on the HTTP address\n"
    "                     [AEI_WEB_ROOT, default web/dist]\n"
    "  --event-loop poll|epoll  how the loop waits for its connections: poll is a little\n"
    "                     faster with up to a few hundred agents connected and with many\n"
    "                     subscribers; epoll costs far less with thousands of agents that\n"
    "                     each send now and then        [AEI_EVENT_LOOP, default poll]\n"
    "\n"
    "Live hub (WebSocket on the --ws address at / and on the HTTP address at /ws):\n"
    "  --ws-origins LIST  browser origins allowed besides the page's own, comma-separated\n"
    "                     (http://host:port), or * for any    [AEI_WS_ORIGINS]\n"
    "  --ws-client-buffer BYTES  how far a subscriber may fall behind before it gets a\n"
    "                     snapshot instead of the backlog     [AEI_WS_CLIENT_BUFFER, default "
    "1048576]\n"
    "  --slow-consumer-timeout SECONDS  a subscriber behind for this long is closed (4008)\n"
    "                     [AEI_SLOW_CONSUMER_TIMEOUT, default 10]\n"
    "  --stale-after SECONDS  no heartbeat this long: agent is stale [AEI_STALE_AFTER, default "
    "30]\n"
    "  --dead-after SECONDS   no heartbeat this long: agent is dead  [AEI_DEAD_AFTER, default "
    "120]\n"
    "  --price-per-1k-tokens USD  prices the tokens of agents that report no cost\n"
    "                     [AEI_PRICE_PER_1K_TOKENS, default 0.002]\n"
    "\n"
    "Retention (in small steps between heartbeat writes; see README):\n"
    "  --heartbeat-retention-days DAYS  raw heartbeats kept for this many whole UTC days\n"
    "                     before today; daily rollups stay     [AEI_HEARTBEAT_RETENTION_DAYS, "
    "default 7]\n"
    "  --trace-retention-days DAYS  executions and their decisions kept this long after their\n"
    "                     last decision (or end)               [AEI_TRACE_RETENTION_DAYS, "
    "default 30]\n"
    "  --retention-interval SECONDS  time between retention runs [AEI_RETENTION_INTERVAL, "
    "default 600]\n"
    "  --retention-batch ROWS  the most rows one retention step (one transaction) handles\n"
    "                     [AEI_RETENTION_BATCH, default 250 on SQLite, 1000 on PostgreSQL]\n"
    "  For tests only: AEI_TEST_RETENTION_CLOCK_OFFSET=SECONDS shifts the clock retention works\n"
    "  by (not the time stamped on heartbeats), to test retention without waiting for days.\n"
    "\n"
    "  --audit-key FILE   the audit log's 32-byte hash key, created (mode 0600) if missing\n"
    "                     while the store has no audit rows\n"
    "                     [AEI_AUDIT_KEY_FILE, default PATH.audit-key next to a SQLite file,\n"
    "                     else $AEI_STATE_DIR or ~/.local/state/aei/audit.key]\n"
    "  --audit-checkpoint FILE  append the audit chains' heads to FILE, created if missing\n"
    "                     (its directory must exist)          [AEI_AUDIT_CHECKPOINT]\n"
    "  --audit-checkpoint-interval SECONDS  how often they are appended when they moved\n"
    "                     [AEI_AUDIT_CHECKPOINT_INTERVAL, default 10]\n"
    "  -h, --help         print this help and exit\n"
    "  -V, --version      print the version and exit\n"
    "\n"
    "The bootstrap admin token is read from AEI_TOKEN (never from the command line):\n"
    "  export AEI_TOKEN=\"$(head -c 24 /dev/urandom | base64)\"\n"
    "Every API call but GET /healthz then needs the header 'Authorization: Bearer $AEI_TOKEN'.\n"
    "\n"
    "SIGTERM or SIGINT stops aeid after it has committed and answered what it accepted.\n";

/* Parses "HOST:PORT" (IPv6 as "[::1]:3000"). */
static bool parse_address(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon;
    size_t n;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return false;
        n = (size_t)(close - s - 1);
        memcpy(host, s + 1, n < hostlen ? n : 0);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return false;
        n = (size_t)(colon - s);
        memcpy(host, s, n < hostlen ? n : 0);
    }
    if (n == 0 || n >= hostlen)
        return false;
    host[n] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end || p < 1 || p > 65535)
        return false;
    *port = (int)p;
    return true;
}

/* Refuses a bad value, named as the user gave it: by the option, or by the environment variable
 * it came from (env_or() hands out getenv()'s own pointer). */
/* Whether a --ws-origins value is "*" or origins as browsers send them, comma-separated:
 * http:// or https://, then a host and maybe a port, with no path and no spaces. */
static bool valid_origins(const char *list)
{
    if (strcmp(list, "*") == 0)
        return true;
    for (const char *p = list;; p++) {
        size_t scheme = strncmp(p, "http://", 7) == 0 ? 7 : strncmp(p, "https://", 8) == 0 ? 8 : 0;
        size_t host = scheme ? strcspn(p + scheme, ",/ \t") : 0;
        if (!host)
            return false;
        p += scheme + host;
        if (*p == '\0')
            return true;
        if (*p != ',')
            return false;
    }
}

/* Resolves a host name in place to the numeric address aeid listens on (libwebsockets takes only
 * addresses and interface names): its first IPv4 address, or its first IPv6 one if it has none.
 * Numeric addresses are left as they are. */
static bool resolve_host(char *host, size_t hostlen)
{
    unsigned char bin[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1)
        return true;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *a;
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        return false;
    for (a = res; a && a->ai_family != AF_INET; a = a->ai_next)
        ;
    if (!a)
        a = res;
    const void *addr = a->ai_family == AF_INET
                           ? (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr
                           : (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
    bool ok = inet_ntop(a->ai_family, addr, host, (socklen_t)hostlen) != NULL;
    freeaddrinfo(res);
    return ok;
}

/* Whether two listening addresses would be the same socket: one port, and one host or a
 * wildcard on either side. */
static bool same_listener(const char *host_a, int port_a, const char *host_b, int port_b)
{
    if (port_a != port_b)
        return false;
    const char *any[] = {"0.0.0.0", "::"};
    for (size_t i = 0; i < 2; i++)
        if (strcmp(host_a, any[i]) == 0 || strcmp(host_b, any[i]) == 0)
            return true;
    return strcmp(host_a, host_b) == 0;
}

static int bad_option(const char *name, const char *env, const char *value, const char *expected)
{
    if (env && value == getenv(env))
        fprintf(stderr, "aeid: %s (read as %s): expected %s, got \"%s\"\n", env, name, expected,
                value);
    else
        fprintf(stderr, "aeid: %s: expected %s, got \"%s\" (see aeid --help)\n", name, expected,
                value);
    return EXIT_USAGE;
}

/* Parses a number from min to max; SECONDS and USD options take decimals. */
static bool parse_number(const char *s, double min, double max, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end || !(v >= min && v <= max))
        return false;
    *out = v;
    return true;
}

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

static void on_signal(int sig)
{
    (void)sig;
    server_stop();
}

int main(int argc, char **argv)
{
    const char *http = env_or("AEI_HTTP", "127.0.0.1:3000");
    const char *ws = env_or("AEI_WS", "127.0.0.1:8080");
    const char *db = env_or("AEI_DATABASE_URL", "sqlite:aei.db");
    const char *max_body = env_or("AEI_MAX_BODY", "65536");
    const char *request_timeout = env_or("AEI_REQUEST_TIMEOUT", "30");
    const char *event_loop = env_or("AEI_EVENT_LOOP", "poll");
    const char *ws_origins = env_or("AEI_WS_ORIGINS", NULL);
    const char *web_root = env_or("AEI_WEB_ROOT", "web/dist");
    const char *client_buffer = env_or("AEI_WS_CLIENT_BUFFER", "1048576");
    const char *slow_timeout = env_or("AEI_SLOW_CONSUMER_TIMEOUT", "10");
    const char *stale_after = env_or("AEI_STALE_AFTER", "30");
    const char *dead_after = env_or("AEI_DEAD_AFTER", "120");
    const char *price = env_or("AEI_PRICE_PER_1K_TOKENS", "0.002");
    const char *hb_days = env_or("AEI_HEARTBEAT_RETENTION_DAYS", "7");
    const char *trace_days = env_or("AEI_TRACE_RETENTION_DAYS", "30");
    const char *retention_interval = env_or("AEI_RETENTION_INTERVAL", "600");
    const char *retention_batch = env_or("AEI_RETENTION_BATCH", NULL);
    const char *clock_offset = env_or("AEI_TEST_RETENTION_CLOCK_OFFSET", "0");
    const char *audit_key = env_or("AEI_AUDIT_KEY_FILE", NULL);
    const char *audit_checkpoint = env_or("AEI_AUDIT_CHECKPOINT", NULL);
    const char *checkpoint_every = env_or("AEI_AUDIT_CHECKPOINT_INTERVAL", "10");
    static const struct option longopts[] = {
        {"http", required_argument, NULL, 'H'},
        {"ws", required_argument, NULL, 'W'},
        {"db", required_argument, NULL, 'D'},
        {"max-body", required_argument, NULL, 'B'},
        {"request-timeout", required_argument, NULL, 'T'},
        {"event-loop", required_argument, NULL, 'E'},
        {"ws-origins", required_argument, NULL, 'O'},
        {"web-root", required_argument, NULL, 'R'},
        {"ws-client-buffer", required_argument, NULL, 'C'},
        {"slow-consumer-timeout", required_argument, NULL, 'S'},
        {"stale-after", required_argument, NULL, 's'},
        {"dead-after", required_argument, NULL, 'd'},
        {"price-per-1k-tokens", required_argument, NULL, 'P'},
        {"heartbeat-retention-days", required_argument, NULL, 'r'},
        {"trace-retention-days", required_argument, NULL, 't'},
        {"retention-interval", required_argument, NULL, 'i'},
        {"retention-batch", required_argument, NULL, 'b'},
        {"audit-key", required_argument, NULL, 'K'},
        {"audit-checkpoint", required_argument, NULL, 'k'},
        {"audit-checkpoint-interval", required_argument, NULL, 'I'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'H':
            http = optarg;
            break;
        case 'W':
            ws = optarg;
            break;
        case 'D':
            db = optarg;
            break;
        case 'B':
            max_body = optarg;
            break;
        case 'T':
            request_timeout = optarg;
            break;
        case 'E':
            event_loop = optarg;
            break;
        case 'O':
            ws_origins = optarg;
            break;
        case 'R':
            web_root = optarg;
            break;
        case 'C':
            client_buffer = optarg;
            break;
        case 'S':
            slow_timeout = optarg;
            break;
        case 's':
            stale_after = optarg;
            break;
        case 'd':
            dead_after = optarg;
            break;
        case 'P':
            price = optarg;
            break;
        case 'r':
            hb_days = optarg;
            break;
        case 't':
            trace_days = optarg;
            break;
        case 'i':
            retention_interval = optarg;
            break;
        case 'b':
            retention_batch = optarg;
            break;
        case 'K':
            audit_key = optarg;
            break;
        case 'k':
            audit_checkpoint = optarg;
            break;
        case 'I':
            checkpoint_every = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        case 'V':
            printf("aeid %s\n", AEI_VERSION);
            return 0;
        case ':':
            fprintf(stderr, "aeid: %s needs a value (see aeid --help)\n", argv[optind - 1]);
            return EXIT_USAGE;
        default:
            fprintf(stderr, "aeid: unknown option %s (see aeid --help)\n", argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "aeid: unexpected argument \"%s\" (see aeid --help)\n", argv[optind]);
        return EXIT_USAGE;
    }

    struct config cfg = {.db_url = db};
    if (!parse_address(http, cfg.http_host, sizeof(cfg.http_host), &cfg.http_port))
        return bad_option("--http", "AEI_HTTP", http, "HOST:PORT such as 127.0.0.1:3000");
    if (!resolve_host(cfg.http_host, sizeof(cfg.http_host)))
        return bad_option("--http", "AEI_HTTP", http,
                          "HOST:PORT with a HOST this machine resolves");
    if (!parse_address(ws, cfg.ws_host, sizeof(cfg.ws_host), &cfg.ws_port))
        return bad_option("--ws", "AEI_WS", ws, "HOST:PORT such as 127.0.0.1:8080");
    if (!resolve_host(cfg.ws_host, sizeof(cfg.ws_host)))
        return bad_option("--ws", "AEI_WS", ws, "HOST:PORT with a HOST this machine resolves");
    if (same_listener(cfg.http_host, cfg.http_port, cfg.ws_host, cfg.ws_port)) {
        fprintf(stderr,
                "aeid: --ws %s is also the --http address: give the hub a port of its own "
                "(WebSocket clients may also use /ws on the HTTP port)\n",
                ws);
        return EXIT_USAGE;
    }
    char *end;
    long long mb = strtoll(max_body, &end, 10);
    if (*end || mb < 256 || mb > 64LL * 1024 * 1024)
        return bad_option("--max-body", "AEI_MAX_BODY", max_body,
                          "a number of bytes from 256 to 67108864");
    cfg.max_body = (size_t)mb;
    long long rt = strtoll(request_timeout, &end, 10);
    if (*end || *request_timeout == '\0' || rt < 1 || rt > 3600)
        return bad_option("--request-timeout", "AEI_REQUEST_TIMEOUT", request_timeout,
                          "a number of seconds from 1 to 3600");
    cfg.request_timeout = (int)rt;
    if (strcmp(event_loop, "poll") != 0 && strcmp(event_loop, "epoll") != 0)
        return bad_option("--event-loop", "AEI_EVENT_LOOP", event_loop, "poll or epoll");
    cfg.epoll = strcmp(event_loop, "epoll") == 0;
    double v, stale, dead;
    if (ws_origins && !valid_origins(ws_origins))
        return bad_option("--ws-origins", "AEI_WS_ORIGINS", ws_origins,
                          "origins such as http://localhost:5173,https://ops.example (no path, no "
                          "spaces), or *");
    cfg.ws_origins = ws_origins;
    /* A missing directory is not an error: the API works without the dashboard, and / says how
     * to build it. */
    if (!*web_root)
        return bad_option("--web-root", "AEI_WEB_ROOT", web_root, "a directory, such as web/dist");
    cfg.web_root = web_root;
    if (!parse_number(client_buffer, 4096, 1 << 30, &v) || v != (double)(long long)v)
        return bad_option("--ws-client-buffer", "AEI_WS_CLIENT_BUFFER", client_buffer,
                          "a whole number of bytes from 4096 to 1073741824");
    cfg.ws_client_buffer = (size_t)v;
    if (!parse_number(slow_timeout, 0.1, 3600, &v))
        return bad_option("--slow-consumer-timeout", "AEI_SLOW_CONSUMER_TIMEOUT", slow_timeout,
                          "a number of seconds from 0.1 to 3600");
    cfg.slow_consumer_us = (int64_t)(v * 1e6);
    if (!parse_number(stale_after, 0.1, 86400, &stale))
        return bad_option("--stale-after", "AEI_STALE_AFTER", stale_after,
                          "a number of seconds from 0.1 to 86400");
    if (!parse_number(dead_after, 0.1, 864000, &dead) || dead <= stale)
        return bad_option("--dead-after", "AEI_DEAD_AFTER", dead_after,
                          "a number of seconds greater than --stale-after");
    cfg.stale_after_us = (int64_t)(stale * 1e6);
    cfg.dead_after_us = (int64_t)(dead * 1e6);
    if (!parse_number(price, 0, 1000, &cfg.price_per_1k_tokens))
        return bad_option("--price-per-1k-tokens", "AEI_PRICE_PER_1K_TOKENS", price,
                          "a price in USD from 0 to 1000");
    if (!parse_number(hb_days, 1, 36500, &v) || v != (double)(int)v)
        return bad_option("--heartbeat-retention-days", "AEI_HEARTBEAT_RETENTION_DAYS", hb_days,
                          "a whole number of days from 1 to 36500");
    cfg.heartbeat_retention_days = (int)v;
    if (!parse_number(trace_days, 1, 36500, &v) || v != (double)(int)v)
        return bad_option("--trace-retention-days", "AEI_TRACE_RETENTION_DAYS", trace_days,
                          "a whole number of days from 1 to 36500");
    cfg.trace_retention_days = (int)v;
    if (!parse_number(retention_interval, 1, 86400, &v))
        return bad_option("--retention-interval", "AEI_RETENTION_INTERVAL", retention_interval,
                          "a number of seconds from 1 to 86400");
    cfg.retention_interval_us = (int64_t)(v * 1e6);
    if (retention_batch && (!parse_number(retention_batch, 1, 100000, &v) || v != (double)(int)v))
        return bad_option("--retention-batch", "AEI_RETENTION_BATCH", retention_batch,
                          "a whole number of rows from 1 to 100000");
    cfg.retention_batch = retention_batch ? (int)v : 0; /* 0: the store's default */
    if (!parse_number(clock_offset, -3.2e9, 3.2e9, &v))
        return bad_option("AEI_TEST_RETENTION_CLOCK_OFFSET", NULL, clock_offset,
                          "a number of seconds within 100 years either way");
    cfg.retention_clock_offset_us = (int64_t)(v * 1e6);
    double every;
    if (!parse_number(checkpoint_every, 0.1, 86400, &every))
        return bad_option("--audit-checkpoint-interval", "AEI_AUDIT_CHECKPOINT_INTERVAL",
                          checkpoint_every, "a number of seconds from 0.1 to 86400");
    cfg.audit_checkpoint_every_us = (int64_t)(every * 1e6);
    cfg.audit_checkpoint = audit_checkpoint && *audit_checkpoint ? audit_checkpoint : NULL;
    cfg.token = getenv("AEI_TOKEN");
    if (!cfg.token || !*cfg.token) {
        fputs("aeid: no token configured: set AEI_TOKEN to a secret, for example "
              "export AEI_TOKEN=\"$(head -c 24 /dev/urandom | base64)\"\n",
              stderr);
        return EXIT_FAILURE;
    }
    if (strlen(cfg.token) < 16)
        fputs("aeid: warning: AEI_TOKEN is shorter than 16 characters; use a longer secret\n",
              stderr);
    char claim_err[512];
    if (store_claim(db, claim_err, sizeof(claim_err)) != 0) {
        fprintf(stderr, "aeid: %s\n", claim_err);
        return EXIT_FAILURE;
    }
    cfg.audit_key_file = audit_key;

    /* Each storage batch allocates and frees a few hundred kilobytes in the writer's arena;
     * without this, glibc hands that memory back to the kernel (madvise) after every batch and
     * faults it in again on the next. */
    mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);

    /* Every agent and dashboard holds a connection: allow up to 65536 descriptors where the hard
     * limit lets us (lws sizes its tables by this limit, so not more). */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < 65536) {
        nofile.rlim_cur = nofile.rlim_max < 65536 ? nofile.rlim_max : 65536;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[512] = "";
    int rc = server_run(&cfg, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "aeid: %s\n", err[0] ? err : aei_strerror(rc));
        return EXIT_FAILURE;
    }
    return 0;
}
