/* http.c - the HTTP API on libwebsockets: routing, auth, validation, answers */
#include "aei/error.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/time.h"
#include "server/audit_api.h"
#include "server/auth.h"
#include "server/command.h"
#include "server/export.h"
#include "server/health.h"
#include "server/hub.h"
#include "server/loop.h"
#include "server/metrics.h"
#include "server/principal.h"
#include "server/server.h"
#include "server/static.h"
#include "server/worker.h"
#include "server/ws.h"

#include <libwebsockets.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Past the body limit, this much more is read and dropped so that the client sees its 413;
 * a larger body gets the 413 at once and the connection is closed. */
#define DISCARD_MAX (1024 * 1024)
/* How long a stopping server waits for answers still in flight. */
#define DRAIN_US (10 * 1000000)
/* lws 4.1 calls BODY_COMPLETION again and again, without end, for a request that was pipelined
 * behind another on the same connection (docs/decisions/0003); past this many calls for one
 * request the connection is closed. Ordinary requests see one or two. */
#define BODY_COMPLETION_SPIN_MAX 64
#define HISTORY_LIMIT_DEFAULT 100
#define HISTORY_LIMIT_MAX 1000
#define AGENTS_LIMIT_MAX 1000
/* The longest query parameter, name=value, accepted. */
#define QUERY_VALUE_MAX 512
/* How often the loop checks agents' health, sends totals and looks for slow subscribers. */
#define TICK_US 100000
/* How often the tokens of open WebSockets are looked up again, so that revoking one closes its
 * connections within this (plus PRINCIPAL_CACHE_US). */
#define WS_RECHECK_US 5000000

enum route {
    R_NONE,
    R_HEALTHZ,
    R_METRICS,
    R_HEARTBEATS,
    R_AGENTS,
    R_AGENT,
    R_AGENT_HEARTBEATS,
    R_TRACES,
    R_EXECUTIONS,
    R_EXECUTION,
    R_EXECUTION_DECISIONS,
    R_EXECUTION_EXPORT,
    R_STATIC, /* the dashboard (static.c) */
    R_AGENT_ROLLUPS,
    R_AUDIT,
    R_AUDIT_VERIFY,
    R_DEBUG_HEALTH,
    R_ME,
    R_AGENT_ACTION,   /* POST /api/v0/agents/{agent_id}/<action>: req->action */
    R_AGENT_COMMANDS, /* the agent's commands */
    R_COMMAND_ACK,    /* .../commands/{command_id}/ack: the command id in req->sub_id */
    R_COUNT
};

/* Route templates, as they appear in metrics; indexed by enum route. */
static const char *const route_names[] = {
    "other",
    "/healthz",
    "/metrics",
    "/api/v0/heartbeats",
    "/api/v0/agents",
    "/api/v0/agents/{agent_id}",
    "/api/v0/agents/{agent_id}/heartbeats",
    "/api/v0/traces",
    "/api/v0/executions",
    "/api/v0/executions/{execution_id}",
    "/api/v0/executions/{execution_id}/decisions",
    "/api/v0/executions/{execution_id}/export",
    "dashboard",
    "/api/v0/agents/{agent_id}/rollups",
    "/api/v0/audit",
    "/api/v0/audit/verify",
    "/api/v0/debug/health",
    "/api/v0/me",
    "/api/v0/agents/{agent_id}/{action}",
    "/api/v0/agents/{agent_id}/commands",
    "/api/v0/agents/{agent_id}/commands/{command_id}/ack",
};
/* The methods each route answers (those that answer GET answer HEAD too). */
static const char *const route_methods[] = {
    "",    "GET", "GET", "POST", "GET", "GET", "GET", "POST", "GET", "GET, PATCH", "GET",
    "GET", "GET", "GET", "GET",  "GET", "GET", "GET", "POST", "GET", "POST"};
_Static_assert(sizeof(route_methods) / sizeof(route_methods[0]) == R_COUNT,
               "a method list for each route");
_Static_assert(sizeof(route_names) / sizeof(route_names[0]) == R_COUNT, "a name for each route");
/* A batch of decisions may be this many times --max-body. */
#define TRACE_BODY_FACTOR 64
/* A heartbeat answer carries at most this many of the agent's open commands, the oldest; an
 * agent may have at most OPEN_COMMANDS_MAX of them before new ones are refused. */
#define HEARTBEAT_COMMANDS_MAX 100
#define OPEN_COMMANDS_MAX 10000
#define EXECUTIONS_LIMIT_DEFAULT 100
#define DECISIONS_LIMIT_DEFAULT 500
#define DECISIONS_LIMIT_MAX 1000

struct server {
    struct loop *loop;
    struct lws_context *ctx; /* the loop's */
    struct lws_vhost *http_vhost, *ws_vhost;
    struct workers *workers;
    struct hub *hub;
    struct ws *ws;
    struct principals *principals; /* who a token speaks for, looked up in auth_store */
    struct store *auth_store;      /* the loop's own connection, for token lookups only */
    json_t *controlling;    /* agent_id -> 1 while a pause, resume or terminate is being recorded */
    const char *ws_origins; /* allowed browser origins: NULL (same origin), "*" or a list */
    const char *web_root;   /* the built dashboard (web/dist) */
    size_t max_body;
    int64_t request_timeout_us;  /* from a request's headers to the end of its body */
    int64_t last_ts;             /* the last server time stamped; stamps strictly increase */
    size_t in_flight;            /* requests waiting for a worker */
    int64_t next_recheck_us;     /* when open WebSockets' tokens are next looked at */
    size_t answering;            /* requests whose answer is not fully written */
    int64_t stop_deadline;       /* monotonic time by which a stopping server gives up waiting */
    lws_sorted_usec_list_t tick; /* health, totals and slow subscribers; wakes a stopping loop */
    struct retention_policy retention;
    int64_t retention_interval_us, retention_clock_offset_us;
    int64_t retention_next;    /* monotonic time of the next run */
    int64_t retention_started; /* monotonic start of the current run */
    struct job *retention_job; /* non-NULL while a run is under way */
    bool retention_pausing;    /* ... and held here between two steps */
    lws_sorted_usec_list_t retention_pause;
    struct retention_run retention_run;
    struct retention_stats retention_counted; /* what of the run the metrics have counted */
    struct audit_state audit; /* the audit key, checkpoint file and heads written there */
    struct health health;     /* rates and recent errors for GET /api/v0/debug/health */
    int64_t checkpoint_every_us, next_checkpoint_us;
};

/* One HTTP request, from its headers to its answer. It outlives its connection while a worker
 * holds its job: `wsi` is then NULL and the completion frees it. */
struct request {
    struct server *srv;
    struct lws *wsi;
    const char *method;
    enum route route;
    struct principal who;          /* the caller, once authenticated */
    char agent_id[AEI_ID_MAX + 1]; /* the path's agent or execution id */
    char sub_id[AEI_ID_MAX + 1];   /* R_COMMAND_ACK: the command id */
    int action;                    /* R_AGENT_ACTION: an enum command_action */
    struct buf body;
    size_t body_seen;
    int pending_status; /* an answer decided before the body was read, sent once it is */
    struct buf pending; /* that answer's body */
    const char *pending_headers;
    struct job *job;       /* non-NULL while a worker holds it */
    struct export *export; /* an export streamed page by page (R_EXECUTION_EXPORT) */
    struct buf out;        /* LWS_PRE spare bytes, then headers and body */
    size_t out_off;
    bool answering;
    bool close_after;
    bool closing;                    /* close_soon(): the connection closes at its next WRITEABLE */
    int completions;                 /* BODY_COMPLETION calls seen */
    lws_sorted_usec_list_t deadline; /* closes a client that sends its body too slowly */
};

/* Per-connection state that lws allocates for us. */
struct pss {
    struct request *req;      /* an HTTP connection's current request */
    struct ws_client *client; /* an upgraded connection's subscriber */
};

static struct server *the_server;
static volatile sig_atomic_t stop_requested;

void server_stop(void)
{
    stop_requested = 1;
    if (the_server && the_server->ctx)
        lws_cancel_service(the_server->ctx);
}

static void request_free(struct request *req)
{
    if (!req)
        return;
    if (req->answering)
        req->srv->answering--;
    lws_sul_cancel(&req->deadline);
    buf_free(&req->body);
    buf_free(&req->pending);
    buf_free(&req->out);
    export_free(req->export);
    free(req);
}

/* Writes an answer's status line and headers into out after LWS_PRE spare bytes: with a
 * Content-Length of `clen`, or chunked when clen is NULL. `headers` holds extra "Name: value\r\n"
 * lines or is NULL. Sets *close when the connection must close after the answer. */
static void render_head(struct lws *wsi, struct buf *out, int status, const char *ctype,
                        const char *clen, const char *headers, bool *close)
{
    unsigned char hdr[1024], *p = hdr, *end = hdr + sizeof(hdr);
    if (lws_add_http_header_status(wsi, (unsigned int)status, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, (const unsigned char *)ctype,
                                     (int)strlen(ctype), &p, end) ||
        (clen &&
         lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH,
                                      (const unsigned char *)clen, (int)strlen(clen), &p, end)) ||
        (!clen && lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING,
                                               (const unsigned char *)"chunked", 7, &p, end)) ||
        /* API answers are never cached; the dashboard's files say how they may be. */
        (!(headers && strstr(headers, "Cache-Control:")) &&
         lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                      (const unsigned char *)"no-store", 8, &p, end))) {
        log_error("http: answer headers do not fit");
        *close = true;
    }
    if (*close && lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
                                               (const unsigned char *)"close", 5, &p, end))
        log_error("http: answer headers do not fit");
    buf_reset(out);
    buf_reserve(out, LWS_PRE + (size_t)(p - hdr) + 256);
    out->len = LWS_PRE;
    buf_append(out, hdr, (size_t)(p - hdr));
    if (headers)
        buf_puts(out, headers);
    buf_puts(out, "\r\n");
}

/* Writes a whole HTTP answer into out after LWS_PRE spare bytes. `headers` holds extra
 * "Name: value\r\n" lines or is NULL; the body is left out for HEAD. Sets *close when the
 * connection must close after it. */
static void render_answer(struct lws *wsi, struct buf *out, int status, const char *ctype,
                          const char *body, size_t len, const char *headers, bool head, bool *close)
{
    char clen[24];
    snprintf(clen, sizeof(clen), "%zu", len);
    render_head(wsi, out, status, ctype, clen, headers, close);
    if (!head) /* HEAD: the GET answer's headers alone */
        buf_append(out, body, len);
}

/* Builds the whole answer and asks for a WRITEABLE callback to send it. */
static void answer(struct request *req, int status, const char *ctype, const char *body, size_t len,
                   const char *headers)
{
    render_answer(req->wsi, &req->out, status, ctype, body, len, headers,
                  strcmp(req->method, "HEAD") == 0, &req->close_after);
    req->out_off = LWS_PRE;
    req->answering = true;
    req->srv->answering++;
    metrics_count_http(req->method, route_names[req->route], status);
    if (status >= 400)
        health_note_answer(&req->srv->health, req->method, route_names[req->route], status, body,
                           len);
    lws_callback_on_writable(req->wsi);
}

/* Writes the error document {"error": {...}} into out. */
static void error_body(struct buf *out, const char *code, const char *message,
                       const struct problem *pb)
{
    /* Messages and fields may quote what the client sent, which need not be UTF-8. */
    json_t *err = json_pack("{s:s, s:o}", "code", code, "message", json_string_lossy(message));
    if (pb && pb->field[0])
        json_object_set_new(err, "field", json_string_lossy(pb->field));
    if (pb && pb->line > 0) {
        json_object_set_new(err, "line", json_integer(pb->line));
        json_object_set_new(err, "column", json_integer(pb->column));
    }
    json_t *doc = json_pack("{s:o}", "error", err);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    buf_reset(out);
    buf_puts(out, text);
    free(text);
}

/* Sent with every 403: the token is good, its scope is not enough (RFC 6750, section 3.1). */
#define INSUFFICIENT_SCOPE                                                                         \
    "WWW-Authenticate: Bearer realm=\"aei\", error=\"insufficient_scope\"\r\n"

static void answer_error(struct request *req, int status, const char *code, const char *message,
                         const char *headers)
{
    struct buf b = {0};
    error_body(&b, code, message, NULL);
    answer(req, status, "application/json", b.data, b.len, headers);
    buf_free(&b);
}

static void answer_problem(struct request *req, const struct problem *pb)
{
    struct buf b = {0};
    error_body(&b, pb->code, pb->message, pb);
    answer(req, 400, "application/json", b.data, b.len, NULL);
    buf_free(&b);
}

/* Decides an error answer now but sends it only after the body has been read, so that the
 * connection stays usable. */
static void defer_error(struct request *req, int status, const char *code, const char *message,
                        const char *headers)
{
    req->pending_status = status;
    req->pending_headers = headers;
    error_body(&req->pending, code, message, NULL);
}

static void answer_store_error(struct request *req, int rc)
{
    if (rc == AEI_EUNAVAILABLE)
        answer_error(req, 503, "store_unavailable",
                     "the store is unavailable right now; retry after the Retry-After delay",
                     "Retry-After: 1\r\n");
    else
        answer_error(req, 500, "internal", "the store failed; see the server log", NULL);
}

static const char *request_method(struct lws *wsi)
{
    static const struct {
        enum lws_token_indexes token;
        const char *name;
    } methods[] = {
        {WSI_TOKEN_GET_URI, "GET"},       {WSI_TOKEN_POST_URI, "POST"},
        {WSI_TOKEN_PUT_URI, "PUT"},       {WSI_TOKEN_PATCH_URI, "PATCH"},
        {WSI_TOKEN_DELETE_URI, "DELETE"}, {WSI_TOKEN_OPTIONS_URI, "OPTIONS"},
        {WSI_TOKEN_HEAD_URI, "HEAD"},
    };
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (lws_hdr_total_length(wsi, methods[i].token) > 0)
            return methods[i].name;
    return "OTHER";
}

/* Reads the id segment at path into id; returns its length, or 0 if it is not a valid id. */
static size_t path_id(const char *path, char *id)
{
    size_t n = strcspn(path, "/");
    if (n == 0 || n > AEI_ID_MAX)
        return 0;
    memcpy(id, path, n);
    id[n] = '\0';
    return id_is_valid(id) ? n : 0;
}

/* Maps a path to a route; "/api/..." without a version is v0. The agent or execution id of the
 * path goes into req->agent_id, a command's into req->sub_id, an action into req->action. */
static enum route match_route(const char *path, struct request *req)
{
    char *id = req->agent_id;
    if (strcmp(path, "/healthz") == 0)
        return R_HEALTHZ;
    if (strcmp(path, "/metrics") == 0)
        return R_METRICS;
    if (strncmp(path, "/api/v0/", 8) == 0)
        path += 7;
    else if (strncmp(path, "/api/", 5) == 0)
        path += 4;
    else
        return R_NONE;
    if (strcmp(path, "/heartbeats") == 0)
        return R_HEARTBEATS;
    if (strcmp(path, "/agents") == 0)
        return R_AGENTS;
    if (strcmp(path, "/traces") == 0)
        return R_TRACES;
    if (strcmp(path, "/executions") == 0)
        return R_EXECUTIONS;
    if (strcmp(path, "/audit") == 0)
        return R_AUDIT;
    if (strcmp(path, "/audit/verify") == 0)
        return R_AUDIT_VERIFY;
    if (strcmp(path, "/debug/health") == 0)
        return R_DEBUG_HEALTH;
    if (strcmp(path, "/me") == 0)
        return R_ME;
    size_t n, k;
    if (strncmp(path, "/agents/", 8) == 0 && (n = path_id(path + 8, id))) {
        const char *rest = path + 8 + n;
        if (rest[0] == '\0')
            return R_AGENT;
        if (strcmp(rest, "/heartbeats") == 0)
            return R_AGENT_HEARTBEATS;
        if (strcmp(rest, "/rollups") == 0)
            return R_AGENT_ROLLUPS;
        if (strcmp(rest, "/commands") == 0)
            return R_AGENT_COMMANDS;
        if (strncmp(rest, "/commands/", 10) == 0 && (k = path_id(rest + 10, req->sub_id)) &&
            strcmp(rest + 10 + k, "/ack") == 0)
            return R_COMMAND_ACK;
        if (rest[0] == '/' && (req->action = command_action_parse(rest + 1)) >= 0)
            return R_AGENT_ACTION;
    }
    if (strncmp(path, "/executions/", 12) == 0 && (n = path_id(path + 12, id))) {
        if (path[12 + n] == '\0')
            return R_EXECUTION;
        if (strcmp(path + 12 + n, "/decisions") == 0)
            return R_EXECUTION_DECISIONS;
        if (strcmp(path + 12 + n, "/export") == 0)
            return R_EXECUTION_EXPORT;
    }
    return R_NONE;
}

/* Hands a request's job to the workers, confined to what the caller may see: its team's rows
 * (every team's for admins) and, for an agent's token, its own executions. */
static void submit(struct request *req, struct job *job)
{
    const char *team = principal_scope(&req->who);
    if (team) {
        snprintf(job->scope_team, sizeof(job->scope_team), "%s", team);
        job->exec_query.team_id = job->scope_team;
        if (job->audit)
            job->audit->q.team_id = job->scope_team;
        if (job->export)
            snprintf(job->export->team, sizeof(job->export->team), "%s", team);
    }
    if (req->who.role == ROLE_AGENT)
        snprintf(job->scope_agent, sizeof(job->scope_agent), "%s", req->who.id);
    job->owner = req;
    req->job = job;
    req->srv->in_flight++;
    workers_submit(req->srv->workers, job);
}

static struct job *job_new(enum job_kind kind)
{
    struct job *job = calloc(1, sizeof(*job));
    if (!job)
        abort();
    job->kind = kind;
    return job;
}

/* Answers 404 as for an agent that has never sent a heartbeat. */
static void no_agent(struct request *req, const char *agent_id)
{
    char msg[200];
    snprintf(msg, sizeof(msg), "no agent \"%s\": it has not sent a heartbeat", agent_id);
    answer_error(req, 404, "not_found", msg, NULL);
}

/* Whether the caller may see an agent: one of its team (any, for admins; an agent the hub does
 * not know passes for admins, and the store decides), or itself for an agent's token. Answers
 * 404 otherwise, as for an agent that does not exist, so that other teams' agents do not show. */
static bool agent_in_scope(struct request *req, const char *agent_id)
{
    const struct principal *who = &req->who;
    struct hub_agent *a = hub_agent_find(req->srv->hub, agent_id);
    bool ok =
        who->role == ROLE_ADMIN || (a && principal_sees(who, hub_agent_team(a)) &&
                                    (who->role != ROLE_AGENT || strcmp(who->id, agent_id) == 0));
    if (!ok)
        no_agent(req, agent_id);
    return ok;
}

/* Whether the caller may send telemetry for an agent: an agent's token for its own agent alone
 * (403 otherwise), anyone else for agents of its team or new ones (404 for another team's).
 * `where` names the item of a batch in the answer, or is NULL. */
static bool speaks_for(struct request *req, const char *agent_id, const char *where)
{
    const struct principal *who = &req->who;
    char msg[400];
    if (who->role == ROLE_AGENT && strcmp(who->id, agent_id) != 0) {
        snprintf(msg, sizeof(msg), "%s%sthis token speaks for agent \"%s\" only, not \"%s\"",
                 where ? where : "", where ? ": " : "", who->id, agent_id);
        answer_error(req, 403, "forbidden", msg, INSUFFICIENT_SCOPE);
        return false;
    }
    struct hub_agent *a = hub_agent_find(req->srv->hub, agent_id);
    if (a && !principal_sees(who, hub_agent_team(a))) {
        snprintf(msg, sizeof(msg), "%s%sagent \"%s\" belongs to another team", where ? where : "",
                 where ? ": " : "", agent_id);
        /* An agent's own token learns that much; a user gets the 404 of a stranger. */
        if (who->role == ROLE_AGENT)
            answer_error(req, 403, "forbidden", msg, INSUFFICIENT_SCOPE);
        else
            no_agent(req, agent_id);
        return false;
    }
    return true;
}

/* Parses the request's body as JSON; answers 400 naming what is wrong and returns NULL when it
 * is not. */
static json_t *request_json(struct request *req)
{
    struct problem pb;
    json_t *doc = json_parse_body(req->body.data ? req->body.data : "", req->body.len, &pb);
    if (!doc)
        answer_problem(req, &pb);
    return doc;
}

/* Server time for a new heartbeat: the wall clock, nudged so that stamps strictly increase. */
static int64_t stamp(struct server *srv)
{
    int64_t now = aei_now_us();
    srv->last_ts = now > srv->last_ts ? now : srv->last_ts + 1;
    return srv->last_ts;
}

static void post_heartbeat(struct request *req)
{
    struct job *job = job_new(JOB_PUT_HEARTBEAT);
    /* A valid heartbeat takes the streaming parser; the jansson path words what is wrong. */
    if (hb_parse_fast(req->body.data ? req->body.data : "", req->body.len, &job->hb) != 0) {
        json_t *doc = request_json(req); /* answers 400 itself when the body is no JSON */
        if (!doc) {
            job_free(job);
            return;
        }
        struct problem pb;
        int rc = hb_from_json(doc, &job->hb, &pb);
        json_decref(doc);
        if (rc) {
            job_free(job);
            answer_problem(req, &pb);
            return;
        }
    }
    if (!speaks_for(req, job->hb.agent_id, NULL)) {
        job_free(job);
        return;
    }
    /* A new agent joins the caller's team; a known one keeps its own. */
    struct hub_agent *a = hub_agent_find(req->srv->hub, job->hb.agent_id);
    snprintf(job->hb.team_id, sizeof(job->hb.team_id), "%s", a ? hub_agent_team(a) : req->who.team);
    job->hb.server_ts = stamp(req->srv);
    job->received_mono = aei_mono_us();
    metrics_count_heartbeat();
    health_count_heartbeats(&req->srv->health, 1);
    submit(req, job);
}

/* Returns true if the query has a parameter of `limit` bytes or more, or very many of them. */
static bool has_long_param(struct lws *wsi, size_t limit)
{
    for (int i = 0; i < 64; i++) {
        int n = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n <= 0)
            return false;
        if ((size_t)n >= limit)
            return true;
    }
    return true;
}

/* Reads one query parameter "name=value" fragment by fragment. Returns false if absent. */
static bool query_param(struct lws *wsi, const char *name, char *out, size_t n)
{
    char frag[512];
    size_t nlen = strlen(name);
    for (int i = 0; lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i) >= 0;
         i++) {
        if (strncmp(frag, name, nlen) == 0 && frag[nlen] == '=') {
            snprintf(out, n, "%s", frag + nlen + 1);
            return true;
        }
    }
    return false;
}

/* Checks that every query parameter is one of `known` (NULL-terminated). */
static const char *unknown_param(struct lws *wsi, const char *const *known, char *frag, size_t n)
{
    for (int i = 0; lws_hdr_copy_fragment(wsi, frag, (int)n, WSI_TOKEN_HTTP_URI_ARGS, i) >= 0;
         i++) {
        frag[strcspn(frag, "=")] = '\0';
        bool ok = false;
        for (const char *const *k = known; *k; k++)
            ok = ok || strcmp(frag, *k) == 0;
        if (!ok)
            return frag;
    }
    return NULL;
}

static bool parse_int64(const char *s, int64_t *out)
{
    if (!*s || (*s < '0' || *s > '9'))
        return false;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end || v == LLONG_MAX)
        return false;
    *out = v;
    return true;
}

static void bad_param(struct request *req, const char *name, const char *expected, const char *got)
{
    struct problem pb = {.code = "invalid_parameter"};
    snprintf(pb.field, sizeof(pb.field), "%s", name);
    snprintf(pb.message, sizeof(pb.message), "query parameter %s: expected %s, got \"%.60s\"", name,
             expected, got);
    struct buf b = {0};
    error_body(&b, pb.code, pb.message, &pb);
    answer(req, 400, "application/json", b.data, b.len, NULL);
    buf_free(&b);
}

/* Answers 400 and returns false unless every query parameter is one of `known` (NULL-ended,
 * listed for people in `names`) and fits a buffer of QUERY_VALUE_MAX bytes. */
static bool params_ok(struct request *req, const char *const *known, const char *names)
{
    char v[QUERY_VALUE_MAX];
    if (has_long_param(req->wsi, sizeof(v))) {
        bad_param(req, "(query)", "at most 64 parameters of under 512 bytes each", "...");
        return false;
    }
    const char *unknown = unknown_param(req->wsi, known, v, sizeof(v));
    if (unknown) {
        bad_param(req, unknown, names, unknown);
        return false;
    }
    return true;
}

/* Reads the optional "limit" parameter into *out (left alone when absent). Answers 400 and
 * returns false when it is not a whole number from 1 to max. */
static bool limit_param(struct request *req, int max, int *out)
{
    char v[QUERY_VALUE_MAX], expected[48];
    int64_t n;
    if (!query_param(req->wsi, "limit", v, sizeof(v)))
        return true;
    if (!parse_int64(v, &n) || n < 1 || n > max) {
        snprintf(expected, sizeof(expected), "a whole number from 1 to %d", max);
        bad_param(req, "limit", expected, v);
        return false;
    }
    *out = (int)n;
    return true;
}

/* Reads the optional "cursor" of a keyset page, "<key>-<rest>" of the previous page's last row
 * (json_render_page()): *key, and rest an id (into id[AEI_ID_MAX + 1]) or, when id is NULL, a
 * number (into *num). Returns 0 without a cursor, 1 with one, and -1 after answering 400. */
static int cursor_param(struct request *req, int64_t *key, char *id, int64_t *num)
{
    char v[QUERY_VALUE_MAX];
    if (!query_param(req->wsi, "cursor", v, sizeof(v)))
        return 0;
    char *dash = strchr(v, '-');
    if (dash) {
        *dash = '\0';
        const char *rest = dash + 1;
        if (parse_int64(v, key) && (id ? id_is_valid(rest) : parse_int64(rest, num))) {
            if (id)
                snprintf(id, AEI_ID_MAX + 1, "%s", rest);
            return 1;
        }
        *dash = '-';
    }
    bad_param(req, "cursor", "the value of \"next\" from the previous page", v);
    return -1;
}

static void get_heartbeats(struct request *req)
{
    static const char *const known[] = {"from", "to", "limit", "cursor", NULL};
    struct lws *wsi = req->wsi;
    char v[QUERY_VALUE_MAX];
    if (!params_ok(req, known, "one of from, to, limit, cursor"))
        return;
    struct job *job = job_new(JOB_LIST_HEARTBEATS);
    struct hb_query *q = &job->query;
    q->from = INT64_MIN;
    q->to = INT64_MAX;
    q->after_ts = INT64_MIN;
    q->after_id = INT64_MIN;
    q->limit = HISTORY_LIMIT_DEFAULT;
    if (query_param(wsi, "from", v, sizeof(v)) && !aei_time_parse(v, &q->from)) {
        bad_param(req, "from", "an RFC 3339 date-time (encode + as %2B)", v);
        goto err_free;
    }
    if (query_param(wsi, "to", v, sizeof(v)) && !aei_time_parse(v, &q->to)) {
        bad_param(req, "to", "an RFC 3339 date-time (encode + as %2B)", v);
        goto err_free;
    }
    if (!limit_param(req, HISTORY_LIMIT_MAX, &q->limit))
        goto err_free;
    if (cursor_param(req, &q->after_ts, NULL, &q->after_id) < 0) /* "<server_ts>-<id>" */
        goto err_free;
    snprintf(job->agent_id, sizeof(job->agent_id), "%s", req->agent_id);
    submit(req, job);
    return;

err_free:
    job_free(job);
}

/* Reads the optional day parameter `name` ("YYYY-MM-DD") into *day. Answers 400 and returns
 * false when it is not a date. */
static bool day_param(struct request *req, const char *name, int64_t *day)
{
    char v[QUERY_VALUE_MAX];
    if (!query_param(req->wsi, name, v, sizeof(v)) || retention_day_parse(v, day))
        return true;
    bad_param(req, name, "a date YYYY-MM-DD", v);
    return false;
}

/* GET /api/v0/agents/{id}/rollups[?from&to&limit&cursor]: daily rollups, ascending by day. */
static void get_rollups(struct request *req)
{
    static const char *const known[] = {"from", "to", "limit", "cursor", NULL};
    if (!params_ok(req, known, "one of from, to, limit, cursor"))
        return;
    struct job *job = job_new(JOB_LIST_ROLLUPS);
    struct rollup_query *q = &job->rollup_query;
    *q = (struct rollup_query){NULL, INT64_MIN, INT64_MAX, INT64_MIN, HISTORY_LIMIT_DEFAULT};
    char v[QUERY_VALUE_MAX];
    if (!day_param(req, "from", &q->from_day) || !day_param(req, "to", &q->to_day) ||
        !limit_param(req, HISTORY_LIMIT_MAX, &q->limit))
        goto err_free;
    if (q->to_day < q->from_day) {
        query_param(req->wsi, "to", v, sizeof(v));
        bad_param(req, "to", "a date on or after from", v);
        goto err_free;
    }
    if (query_param(req->wsi, "cursor", v, sizeof(v)) && !retention_day_parse(v, &q->after_day)) {
        bad_param(req, "cursor", "the value of \"next\" from the previous page", v);
        goto err_free;
    }
    snprintf(job->agent_id, sizeof(job->agent_id), "%s", req->agent_id);
    submit(req, job);
    return;

err_free:
    job_free(job);
}

/* Reads an optional text filter of at most max bytes into out; answers 400 when it is empty or
 * longer. */
static bool filter_param(struct request *req, const char *name, char *out, size_t max,
                         const char **set)
{
    char v[QUERY_VALUE_MAX], expected[64];
    if (!query_param(req->wsi, name, v, sizeof(v)))
        return true;
    if (!*v || strlen(v) > max) {
        snprintf(expected, sizeof(expected), "1 to %zu bytes", max);
        bad_param(req, name, expected, v);
        return false;
    }
    memcpy(out, v, strlen(v) + 1);
    *set = out;
    return true;
}

/* GET /api/v0/audit[?actor&action_type&resource_id&from&to&cursor&limit]: audit rows, newest
 * first, each verified on read. Admin only: today every accepted token (AEI_TOKEN) is. */
static void get_audit(struct request *req)
{
    static const char *const known[] = {"actor", "action_type", "resource_id", "from",
                                        "to",    "cursor",      "limit",       NULL};
    char v[QUERY_VALUE_MAX];
    if (!params_ok(req, known, "one of actor, action_type, resource_id, from, to, cursor, limit"))
        return;
    struct job *job = job_new(JOB_LIST_AUDIT);
    struct audit_job *a = job->audit = calloc(1, sizeof(*job->audit));
    if (!a)
        abort();
    a->state = &req->srv->audit;
    a->q = (struct audit_query){.from = INT64_MIN,
                                .to = INT64_MAX,
                                .before_ts = INT64_MAX,
                                .before_id = INT64_MAX,
                                .limit = HISTORY_LIMIT_DEFAULT};
    if (!filter_param(req, "actor", a->actor, AEI_ID_MAX, &a->q.actor_id) ||
        !filter_param(req, "action_type", a->action, AUDIT_ACTION_MAX, &a->q.action_type) ||
        !filter_param(req, "resource_id", a->resource, AUDIT_RESOURCE_MAX, &a->q.resource_id) ||
        !limit_param(req, HISTORY_LIMIT_MAX, &a->q.limit))
        goto err_free;
    if (query_param(req->wsi, "from", v, sizeof(v)) && !aei_time_parse(v, &a->q.from)) {
        bad_param(req, "from", "an RFC 3339 date-time (encode + as %2B)", v);
        goto err_free;
    }
    if (query_param(req->wsi, "to", v, sizeof(v)) && !aei_time_parse(v, &a->q.to)) {
        bad_param(req, "to", "an RFC 3339 date-time (encode + as %2B)", v);
        goto err_free;
    }
    if (cursor_param(req, &a->q.before_ts, NULL, &a->q.before_id) < 0) /* "<ts>-<id>" */
        goto err_free;
    submit(req, job);
    return;

err_free:
    job_free(job);
}

/* GET /api/v0/agents[?limit=N&cursor=AGENT_ID]: every agent, or one page of them. */
static void get_agents(struct request *req)
{
    static const char *const known[] = {"limit", "cursor", NULL};
    struct lws *wsi = req->wsi;
    char v[QUERY_VALUE_MAX];
    if (!params_ok(req, known, "one of limit, cursor"))
        return;
    struct job *job = job_new(JOB_LIST_AGENTS);
    job->limit = -1;
    if (!limit_param(req, AGENTS_LIMIT_MAX, &job->limit))
        goto err_free;
    if (query_param(wsi, "cursor", v, sizeof(v))) {
        if (!id_is_valid(v)) {
            bad_param(req, "cursor", "the value of \"next\" from the previous page", v);
            goto err_free;
        }
        memcpy(job->agent_id, v, strlen(v) + 1); /* id_is_valid() bounds it */
    }
    submit(req, job);
    return;

err_free:
    job_free(job);
}

/* Writes a random (version 4) UUID into out[37], for decisions that come without an id. */
static void new_uuid(char *out)
{
    unsigned char b[16];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
        int64_t t[2] = {aei_now_us(), aei_mono_us()};
        memcpy(b, t, sizeof(b));
    }
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

/* The most invalid decisions listed in one 400 answer. */
#define TRACE_ERRORS_MAX 20

/* Stamps a batch of valid decisions and hands it to the writer. */
static void submit_decisions(struct request *req, struct job *job)
{
    for (size_t i = 0; i < job->n_decisions; i++) {
        char where[40];
        snprintf(where, sizeof(where), "[%zu].agent_id", i);
        if (!speaks_for(req, job->decisions[i]->agent_id, where)) {
            job_free(job);
            return;
        }
    }
    for (size_t i = 0; i < job->n_decisions; i++) {
        struct decision *d = job->decisions[i];
        if (!d->decision_id[0])
            new_uuid(d->decision_id);
        d->server_ts = stamp(req->srv);
    }
    /* A new execution of an agent not registered yet is the sender's team's, as the agent will
     * be once its first heartbeat comes with this token. Which executions the sender may add to
     * is the writer's to check (submit() scopes the job), where each one's owner is known. */
    snprintf(job->sender_team, sizeof(job->sender_team), "%s", req->who.team);
    submit(req, job);
}

/* POST /api/v0/traces: one decision or an array of up to TRACE_BATCH_MAX; all or nothing. */
static void post_traces(struct request *req)
{
    const char *body = req->body.data ? req->body.data : "";
    struct decision **fast;
    size_t n_fast;
    if (decisions_parse_fast(body, req->body.len, &fast, &n_fast) == 0) {
        struct job *job = job_new(JOB_PUT_DECISIONS);
        job->decisions = fast;
        job->n_decisions = n_fast;
        if (!(job->stored = calloc(n_fast, sizeof(*job->stored))))
            abort();
        submit_decisions(req, job);
        return;
    }
    /* Anything but a valid batch: jansson parses it and every problem is named. */
    struct problem pb;
    json_t *doc = request_json(req);
    if (!doc)
        return;
    bool batch = json_is_array(doc);
    size_t n = batch ? json_array_size(doc) : 1;
    if (batch && (n == 0 || n > TRACE_BATCH_MAX)) {
        problem_field(&pb, "(body)", "a decision object or an array of 1 to 1000 of them", doc);
        json_decref(doc);
        answer_problem(req, &pb);
        return;
    }
    struct job *job = job_new(JOB_PUT_DECISIONS);
    job->decisions = calloc(n, sizeof(*job->decisions));
    job->stored = calloc(n, sizeof(*job->stored));
    if (!job->decisions || !job->stored)
        abort();
    /* Every invalid decision is reported, by index and field; none is stored. */
    json_t *errors = json_array();
    struct problem first = {0};
    for (size_t i = 0; i < n; i++) {
        struct decision *d = calloc(1, sizeof(*d));
        if (!d)
            abort();
        job->decisions[job->n_decisions++] = d;
        json_t *v = batch ? json_array_get(doc, i) : doc;
        if (decision_from_json(v, batch ? (long)i : -1, d, &pb) != 0) {
            if (json_array_size(errors) == 0)
                first = pb;
            if (json_array_size(errors) < TRACE_ERRORS_MAX)
                json_array_append_new(errors, json_pack("{s:I, s:o, s:o}", "index", (json_int_t)i,
                                                        "field", json_string_lossy(pb.field),
                                                        "message", json_string_lossy(pb.message)));
            continue;
        }
    }
    json_decref(doc);
    if (json_array_size(errors) > 0) {
        json_t *err = json_pack("{s:s, s:o, s:o, s:o}", "code", first.code, "message",
                                json_string_lossy(first.message), "field",
                                json_string_lossy(first.field), "errors", errors);
        json_t *answer_doc = json_pack("{s:o}", "error", err);
        char *text = json_dumps(answer_doc, JSON_COMPACT);
        json_decref(answer_doc);
        answer(req, 400, "application/json", text, strlen(text), NULL);
        free(text);
        job_free(job);
        return;
    }
    json_decref(errors);
    submit_decisions(req, job);
}

/* GET /api/v0/executions[?agent_id&status&limit&cursor]: newest first. */
static void get_executions(struct request *req)
{
    static const char *const known[] = {"agent_id", "status", "limit", "cursor", NULL};
    char v[QUERY_VALUE_MAX];
    if (!params_ok(req, known, "one of agent_id, status, limit, cursor"))
        return;
    struct job *job = job_new(JOB_LIST_EXECUTIONS);
    struct exec_query *q = &job->exec_query;
    q->status = -1;
    q->limit = EXECUTIONS_LIMIT_DEFAULT;
    if (query_param(req->wsi, "agent_id", v, sizeof(v))) {
        if (!id_is_valid(v)) {
            bad_param(req, "agent_id", "an agent id", v);
            goto err_free;
        }
        memcpy(job->ids[0], v, strlen(v) + 1); /* id_is_valid() bounds it */
        q->agent_id = job->ids[0];
    }
    if (query_param(req->wsi, "status", v, sizeof(v))) {
        int st = -1;
        for (int i = 0; i < EXEC_STATUS_COUNT; i++)
            if (strcmp(v, execution_status_names[i]) == 0)
                st = i;
        if (st < 0) {
            bad_param(req, "status", "one of running, completed, failed, abandoned", v);
            goto err_free;
        }
        q->status = st;
    }
    int cursor;
    if (!limit_param(req, AGENTS_LIMIT_MAX, &q->limit) ||
        (cursor = cursor_param(req, &q->before_started, job->ids[1], NULL)) < 0)
        goto err_free;
    if (cursor > 0) /* "<started>-<execution_id>" */
        q->before_id = job->ids[1];
    submit(req, job);
    return;

err_free:
    job_free(job);
}

/* GET /api/v0/executions/{id}/decisions[?parent&limit&cursor]: tree pre-order with depth, or one
 * decision's children. */
static void get_decisions(struct request *req)
{
    static const char *const known[] = {"parent", "limit", "cursor", NULL};
    char v[QUERY_VALUE_MAX];
    if (!params_ok(req, known, "one of parent, limit, cursor"))
        return;
    struct job *job = job_new(JOB_LIST_DECISIONS);
    struct decision_query *q = &job->decision_query;
    snprintf(job->ids[0], sizeof(job->ids[0]), "%s", req->agent_id);
    q->execution_id = job->ids[0];
    q->limit = DECISIONS_LIMIT_DEFAULT;
    if (query_param(req->wsi, "parent", v, sizeof(v))) {
        if (!id_is_valid(v)) {
            bad_param(req, "parent", "a decision_id", v);
            goto err_free;
        }
        memcpy(job->ids[1], v, strlen(v) + 1); /* id_is_valid() bounds it */
        q->parent_id = job->ids[1];
    }
    if (!limit_param(req, DECISIONS_LIMIT_MAX, &q->limit))
        goto err_free;
    if (query_param(req->wsi, "cursor", v, sizeof(v))) {
        size_t len = strlen(v);
        if (len == 0 || len % TRACE_KEY_LEN || len >= sizeof(job->cursor) ||
            strspn(v, "0123456789abcdef") != len) {
            bad_param(req, "cursor", "the value of \"next\" from the previous page", v);
            goto err_free;
        }
        memcpy(job->cursor, v, len + 1);
        q->after_path = job->cursor;
    }
    submit(req, job);
    return;

err_free:
    job_free(job);
}

/* GET of a dashboard file or client-side route; needs no token, as the sign-in page is one. */
static void get_static(struct request *req)
{
    char path[1024] = "";
    struct static_answer sa = {0};
    if (lws_hdr_copy(req->wsi, path, sizeof(path), WSI_TOKEN_GET_URI) <= 0 &&
        lws_hdr_copy(req->wsi, path, sizeof(path), WSI_TOKEN_HEAD_URI) <= 0)
        snprintf(path, sizeof(path), "%s", "-"); /* too long: refused as not plain */
    static_serve(req->srv->web_root, path, &sa);
    answer(req, sa.status, sa.ctype, sa.body.data ? sa.body.data : "", sa.body.len, sa.headers);
    buf_free(&sa.body);
}

/* PATCH /api/v0/executions/{id}: ends a running execution. */
static void patch_execution(struct request *req)
{
    struct problem pb;
    json_t *doc = request_json(req);
    if (!doc)
        return;
    struct job *job = job_new(JOB_END_EXECUTION);
    int rc = execution_end_from_json(doc, &job->end, &pb);
    json_decref(doc);
    if (rc) {
        job_free(job);
        answer_problem(req, &pb);
        return;
    }
    snprintf(job->ids[0], sizeof(job->ids[0]), "%s", req->agent_id);
    submit(req, job);
}

/* GET /api/v0/executions/{id}/export[?format=json|markdown]: the whole execution as one
 * document, streamed a page at a time (see stream_page). */
static void get_export(struct request *req)
{
    static const char *const known[] = {"format", NULL};
    char v[QUERY_VALUE_MAX] = "json";
    enum export_format format;
    if (!params_ok(req, known, "format"))
        return;
    query_param(req->wsi, "format", v, sizeof(v));
    if (!export_format_parse(v, &format)) {
        bad_param(req, "format", "json or markdown", v);
        return;
    }
    req->export = export_new(format, req->agent_id, strcmp(req->method, "HEAD") == 0);
    struct job *job = job_new(JOB_EXPORT_PAGE);
    job->export = req->export;
    snprintf(job->ids[0], sizeof(job->ids[0]), "%s", req->agent_id); /* for a 404 */
    submit(req, job);
}

/* Sends a page an export's job rendered as one chunk (after the answer's headers with the
 * first; the last chunk follows the last page). The next page is read once this one is written:
 * one page per export is in memory at a time. */
static void stream_page(struct request *req)
{
    struct export *ex = req->export;
    bool head = strcmp(req->method, "HEAD") == 0;
    if (!req->answering) {
        render_head(req->wsi, &req->out, 200, export_content_type(ex->format), NULL, NULL,
                    &req->close_after);
        req->answering = true;
        req->srv->answering++;
        metrics_count_http(req->method, route_names[req->route], 200);
    } else {
        buf_reset(&req->out);
        req->out.len = LWS_PRE;
    }
    if (!head && ex->page.len > 0) {
        buf_printf(&req->out, "%zx\r\n", ex->page.len);
        buf_append(&req->out, ex->page.data, ex->page.len);
        buf_puts(&req->out, "\r\n");
    }
    if (!head && ex->phase == EXPORT_DONE)
        buf_puts(&req->out, "0\r\n\r\n");
    buf_reset(&ex->page);
    req->out_off = LWS_PRE;
    lws_callback_on_writable(req->wsi);
}

/* POST /api/v0/agents/{id}/<action>: checks the agent's state, then records the command with
 * its audit row; it goes to the agent once that has committed (finish_job). */
static void post_action(struct request *req)
{
    struct server *srv = req->srv;
    struct hub_agent *a = hub_agent_find(srv->hub, req->agent_id);
    if (!a || !principal_sees(&req->who, hub_agent_team(a))) {
        no_agent(req, req->agent_id);
        return;
    }
    struct problem pb;
    json_t *doc = NULL; /* these actions may come without a body */
    if (req->body.len > 0 && !(doc = request_json(req)))
        return;
    struct job *job = job_new(JOB_PUT_COMMAND);
    struct command_job *cj = job->command = calloc(1, sizeof(*job->command));
    if (!cj)
        abort();
    enum command_action action = (enum command_action)req->action;
    int rc = command_request_parse(action, doc, &cj->r, &pb);
    json_decref(doc);
    if (rc) {
        answer_problem(req, &pb);
        goto err_free;
    }
    char why[160];
    if (action == CMD_REASSIGN) {
        struct hub_agent *to = hub_agent_find(srv->hub, cj->r.to_agent_id);
        if (!to || strcmp(hub_agent_team(to), hub_agent_team(a)) != 0 || to == a) {
            json_t *got = json_string(cj->r.to_agent_id);
            problem_field(&pb, "to_agent_id", "another agent of the same team", got);
            json_decref(got);
            answer_problem(req, &pb);
            goto err_free;
        }
    }
    if (hub_open_commands(a) >= OPEN_COMMANDS_MAX) {
        char msg[300];
        snprintf(msg, sizeof(msg),
                 "agent \"%s\" has %d commands it has not acknowledged; wait for it to catch up",
                 req->agent_id, OPEN_COMMANDS_MAX);
        answer_error(req, 409, "conflict", msg, NULL);
        goto err_free;
    }
    int after = command_control_after(action);
    if (!command_allowed(action, hub_agent_control(a), why, sizeof(why))) {
        answer_error(req, 409, "conflict", why, NULL);
        goto err_free;
    }
    /* The state just checked is about to change: judging any action on it could accept, say,
     * an execute recorded after the pause that is committing now. */
    if (json_object_get(srv->controlling, req->agent_id)) {
        answer_error(req, 409, "conflict",
                     "a pause, resume or terminate of this agent is being recorded; retry", NULL);
        goto err_free;
    }
    struct command *c = &cj->c;
    new_uuid(c->command_id);
    if (action == CMD_EXECUTE) {
        new_uuid(cj->r.execution_id);
        command_request_finish(&cj->r);
    }
    snprintf(c->agent_id, sizeof(c->agent_id), "%s", req->agent_id);
    snprintf(c->team_id, sizeof(c->team_id), "%s", hub_agent_team(a));
    c->action = action;
    if (!(c->params = strdup(cj->r.params)))
        abort();
    c->status = CMD_PENDING;
    c->actor_type = req->who.type;
    snprintf(c->actor_id, sizeof(c->actor_id), "%s", req->who.id);
    c->created = aei_now_us();
    cj->control_before = (int)hub_agent_control(a);
    cj->control_after = after;
    cj->key = srv->audit.key;
    if (after >= 0)
        json_object_set_new(srv->controlling, req->agent_id, json_true());
    submit(req, job);
    return;

err_free:
    job_free(job);
}

/* POST /api/v0/agents/{id}/commands/{command_id}/ack: the agent says how a command went. */
static void post_ack(struct request *req)
{
    struct problem pb;
    json_t *doc = request_json(req);
    if (!doc)
        return;
    struct job *job = job_new(JOB_ACK_COMMAND);
    struct command_job *cj = job->command = calloc(1, sizeof(*job->command));
    if (!cj)
        abort();
    int rc = command_ack_parse(doc, &cj->status, &cj->result, &pb);
    json_decref(doc);
    if (rc) {
        answer_problem(req, &pb);
        job_free(job);
        return;
    }
    snprintf(job->agent_id, sizeof(job->agent_id), "%s", req->agent_id);
    snprintf(job->ids[0], sizeof(job->ids[0]), "%s", req->sub_id);
    cj->actor.type = req->who.type;
    snprintf(cj->actor_id, sizeof(cj->actor_id), "%s", req->who.id);
    cj->key = req->srv->audit.key;
    submit(req, job);
}

/* GET /api/v0/agents/{id}/commands[?limit&cursor]: the agent's commands, newest first. */
static void get_commands(struct request *req)
{
    static const char *const known[] = {"limit", "cursor", NULL};
    if (!params_ok(req, known, "one of limit, cursor"))
        return;
    struct job *job = job_new(JOB_LIST_COMMANDS);
    struct command_job *cj = job->command = calloc(1, sizeof(*job->command));
    if (!cj)
        abort();
    snprintf(job->agent_id, sizeof(job->agent_id), "%s", req->agent_id);
    cj->q = (struct command_query){.agent_id = job->agent_id, .limit = HISTORY_LIMIT_DEFAULT};
    if (!limit_param(req, HISTORY_LIMIT_MAX, &cj->q.limit))
        goto err_free;
    int cursor = cursor_param(req, &cj->q.before_created, job->ids[1], NULL);
    if (cursor < 0)
        goto err_free;
    if (cursor > 0) /* "<created>-<command_id>" */
        cj->q.before_id = job->ids[1];
    submit(req, job);
    return;

err_free:
    job_free(job);
}

static void get_metrics(struct request *req)
{
    struct buf b = {0};
    struct server *srv = req->srv;
    struct metrics_gauges g = {hub_status_counts(srv->hub), hub_liveness_counts(srv->hub),
                               ws_connections(srv->ws)};
    metrics_render(&b, &g);
    answer(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len, NULL);
    buf_free(&b);
}

/* A route without parameters whose reader job reads the audit log: verify and health. */
static void submit_audit_job(struct request *req, enum job_kind kind)
{
    static const char *const none[] = {NULL};
    if (!params_ok(req, none, "no parameters"))
        return;
    struct job *job = job_new(kind);
    if (!(job->audit = calloc(1, sizeof(*job->audit))))
        abort();
    job->audit->state = &req->srv->audit;
    submit(req, job);
}

/* Answers the health page: the reader's probe with the loop's own figures. It answers 200 with
 * the store's failure inside, since a failing store is what the page is for. */
static void answer_health(struct request *req, const struct job *job)
{
    struct health_ws ws;
    ws_count_subscribers(req->srv->ws, &ws);
    char *text = health_render(&req->srv->health, &ws, job->body);
    answer(req, 200, "application/json", text, strlen(text), NULL);
    free(text);
}

/* Acts on a request whose headers and body have arrived. */
static void dispatch(struct request *req)
{
    if (req->pending_status) {
        answer(req, req->pending_status, "application/json", req->pending.data, req->pending.len,
               req->pending_headers);
        return;
    }
    bool agent_path = req->route == R_AGENT || req->route == R_AGENT_HEARTBEATS ||
                      req->route == R_AGENT_ROLLUPS || req->route == R_AGENT_COMMANDS ||
                      req->route == R_COMMAND_ACK;
    if (agent_path && !agent_in_scope(req, req->agent_id))
        return;
    switch (req->route) {
    case R_HEALTHZ:
        answer(req, 200, "application/json", "{\"status\":\"ok\"}", 15, NULL);
        break;
    case R_ME: {
        char *text = principal_render(&req->who);
        answer(req, 200, "application/json", text, strlen(text), NULL);
        free(text);
        break;
    }
    case R_AGENT_ACTION:
        post_action(req);
        break;
    case R_AGENT_COMMANDS:
        get_commands(req);
        break;
    case R_COMMAND_ACK:
        post_ack(req);
        break;
    case R_METRICS:
        get_metrics(req);
        break;
    case R_HEARTBEATS:
        post_heartbeat(req);
        break;
    case R_AGENTS:
        get_agents(req);
        break;
    case R_AGENT: {
        struct job *job = job_new(JOB_GET_AGENT);
        snprintf(job->agent_id, sizeof(job->agent_id), "%s", req->agent_id);
        submit(req, job);
        break;
    }
    case R_AGENT_HEARTBEATS:
        get_heartbeats(req);
        break;
    case R_TRACES:
        post_traces(req);
        break;
    case R_EXECUTIONS:
        get_executions(req);
        break;
    case R_EXECUTION:
        if (strcmp(req->method, "PATCH") == 0) {
            patch_execution(req);
        } else {
            struct job *job = job_new(JOB_GET_EXECUTION);
            snprintf(job->ids[0], sizeof(job->ids[0]), "%s", req->agent_id);
            submit(req, job);
        }
        break;
    case R_EXECUTION_DECISIONS:
        get_decisions(req);
        break;
    case R_EXECUTION_EXPORT:
        get_export(req);
        break;
    case R_STATIC:
        get_static(req);
        break;
    case R_AGENT_ROLLUPS:
        get_rollups(req);
        break;
    case R_AUDIT:
        get_audit(req);
        break;
    case R_AUDIT_VERIFY:
        submit_audit_job(req, JOB_VERIFY_AUDIT);
        break;
    case R_DEBUG_HEALTH:
        submit_audit_job(req, JOB_HEALTH); /* admins only: role_allows() */
        break;
    case R_NONE:
    case R_COUNT:
        break;
    }
}

static bool is_json_type(struct lws *wsi)
{
    char ct[128];
    if (lws_hdr_copy(wsi, ct, sizeof(ct), WSI_TOKEN_HTTP_CONTENT_TYPE) <= 0)
        return false;
    size_t n = strcspn(ct, ";");
    while (n && ct[n - 1] == ' ')
        n--;
    return n == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

/* The answers to a request that is not authenticated, indexed by enum auth_result. */
static const struct {
    int status;
    const char *code, *message, *header;
} auth_errors[] = {
    [AUTH_MISSING] = {401, "unauthorized",
                      "this route needs an Authorization: Bearer <token> header",
                      "WWW-Authenticate: Bearer realm=\"aei\"\r\n"},
    [AUTH_INVALID] = {401, "invalid_token",
                      "the bearer token is not valid: check AEI_TOKEN or ask for a new token",
                      "WWW-Authenticate: Bearer realm=\"aei\", error=\"invalid_token\"\r\n"},
    [AUTH_UNAVAILABLE] = {503, "store_unavailable",
                          "the token could not be checked: the store is unavailable; retry after "
                          "the Retry-After delay",
                          "Retry-After: 1\r\n"},
};

/* Checks the Authorization header, or when query_token (WebSocket, which browsers cannot give
 * headers) also a "token" query parameter. */
/* Finds who the caller is from its Authorization header or, where query_token, its ?token=
 * parameter; authz (AUTHZ_MAX bytes) receives the credentials used, "" when there were none. */
#define AUTHZ_MAX 1024
static enum auth_result authorize(struct server *srv, struct lws *wsi, bool query_token,
                                  struct principal *who, char *authz)
{
    authz[0] = '\0';
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION) >= AUTHZ_MAX)
        return AUTH_INVALID; /* longer than any token we issue */
    char token[QUERY_VALUE_MAX];
    if (lws_hdr_copy(wsi, authz, AUTHZ_MAX, WSI_TOKEN_HTTP_AUTHORIZATION) <= 0) {
        authz[0] = '\0';
        if (query_token && query_param(wsi, "token", token, sizeof(token)))
            snprintf(authz, AUTHZ_MAX, "Bearer %s", token);
    }
    return principals_authenticate(srv->principals, authz[0] ? authz : NULL, aei_mono_us(), who);
}

/* Whether the credentials an open WebSocket connected with still hold (ws_still_allowed_fn):
 * a revoked token's connections are closed. A store that cannot answer closes nothing. */
static bool still_allowed(void *arg, const char *authorization)
{
    struct server *srv = arg;
    struct principal who;
    return principals_authenticate(srv->principals, authorization, aei_mono_us(), &who) !=
           AUTH_INVALID;
}

/* Whether the caller's role may use the route at all; whether the resource is its team's (or,
 * for an agent, its own) is checked with the resource. Agents' tokens send telemetry, end their
 * executions and take their commands; viewers read; operators also act; admins do everything,
 * in every team. */
static bool role_allows(const struct request *req)
{
    enum role role = req->who.role;
    bool reads = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    switch (req->route) {
    case R_HEALTHZ:
    case R_STATIC:
    case R_ME:
    case R_NONE:
    case R_COUNT:
        return true;
    case R_METRICS:
    case R_DEBUG_HEALTH:
        return role == ROLE_ADMIN;
    case R_HEARTBEATS:
    case R_TRACES:
        return role == ROLE_AGENT || role >= ROLE_OPERATOR;
    case R_EXECUTION:
        return reads ? role >= ROLE_VIEWER : role == ROLE_AGENT || role >= ROLE_OPERATOR;
    case R_AGENT_COMMANDS:
        return true; /* an agent reads its own, viewers their team's */
    case R_COMMAND_ACK:
        return role == ROLE_AGENT || role == ROLE_ADMIN;
    case R_AGENT_ACTION:
        return role >= ROLE_OPERATOR;
    default:
        return role >= ROLE_VIEWER;
    }
}

/* Whether a browser's Origin may open a WebSocket: the same origin as the Host it asked for,
 * unless --ws-origins lists it or is "*". Clients that send no Origin are not browsers. */
static bool origin_allowed(struct server *srv, struct lws *wsi)
{
    char origin[256], host[256];
    if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) <= 0)
        return true;
    if (lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) <= 0)
        return false; /* longer than any origin we would allow */
    if (srv->ws_origins) {
        if (strcmp(srv->ws_origins, "*") == 0)
            return true;
        size_t n = strlen(origin);
        for (const char *p = srv->ws_origins; *p;) {
            size_t len = strcspn(p, ",");
            if (len == n && strncasecmp(p, origin, n) == 0)
                return true;
            p += len + (p[len] == ',');
        }
    }
    const char *sep = strstr(origin, "://");
    return sep && lws_hdr_copy(wsi, host, sizeof(host), WSI_TOKEN_HOST) > 0 &&
           strcasecmp(sep + 3, host) == 0;
}

/* Refuses a WebSocket upgrade with an HTTP error answer written now. Returns what the
 * LWS_CALLBACK_HTTP_CONFIRM_UPGRADE callback must return to say so. */
static int refuse_upgrade(struct lws *wsi, int status, const char *code, const char *message,
                          const char *headers)
{
    struct buf body = {0}, out = {0};
    bool close = true;
    error_body(&body, code, message, NULL);
    render_answer(wsi, &out, status, "application/json", body.data, body.len, headers, false,
                  &close);
    metrics_count_http("GET", "/ws", status);
    int rc = lws_write(wsi, (unsigned char *)out.data + LWS_PRE, out.len - LWS_PRE,
                       LWS_WRITE_HTTP_FINAL) < 0
                 ? -1
                 : 1;
    buf_free(&body);
    buf_free(&out);
    return rc;
}

/* Decides on a WebSocket upgrade before it happens: the path ("/" on the --ws address, "/ws"
 * on the HTTP one), the token and the browser origin. Tokens in the URL are never logged. */
static int confirm_upgrade(struct server *srv, struct lws *wsi)
{
    if (stop_requested)
        return refuse_upgrade(wsi, 503, "stopping", "the server is stopping; reconnect shortly",
                              "Retry-After: 1\r\n");
    char path[256] = "";
    lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI);
    const char *want = lws_get_vhost(wsi) == srv->ws_vhost ? "/" : "/ws";
    if (strcmp(path, want) != 0) {
        char msg[200];
        snprintf(msg, sizeof(msg), "no WebSocket at %.100s: connect to %s on this address", path,
                 want);
        return refuse_upgrade(wsi, 404, "not_found", msg, NULL);
    }
    struct principal who;
    char authz[AUTHZ_MAX];
    enum auth_result auth = authorize(srv, wsi, true, &who, authz);
    if (auth != AUTH_OK) {
        const char *message = auth == AUTH_MISSING
                                  ? "a WebSocket needs ?token=<token> or an Authorization: "
                                    "Bearer <token> header"
                                  : auth_errors[auth].message;
        return refuse_upgrade(wsi, auth_errors[auth].status, auth_errors[auth].code, message,
                              auth_errors[auth].header);
    }
    if (!origin_allowed(srv, wsi))
        return refuse_upgrade(wsi, 403, "origin_not_allowed",
                              "this page's origin may not open the live feed: start aeid with "
                              "--ws-origins listing it",
                              NULL);
    return 0;
}

/* The largest body a request may have: --max-body, and more for a batch of decisions. */
static size_t body_limit(const struct request *req)
{
    return req->route == R_TRACES ? req->srv->max_body * TRACE_BODY_FACTOR : req->srv->max_body;
}

/* Closes a request's connection from outside its callbacks: at its next WRITEABLE, which comes at
 * once unless the client has stopped reading, and else by lws's timeout. The timeout alone is not
 * enough: lws sets it again with every byte that arrives, so a client trickling its body could
 * keep pushing it back (and on libev a timer armed outside lws's timer callback can wait for the
 * next tick). */
static void close_soon(struct request *req)
{
    req->closing = true;
    lws_callback_on_writable(req->wsi);
    lws_set_timeout(req->wsi, PENDING_TIMEOUT_HTTP_CONTENT, LWS_TO_KILL_ASYNC);
}

/* A request whose body has not fully arrived by its deadline is dropped with its connection:
 * lws's own timeout restarts with every byte, so a client trickling a body would hold on. */
static void request_deadline(lws_sorted_usec_list_t *sul)
{
    struct request *req = lws_container_of(sul, struct request, deadline);
    if (req->wsi && !req->answering && !req->job)
        close_soon(req);
}

/* Whether a route answers a method: one of route_methods[route], or HEAD where GET is. */
static bool method_allowed(enum route route, const char *method)
{
    if (strcmp(method, "HEAD") == 0)
        method = "GET";
    size_t n = strlen(method);
    for (const char *p = route_methods[route]; *p; p += strspn(p, ", ")) {
        size_t len = strcspn(p, ", ");
        if (len == n && strncmp(p, method, n) == 0)
            return true;
        p += len;
    }
    return false;
}

/* Starts a request when its headers have arrived: auth, route, method, content checks. Errors
 * are deferred until the body has been read, or sent now when there is none. */
static int on_headers(struct server *srv, struct lws *wsi, struct pss *pss, const char *uri)
{
    struct request *req = calloc(1, sizeof(*req));
    if (!req)
        abort();
    req->srv = srv;
    req->wsi = wsi;
    req->method = request_method(wsi);
    pss->req = req;
    req->route = match_route(uri, req);
    if (req->route == R_NONE && static_is_path(uri))
        req->route = R_STATIC;
    if (stop_requested)
        req->close_after = true;

    char clen[24] = "";
    int64_t body_len = 0;
    bool chunked = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) >= (int)sizeof(clen))
        body_len = INT64_MAX; /* more digits than any body we take: too large */
    else if (lws_hdr_copy(wsi, clen, sizeof(clen), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0)
        parse_int64(clen, &body_len);
    bool has_body = body_len > 0 || chunked;

    char authz[AUTHZ_MAX];
    enum auth_result auth = req->route == R_HEALTHZ || req->route == R_STATIC
                                ? AUTH_OK
                                : authorize(srv, wsi, false, &req->who, authz);
    if (auth != AUTH_OK) {
        defer_error(req, auth_errors[auth].status, auth_errors[auth].code,
                    auth_errors[auth].message, auth_errors[auth].header);
    } else if (req->route == R_NONE) {
        char msg[320];
        snprintf(msg, sizeof(msg), "no such route: %s %.200s (see docs/api/openapi.yaml)",
                 req->method, uri);
        defer_error(req, 404, "not_found", msg, NULL);
    } else if (!method_allowed(req->route, req->method)) {
        static char allow[R_COUNT][48];
        char msg[320];
        const char *methods = route_methods[req->route];
        snprintf(allow[req->route], sizeof(allow[0]), "Allow: %s%s\r\n", methods,
                 strncmp(methods, "GET", 3) == 0 ? ", HEAD" : "");
        snprintf(msg, sizeof(msg), "%s does not answer %s; use %s", route_names[req->route],
                 req->method, methods);
        defer_error(req, 405, "method_not_allowed", msg, allow[req->route]);
    } else if (!role_allows(req)) {
        char msg[320];
        snprintf(msg, sizeof(msg), "%s %s needs another role: this token's is %s", req->method,
                 route_names[req->route], role_names[req->who.role]);
        defer_error(req, 403, "forbidden", msg, INSUFFICIENT_SCOPE);
    } else if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0 && has_body &&
               !is_json_type(wsi)) {
        defer_error(req, 415, "unsupported_media_type",
                    "send the body with Content-Type: application/json", NULL);
    } else if (body_len > (int64_t)body_limit(req)) {
        char msg[160];
        snprintf(msg, sizeof(msg), "the body is %lld bytes; the limit is %zu bytes",
                 (long long)body_len, body_limit(req));
        defer_error(req, 413, "payload_too_large", msg, NULL);
    }
    if (chunked && !req->pending_status) {
        /* lws 4.1 does not decode chunked request bodies: refuse them clearly and close. */
        defer_error(req, 411, "length_required",
                    "send the body with a Content-Length header; chunked request bodies are not "
                    "supported",
                    NULL);
        req->close_after = true;
        has_body = false;
    }
    if (has_body && body_len > (int64_t)(body_limit(req) + DISCARD_MAX)) {
        /* Too much to read and drop: answer now and close. */
        req->close_after = true;
        has_body = false;
    }
    if (!has_body) {
        dispatch(req);
        return 0;
    }
    lws_sul_schedule(lws_get_context(wsi), 0, &req->deadline, request_deadline,
                     srv->request_timeout_us);
    return 0;
}

static void on_body(struct request *req, const void *in, size_t len)
{
    size_t limit = body_limit(req);
    req->body_seen += len;
    if (req->pending_status) {
        if (req->body_seen > limit + DISCARD_MAX && !req->answering) {
            req->close_after = true;
            dispatch(req);
        }
        return;
    }
    if (req->body_seen > limit) {
        char msg[160];
        snprintf(msg, sizeof(msg), "the body is over the limit of %zu bytes", limit);
        defer_error(req, 413, "payload_too_large", msg, NULL);
        buf_free(&req->body);
        return;
    }
    buf_append(&req->body, in, len);
}

/* Sends the next piece of the answer; then readies the connection for the next request. */
static int on_writeable(struct request *req)
{
    if (req && req->closing)
        return -1;
    if (!req || !req->answering)
        return 0;
    /* An export's next page is being read (and its state is the reader's until it comes back);
     * lws may call WRITEABLE meanwhile for its own reasons. */
    if (req->job)
        return 0;
    struct lws *wsi = req->wsi;
    size_t left = req->out.len - req->out_off;
    size_t n = left > WS_WRITE_MAX ? WS_WRITE_MAX : left;
    bool last = n == left;
    bool more = req->export && req->export->phase != EXPORT_DONE; /* pages still to read */
    if (lws_write(wsi, (unsigned char *)req->out.data + req->out_off, n,
                  last && !more ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
        return -1;
    req->out_off += n;
    if (!last) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (more) {
        /* A stopping server does not wait for a long export: the client sees it cut short
         * (no last chunk) rather than a document silently missing its end. */
        if (stop_requested)
            return -1;
        struct job *job = job_new(JOB_EXPORT_PAGE);
        job->export = req->export;
        submit(req, job);
        return 0;
    }
    if (req->export)
        metrics_observe_export((double)(aei_mono_us() - req->export->started_mono) / 1e6,
                               (uint64_t)(req->export->tree + req->export->waiting));
    bool close = req->close_after;
    struct pss *pss = lws_wsi_user(wsi);
    pss->req = NULL;
    request_free(req);
    if (close)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* Answers a stored batch of decisions: which were new and which were already there. Written
 * directly: it is the answer to every trace batch. */
static void answer_decisions(struct request *req, const struct job *job)
{
    size_t stored = 0;
    for (size_t i = 0; i < job->n_decisions; i++)
        stored += job->stored[i];
    struct buf b = {0};
    buf_reserve(&b, 64 + job->n_decisions * (2 * AEI_ID_MAX + AEI_TIME_LEN + 80));
    buf_printf(&b, "{\"stored\":%zu,\"duplicates\":%zu,\"decisions\":[", stored,
               job->n_decisions - stored);
    for (size_t i = 0; i < job->n_decisions; i++) {
        const struct decision *d = job->decisions[i];
        char ts[AEI_TIME_LEN];
        aei_time_format(d->server_ts, ts);
        /* Ids are from the id alphabet and need no escaping; no printf: this is per decision. */
        buf_puts(&b, i ? ",{\"decision_id\":\"" : "{\"decision_id\":\"");
        buf_puts(&b, d->decision_id);
        buf_puts(&b, "\",\"execution_id\":\"");
        buf_puts(&b, d->execution_id);
        buf_puts(&b, "\",\"timestamp\":\"");
        buf_puts(&b, ts);
        buf_puts(&b, job->stored[i] ? "\",\"stored\":true}" : "\",\"stored\":false}");
    }
    buf_puts(&b, "]}");
    answer(req, 200, "application/json", b.data, b.len, NULL);
    buf_free(&b);
}

/* Answers an ended execution; ending one that has ended otherwise is a conflict. */
static void answer_execution_end(struct request *req, const struct job *job)
{
    const struct execution *e = &job->executions[0];
    if (!job->changed && e->status != job->end.status) {
        char msg[200];
        snprintf(msg, sizeof(msg), "execution \"%s\" has ended already: it is %s", e->execution_id,
                 execution_status_names[e->status]);
        answer_error(req, 409, "conflict", msg, NULL);
        return;
    }
    char *text = trace_render_execution(e);
    answer(req, 200, "application/json", text, strlen(text), NULL);
    free(text);
}

/* The team of a decision's execution, as the store filed it after the commit; NULL when it
 * could not be read (the decision is then not published: its team is not known for sure). */
static const char *team_of(const struct job *job, const char *execution_id)
{
    for (size_t i = 0; i < job->n_executions; i++)
        if (strcmp(job->executions[i].execution_id, execution_id) == 0)
            return job->executions[i].team_id;
    return NULL;
}

/* Publishes what a trace job stored on the topics execution:<id> that clients hold: each new
 * decision (without its depth, which the store knows once its parent has landed: place it under
 * parent_decision_id), then the executions as they now are. */
static void publish_traces(struct server *srv, const struct job *job)
{
    if (job->kind == JOB_PUT_DECISIONS) {
        size_t stored = 0;
        for (size_t i = 0; i < job->n_decisions; i++) {
            const struct decision *d = job->decisions[i];
            stored += job->stored[i];
            if (!job->stored[i] || !ws_watches_execution(srv->ws, d->execution_id))
                continue;
            const char *team = team_of(job, d->execution_id);
            if (!team)
                continue;
            struct buf text = {0};
            decision_write(&text, d, false);
            hub_publish_execution(srv->hub, d->execution_id, team, "decision", "decision",
                                  text.data);
            buf_free(&text);
        }
        metrics_count_decisions(stored, job->n_decisions - stored);
        health_count_decisions(&srv->health, stored);
    }
    for (size_t i = 0; i < job->n_executions; i++) {
        const struct execution *e = &job->executions[i];
        if (!ws_watches_execution(srv->ws, e->execution_id))
            continue;
        char *text = trace_render_execution(e);
        hub_publish_execution(srv->hub, e->execution_id, e->team_id, "execution", "execution",
                              text);
        free(text);
    }
}

/* Commands handed out in heartbeat answers, to be marked delivered in the store. */
struct delivered {
    char (*ids)[AEI_ID_MAX + 1];
    size_t n, cap;
};

static void note_delivered(void *arg, const char *command_id)
{
    struct delivered *d = arg;
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 4;
        if (!(d->ids = realloc(d->ids, d->cap * sizeof(*d->ids))))
            abort();
    }
    snprintf(d->ids[d->n++], sizeof(d->ids[0]), "%s", command_id);
}

/* Answers a committed heartbeat with the agent's open commands (marked delivered the first
 * time they go out). */
static void answer_heartbeat(struct request *req, const char *agent_id, int64_t server_ts)
{
    struct server *srv = req->srv;
    char ts[AEI_TIME_LEN];
    aei_time_format(server_ts, ts);
    struct buf b = {0};
    buf_printf(&b, "{\"agent_id\":\"%s\",\"server_ts\":\"%s\",\"commands\":", agent_id, ts);
    struct hub_agent *a = hub_agent_find(srv->hub, agent_id);
    struct delivered d = {0};
    if (a)
        hub_commands_write(a, &b, HEARTBEAT_COMMANDS_MAX, note_delivered, &d);
    else
        buf_puts(&b, "[]");
    buf_puts(&b, "}");
    answer(req, 200, "application/json", b.data, b.len, NULL);
    buf_free(&b);
    if (d.n) {
        struct job *job = job_new(JOB_MARK_DELIVERED);
        if (!(job->command = calloc(1, sizeof(*job->command))))
            abort();
        job->command->ids = d.ids;
        job->command->n_ids = d.n;
        workers_submit(srv->workers, job);
    }
}

/* What a committed job changes in the live state, whether or not its client still waits: only
 * now does a command go to its agent. */
static void apply_committed(struct server *srv, struct job *job)
{
    struct command_job *cj = job->command;
    struct hub_agent *a;
    switch (job->kind) {
    case JOB_PUT_HEARTBEAT:
        hub_heartbeat(srv->hub, &job->hb, job->received_mono);
        break;
    case JOB_PUT_COMMAND:
        if (!(a = hub_agent_find(srv->hub, cj->c.agent_id)))
            break;
        if (cj->control_after >= 0)
            hub_set_control(srv->hub, a, (enum agent_control)cj->control_after);
        char *json = command_render_for_agent(&cj->c);
        hub_command_add(srv->hub, a, cj->c.command_id, json, true);
        free(json);
        break;
    case JOB_ACK_COMMAND:
        if (cj->changed && (a = hub_agent_find(srv->hub, job->agent_id)))
            hub_command_remove(a, job->ids[0]);
        break;
    default:
        break;
    }
}

/* Answers a stored command: 202, the agent has it from now on. */
static void answer_command(struct request *req, const struct job *job)
{
    const struct command_job *cj = job->command;
    json_t *doc = json_pack("{s:o}", "command", command_to_json(&cj->c));
    if (job->kind == JOB_PUT_COMMAND && cj->c.action == CMD_EXECUTE)
        json_object_set_new(doc, "execution_id", json_string(cj->r.execution_id));
    char *text = json_render(doc);
    answer(req, job->kind == JOB_PUT_COMMAND ? 202 : 200, "application/json", text, strlen(text),
           NULL);
    free(text);
}

/* The server's own jobs, which no request waits for. */
static void finish_own_job(struct server *srv, const struct job *job)
{
    if (!job->rc)
        return;
    const char *what;
    if (job->kind == JOB_AUDIT_CHECKPOINT) {
        what = "audit checkpoint";
        log_warn("could not write the audit checkpoint: %s", aei_strerror(job->rc));
    } else if (job->kind == JOB_MARK_DELIVERED) {
        what = "marking commands delivered";
        log_warn("could not mark %zu commands delivered: %s", job->command->n_ids,
                 aei_strerror(job->rc));
    } else { /* an agent died */
        what = "ending a dead agent's executions";
        log_warn("could not mark the running executions of dead agent %s abandoned: %s",
                 job->agent_id, aei_strerror(job->rc));
    }
    health_note_failure(&srv->health, what, job->rc);
}

/* Answers the request a finished job was for; what a job committed goes to the hub even when
 * its client has gone. */
static void finish_job(struct server *srv, struct job *job)
{
    struct request *req = job->owner;
    if (job->rc == 0)
        publish_traces(srv, job);
    if (job->kind == JOB_PUT_COMMAND && job->command->control_after >= 0)
        json_object_del(srv->controlling, job->command->c.agent_id);
    /* A heartbeat's answer needs its agent id and time, which the hub takes with its strings. */
    char agent_id[AEI_ID_MAX + 1];
    snprintf(agent_id, sizeof(agent_id), "%s", job->hb.agent_id);
    int64_t server_ts = job->hb.server_ts;
    if (job->rc == 0)
        apply_committed(srv, job);
    if (!req) {
        finish_own_job(srv, job);
        return;
    }
    req->job = NULL;
    srv->in_flight--;
    if (!req->wsi) {
        request_free(req); /* the client went away */
        return;
    }
    if (job->kind == JOB_HEALTH) {
        answer_health(req, job);
        return;
    }
    if (job->kind == JOB_EXPORT_PAGE && req->answering && (job->rc || stop_requested)) {
        /* The answer has begun: cut it short, so that the client sees it incomplete. */
        if (job->rc)
            log_error("http: an export of \"%s\" stopped: %s", req->export->execution_id,
                      aei_strerror(job->rc));
        close_soon(req);
        return;
    }
    if (job->kind == JOB_EXPORT_PAGE && job->rc) {
        /* Refused before it began: an ordinary error answer, with no pages to follow. */
        export_free(req->export);
        req->export = NULL;
    }
    if (job->kind == JOB_PUT_COMMAND && job->rc) {
        answer_error(req, 503, "store_unavailable",
                     "the action was not recorded (the store could not commit it) and nothing was "
                     "sent to the agent; retry after the Retry-After delay",
                     "Retry-After: 1\r\n");
        return;
    }
    if (job->kind == JOB_ACK_COMMAND && (job->rc == AEI_ENOTFOUND || job->rc == AEI_ECONFLICT)) {
        char msg[300];
        if (job->rc == AEI_ENOTFOUND)
            snprintf(msg, sizeof(msg), "agent \"%s\" has no command \"%s\"", job->agent_id,
                     job->ids[0]);
        else
            snprintf(msg, sizeof(msg), "command \"%s\" was acknowledged already as %s", job->ids[0],
                     command_status_names[job->command->c.status]);
        answer_error(req, job->rc == AEI_ENOTFOUND ? 404 : 409,
                     job->rc == AEI_ENOTFOUND ? "not_found" : "conflict", msg, NULL);
        return;
    }
    if (job->rc == AEI_ECONFLICT && job->kind == JOB_PUT_DECISIONS) {
        char msg[700];
        snprintf(msg, sizeof(msg),
                 "[%ld].agent_id: execution \"%s\" belongs to agent \"%s\", not \"%s\"; send "
                 "its decisions as \"%s\", or use another execution_id; nothing was stored",
                 job->refused, job->ids[0], job->ids[1], job->decisions[job->refused]->agent_id,
                 job->ids[1]);
        struct problem pb = {.code = "conflict"};
        snprintf(pb.field, sizeof(pb.field), "[%ld].agent_id", job->refused);
        struct buf b = {0};
        error_body(&b, pb.code, msg, &pb);
        answer(req, 409, "application/json", b.data, b.len, NULL);
        buf_free(&b);
        return;
    }
    if (job->rc == AEI_ENOTFOUND) {
        char msg[200];
        /* Another team's or (for an agent's token) another agent's execution answers as
         * GET /api/v0/executions/{id} does for an id that does not exist. */
        if (job->kind == JOB_GET_EXECUTION || job->kind == JOB_LIST_DECISIONS ||
            job->kind == JOB_PUT_DECISIONS || job->kind == JOB_END_EXECUTION ||
            job->kind == JOB_EXPORT_PAGE)
            snprintf(msg, sizeof(msg), "no execution \"%s\": no decision of it has been stored",
                     job->ids[0]);
        else
            snprintf(msg, sizeof(msg), "no agent \"%s\": it has not sent a heartbeat",
                     job->agent_id);
        answer_error(req, 404, "not_found", msg, NULL);
        return;
    }
    if (job->rc == AEI_EINVAL && job->kind == JOB_PUT_DECISIONS) {
        char msg[200];
        snprintf(msg, sizeof(msg), "a decision would sit deeper than %d levels in its tree",
                 TRACE_DEPTH_MAX);
        answer_error(req, 400, "too_deep", msg, NULL);
        return;
    }
    if (job->rc) {
        answer_store_error(req, job->rc);
        return;
    }
    switch (job->kind) {
    case JOB_PUT_HEARTBEAT:
        answer_heartbeat(req, agent_id, server_ts);
        break;
    case JOB_PUT_COMMAND:
    case JOB_ACK_COMMAND:
        answer_command(req, job);
        break;
    case JOB_PUT_DECISIONS:
        answer_decisions(req, job);
        break;
    case JOB_END_EXECUTION:
        answer_execution_end(req, job);
        break;
    case JOB_LIST_AGENTS:
    case JOB_GET_AGENT:
    case JOB_LIST_HEARTBEATS:
    case JOB_LIST_EXECUTIONS:
    case JOB_GET_EXECUTION:
    case JOB_LIST_DECISIONS:
    case JOB_LIST_ROLLUPS:
    case JOB_LIST_AUDIT:
    case JOB_VERIFY_AUDIT:
    case JOB_LIST_COMMANDS:
        answer(req, 200, "application/json", job->body, strlen(job->body), NULL);
        break;
    case JOB_AUDIT_CHECKPOINT:
    case JOB_MARK_DELIVERED:
    case JOB_HEALTH:
        break; /* handled above */
    case JOB_EXPORT_PAGE:
        stream_page(req);
        break;
    case JOB_RETENTION:
        break; /* retention_done()'s */
    }
}

/* Starts a retention run when one is due: its steps go to the store one job at a time. */
static void retention_start(struct server *srv)
{
    int64_t mono = aei_mono_us();
    if (srv->retention_job || stop_requested || mono < srv->retention_next)
        return;
    retention_run_init(&srv->retention_run, &srv->retention,
                       aei_now_us() + srv->retention_clock_offset_us);
    srv->retention_started = mono;
    memset(&srv->retention_counted, 0, sizeof(srv->retention_counted));
    srv->retention_job = job_new(JOB_RETENTION);
    srv->retention_job->retention = &srv->retention_run;
    workers_submit(srv->workers, srv->retention_job);
}

/* Submits the run's next step once its pause is over. */
static void retention_resume(lws_sorted_usec_list_t *sul)
{
    struct server *srv = lws_container_of(sul, struct server, retention_pause);
    srv->retention_pausing = false;
    workers_submit(srv->workers, srv->retention_job);
}

/* A retention step is done: queue the next after a pause of RETENTION_PACE times the step's
 * length, so that retention takes at most a share of the store's time and ingest queued behind
 * a step drains first; or end the run. A failed run ends; the next one resumes where it
 * stopped. */
static void retention_done(struct server *srv, struct job *job)
{
    metrics_count_retention_progress(&srv->retention_run.stats, &srv->retention_counted);
    if (job->rc > 0 && !stop_requested) {
        srv->retention_pausing = true;
        lws_sul_schedule(srv->ctx, 0, &srv->retention_pause, retention_resume,
                         job->step_us * RETENTION_PACE + 1);
        return;
    }
    const struct retention_stats *st = &srv->retention_run.stats;
    int64_t mono = aei_mono_us();
    metrics_count_retention_run((double)(mono - srv->retention_started) / 1e6, job->rc >= 0);
    if (job->rc < 0) {
        log_warn("retention: stopped after %d steps (%s); the next run goes on from there",
                 st->steps, aei_strerror(job->rc));
        health_note_failure(&srv->health, "retention", job->rc);
    } else if (st->rolled_up + st->heartbeats_deleted + st->partitions_dropped +
               st->executions_deleted)
        log_info("retention: rolled up %lld heartbeats, deleted %lld heartbeats, %lld "
                 "partitions, %lld executions (%lld decisions) in %d steps, %.3f s",
                 (long long)st->rolled_up, (long long)st->heartbeats_deleted,
                 (long long)st->partitions_dropped, (long long)st->executions_deleted,
                 (long long)st->decisions_deleted, st->steps,
                 (double)(mono - srv->retention_started) / 1e6);
    retention_run_close(&srv->retention_run);
    srv->retention_job = NULL;
    srv->retention_next = mono + srv->retention_interval_us;
    job_free(job);
}

/* Takes the jobs the workers finished and answers their requests. */
static void drain_completions(struct server *srv)
{
    struct job *job = workers_take_done(srv->workers);
    while (job) {
        struct job *next = job->next;
        if (job->kind == JOB_RETENTION) {
            retention_done(srv, job);
        } else {
            finish_job(srv, job);
            job_free(job);
        }
        job = next;
    }
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct server *srv = the_server;
    struct pss *pss = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return on_headers(srv, wsi, pss, in ? (const char *)in : "/");
    case LWS_CALLBACK_HTTP_BODY:
        if (pss->req)
            on_body(pss->req, in, len);
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (!pss->req)
            return 0;
        if (++pss->req->completions > BODY_COMPLETION_SPIN_MAX) {
            /* Send what answer is ready now, as no WRITEABLE callback will come. */
            struct request *req = pss->req;
            if (req->answering && req->out.len > req->out_off)
                lws_write(wsi, (unsigned char *)req->out.data + req->out_off,
                          req->out.len - req->out_off, LWS_WRITE_HTTP_FINAL);
            log_warn("http: closing a connection that pipelined a request with a body");
            return -1;
        }
        lws_sul_cancel(&pss->req->deadline);
        if (!pss->req->answering && !pss->req->job)
            dispatch(pss->req);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return on_writeable(pss ? pss->req : NULL);
    case LWS_CALLBACK_CLOSED_HTTP:
        if (pss && pss->req) {
            if (pss->req->job)
                pss->req->wsi = NULL; /* freed when its job comes back */
            else
                request_free(pss->req);
            pss->req = NULL;
        }
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (srv && srv->workers)
            drain_completions(srv);
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return confirm_upgrade(srv, wsi);
    case LWS_CALLBACK_ESTABLISHED: {
        /* The upgrade was authenticated; its headers are still there to say by whom. */
        int rc = ws_callback(srv->ws, wsi, reason, &pss->client, in, len);
        struct principal who;
        char authz[AUTHZ_MAX];
        if (rc == 0 && authorize(srv, wsi, true, &who, authz) == AUTH_OK)
            ws_client_set_principal(pss->client, principal_scope(&who),
                                    who.role == ROLE_AGENT ? who.id : NULL, authz);
        else
            rc = -1;
        return rc;
    }
    case LWS_CALLBACK_RECEIVE:
    case LWS_CALLBACK_SERVER_WRITEABLE:
    case LWS_CALLBACK_CLOSED:
        return ws_callback(srv->ws, wsi, reason, &pss->client, in, len);
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    {"http", callback, sizeof(struct pss), 0, 0, NULL, WS_WRITE_MAX},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* Loads every agent's latest state into the hub, so that snapshots and metrics are right from
 * the start. */
/* Loads the agents and their open commands into the hub; keeps the connection, on which the
 * loop looks tokens up. */
static int load_agents(struct server *srv, const char *db_url, char *err, size_t errlen)
{
    struct store *store;
    int rc = store_open(db_url, &store, err, errlen);
    if (rc)
        return rc;
    struct heartbeat *rows;
    struct command *cs;
    size_t n;
    rc = store_list_agents(store, "", -1, &rows, &n);
    if (rc) {
        snprintf(err, errlen, "reading agents from the store: %s", aei_strerror(rc));
        store_close(store);
        return rc;
    }
    int64_t now = aei_now_us();
    for (size_t i = 0; i < n; i++)
        hub_load(srv->hub, &rows[i], now);
    store_free_rows(rows, n);
    struct command_query q = {.open = true, .limit = -1};
    rc = store_list_commands(store, &q, &cs, &n);
    if (rc) {
        snprintf(err, errlen, "reading open commands from the store: %s", aei_strerror(rc));
        store_close(store);
        return rc;
    }
    for (size_t i = n; i-- > 0;) { /* oldest first */
        struct hub_agent *a = hub_agent_find(srv->hub, cs[i].agent_id);
        char *json = command_render_for_agent(&cs[i]);
        if (a)
            hub_command_add(srv->hub, a, cs[i].command_id, json, false);
        free(json);
    }
    store_free_commands(cs, n);
    srv->auth_store = store;
    return 0;
}

static void lws_log_line(int level, const char *line)
{
    /* lws's own errors and warnings; never the request lines, which may carry tokens. At most
     * LWS_LOG_PER_SECOND lines a second: out of file descriptors, lws warns on every accept. */
    enum { LWS_LOG_PER_SECOND = 10 };
    static int64_t second;
    static unsigned printed, dropped;
    int64_t now = aei_mono_us() / 1000000;
    if (now != second) {
        if (dropped)
            log_warn("lws: %u more lines in the last second were not logged", dropped);
        second = now;
        printed = dropped = 0;
    }
    if (printed++ >= LWS_LOG_PER_SECOND) {
        dropped++;
        return;
    }
    log_msg(level == LLL_ERR ? LOG_ERROR : LOG_WARN, "lws: %.*s", (int)strcspn(line, "\n"), line);
}

/* Checks agents' health, sends totals and closes slow subscribers; it also wakes a stopping
 * loop so that it sees its deadline. */
static void tick(lws_sorted_usec_list_t *sul)
{
    struct server *srv = lws_container_of(sul, struct server, tick);
    hub_check_health(srv->hub, aei_now_us());
    ws_tick(srv->ws, aei_mono_us());
    if (aei_mono_us() >= srv->next_recheck_us) {
        srv->next_recheck_us = aei_mono_us() + WS_RECHECK_US;
        ws_recheck(srv->ws, still_allowed, srv);
    }
    retention_start(srv);
    if (srv->audit.checkpoint && srv->workers && !stop_requested &&
        aei_mono_us() >= srv->next_checkpoint_us) {
        /* The reader compares the heads with those it wrote last and appends those that moved. */
        srv->next_checkpoint_us = aei_mono_us() + srv->checkpoint_every_us;
        struct job *job = job_new(JOB_AUDIT_CHECKPOINT);
        if (!(job->audit = calloc(1, sizeof(*job->audit))))
            abort();
        job->audit->state = &srv->audit;
        workers_submit(srv->workers, job);
    }
    lws_sul_schedule(srv->ctx, 0, &srv->tick, tick, TICK_US);
}

/* An agent that died leaves its running executions abandoned. */
static void on_agent_died(void *arg, const char *agent_id, int64_t last_heartbeat)
{
    struct server *srv = arg;
    if (!srv->workers)
        return;
    char ts[AEI_TIME_LEN];
    aei_time_format(last_heartbeat, ts);
    struct job *job = job_new(JOB_END_EXECUTION);
    snprintf(job->agent_id, sizeof(job->agent_id), "%s", agent_id);
    job->end.status = EXEC_ABANDONED;
    job->end.failure_json = json_render(json_pack(
        "{s:s, s:s, s:s}", "reason", "agent_dead", "message",
        "the agent stopped sending heartbeats while the execution ran", "last_heartbeat", ts));
    workers_submit(srv->workers, job);
}

static void on_update(void *arg, const struct hub_update *u)
{
    struct server *srv = arg;
    ws_publish(srv->ws, u);
}

/* Listens on one address; the HTTP API and the WebSocket hub share the protocol callback. */
static struct lws_vhost *listen_on(struct server *srv, const char *name, const char *host, int port,
                                   char *err, size_t errlen)
{
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.vhost_name = name;
    info.port = port;
    info.iface = host;
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND |
                   LWS_SERVER_OPTION_DISABLE_IPV6 * (strchr(host, ':') == NULL);
    info.keepalive_timeout = 30; /* idle keep-alive connections */
    info.timeout_secs = 10;      /* slow clients are dropped */
    struct lws_vhost *vh = lws_create_vhost(srv->ctx, &info);
    if (!vh)
        snprintf(err, errlen,
                 "cannot listen on %s:%d for %s (in use, or not an address of this "
                 "host)",
                 host, port, name);
    return vh;
}

static void notify_loop(void *arg)
{
    lws_cancel_service(arg);
}

int server_run(const struct config *cfg, char *err, size_t errlen)
{
    struct server srv = {.max_body = cfg->max_body,
                         .request_timeout_us = cfg->request_timeout * 1000000LL,
                         .ws_origins = cfg->ws_origins,
                         .web_root = cfg->web_root,
                         .retention = {.heartbeat_days = cfg->heartbeat_retention_days,
                                       .trace_days = cfg->trace_retention_days,
                                       .batch_rows = cfg->retention_batch},
                         .retention_interval_us = cfg->retention_interval_us,
                         .retention_clock_offset_us = cfg->retention_clock_offset_us};
    int rc;
    if (!(srv.controlling = json_object()))
        abort();
    health_init(&srv.health, cfg->db_url);
    srv.audit.checkpoint = cfg->audit_checkpoint;
    srv.checkpoint_every_us = cfg->audit_checkpoint_every_us;
    hb_set_liveness_after(cfg->stale_after_us, cfg->dead_after_us);
    struct hub_settings hs = {.price_per_1k_tokens = cfg->price_per_1k_tokens,
                              .died = on_agent_died};
    srv.hub = hub_new(&hs, on_update, &srv);
    struct ws_settings wss = {.client_buffer = cfg->ws_client_buffer,
                              .slow_consumer_us = cfg->slow_consumer_us};
    srv.ws = ws_new(srv.hub, &wss);
    the_server = &srv;
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_line);

    rc = load_agents(&srv, cfg->db_url, err, errlen);
    if (rc)
        goto err_hub;
    /* The key is read once the store is open: whether a missing key may be made depends on the
     * audit rows the store already holds. */
    struct audit_key key;
    rc = audit_key_open(srv.auth_store, cfg->db_url, cfg->audit_key_file, "--audit-key", true, &key,
                        err, errlen);
    if (rc)
        goto err_hub;
    memcpy(srv.audit.key, key.bytes, AUDIT_KEY_LEN);
    if (key.created)
        fprintf(stderr,
                "aeid: created the audit key %s (mode 0600); keep it outside backups of "
                "the database\n",
                key.path);
    /* The checkpoint file is made now, so that a path that cannot be written stops aeid here
     * rather than in a log line later, and so that a verifier pointed at it finds it. */
    if (srv.audit.checkpoint &&
        (rc = audit_checkpoint_append(srv.audit.checkpoint, NULL, 0, 0, err, errlen)) != 0)
        goto err_hub;
    srv.principals = principals_new(cfg->token, srv.auth_store);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
    info.max_http_header_data = 4096;
    info.timeout_secs = 10; /* slow clients are dropped */
    info.server_string = "aeid";
    bool polls = false;
    srv.loop = loop_new(&info, cfg->epoll, &polls);
    if (!srv.loop) {
        snprintf(err, errlen, "cannot start the network service (libwebsockets)");
        rc = AEI_EUNAVAILABLE;
        goto err_hub;
    }
    if (polls)
        log_warn("--event-loop epoll: libev or libwebsockets' libev plugin (Debian: "
                 "libwebsockets-evlib-ev) is missing; polling instead");
    srv.ctx = loop_context(srv.loop);
    srv.http_vhost = listen_on(&srv, "http", cfg->http_host, cfg->http_port, err, errlen);
    srv.ws_vhost =
        srv.http_vhost ? listen_on(&srv, "ws", cfg->ws_host, cfg->ws_port, err, errlen) : NULL;
    if (!srv.ws_vhost) {
        rc = AEI_EUNAVAILABLE;
        goto err_context;
    }
    srv.workers = workers_start(cfg->db_url, notify_loop, srv.ctx, err, errlen);
    if (!srv.workers) {
        rc = AEI_EUNAVAILABLE;
        goto err_context;
    }
    /* IPv6 addresses go in brackets, so that the URLs can be copied. */
    bool http6 = strchr(cfg->http_host, ':'), ws6 = strchr(cfg->ws_host, ':');
    fprintf(stderr, "aeid %s: listening on http://%s%s%s:%d and ws://%s%s%s:%d/, store %s\n",
            AEI_VERSION, http6 ? "[" : "", cfg->http_host, http6 ? "]" : "", cfg->http_port,
            ws6 ? "[" : "", cfg->ws_host, ws6 ? "]" : "", cfg->ws_port,
            store_sqlite_file(cfg->db_url) ? cfg->db_url : "postgres");
    tick(&srv.tick);

    /* After a stop request, go on until every accepted request has its answer written. */
    for (;;) {
        if (stop_requested) {
            if (!srv.stop_deadline) {
                log_info("stopping: finishing %zu requests", srv.in_flight + srv.answering);
                srv.stop_deadline = aei_mono_us() + DRAIN_US;
                ws_close_all(srv.ws);
            }
            /* Subscribers are gone once they have had their close frames. */
            if (srv.in_flight + srv.answering + ws_connections(srv.ws) == 0 ||
                aei_mono_us() >= srv.stop_deadline)
                break;
        }
        if (loop_run_once(srv.loop) < 0)
            break;
    }
    lws_sul_cancel(&srv.tick);
    lws_sul_cancel(&srv.retention_pause);
    if (srv.retention_pausing) {
        retention_run_close(&srv.retention_run);
        job_free(srv.retention_job);
    }
    rc = 0;

    /* Workers stop before the context goes, as they wake it; jobs they finish now are not
     * answered, and their requests are freed with their connections or here. */
    for (struct job *job = workers_stop(srv.workers), *next; job; job = next) {
        struct request *req = job->owner;
        next = job->next;
        if (job->kind == JOB_RETENTION) {
            retention_run_close(&srv.retention_run);
            job_free(job);
            continue;
        }
        if (req) {
            req->job = NULL;
            if (!req->wsi)
                request_free(req);
        }
        job_free(job);
    }
    srv.workers = NULL;
    /* Rows committed since the last interval reach the checkpoint now rather than at the next
     * start: the workers have finished, so nothing appends after this. */
    int cp = audit_api_checkpoint(srv.auth_store, &srv.audit);
    if (cp)
        log_warn("could not write the audit checkpoint on the way out: %s", aei_strerror(cp));
err_context:
    loop_free(srv.loop);
    srv.loop = NULL;
    srv.ctx = NULL;
err_hub:
    principals_free(srv.principals);
    store_close(srv.auth_store);
    json_decref(srv.controlling);
    ws_free(srv.ws);
    hub_free(srv.hub);
    free(srv.audit.written);
    the_server = NULL;
    return rc;
}
