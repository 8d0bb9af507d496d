/* agent.c - libaei's agent: configuration, heartbeat and trace threads, the bounded queue. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static const char *const STATUSES[] = {"idle", "processing", "waiting", "error", "complete"};
static const char *const METRICS[] = {"cpu_pct", "mem_pct", "tokens_per_min", "cost_usd",
                                      "confidence"};
#define NMETRICS (sizeof METRICS / sizeof METRICS[0])
#define BATCH_MAX 1000 /* the server takes at most this many decisions per request */

struct aei_agent_config aei_agent_config_default(void)
{
    return (struct aei_agent_config){
        .heartbeat_interval_s = 5,
        .batch_size = 100,
        .flush_interval_s = 0.2,
        .queue_limit = 10000,
        .timeout_s = 5,
        .retry_base_s = 0.1,
        .retry_cap_s = 10,
    };
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void aei_uuid4(char out[AEI_ID_LEN])
{
    unsigned char b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n > 0)
            got += (size_t)n;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, AEI_ID_LEN,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

/* A seed for the jitter's generator that differs between processes and between agents: the
 * system's random source, else (getrandom() refused, say in an old sandbox) the clock, the
 * process id and the agent's address mixed together. */
static uint64_t jitter_seed(const struct aei_agent *a)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) == (ssize_t)sizeof seed)
        return seed;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32) ^
           (uint64_t)(uintptr_t)a;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* The limits aeid puts on a decision (src/server/trace.c, docs/api/openapi.yaml). */
#define ID_MAX 128
#define ID_EXPECTED "a string of 1-128 characters from A-Z a-z 0-9 . _ : -"
#define KIND_MAX 64
#define TEXT_MAX 4096     /* characters */
#define CONTEXT_MAX 16384 /* bytes of compact JSON */
#define ALTERNATIVES_MAX 64
#define AMOUNT_MAX 1e15

/* Whether s is an id aeid takes: 1 to max characters from A-Z a-z 0-9 . _ : -. */
static bool is_id(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (n >= max || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' || c == '-'))
            return false;
    }
    return n >= 1;
}

static int check_config(const struct aei_agent_config *c, struct aei_error *err)
{
    const char *bad = NULL;
    if (!c->server || !*c->server)
        bad = "server: required (HOST:PORT or http://HOST:PORT)";
    else if (strstr(c->server, "://") && strncmp(c->server, "http://", 7) != 0)
        bad = "server: expected HOST:PORT or http://HOST:PORT";
    else if (!c->token || !*c->token)
        bad = "token: required";
    else if (!c->agent_id || !*c->agent_id)
        bad = "agent_id: required";
    else if (!is_id(c->agent_id, ID_MAX))
        bad = "agent_id: expected " ID_EXPECTED;
    else if (c->batch_size < 1 || c->batch_size > BATCH_MAX)
        bad = "batch_size: expected 1 to 1000";
    else if (c->queue_limit < 1)
        bad = "queue_limit: expected at least 1";
    else if (!(c->heartbeat_interval_s > 0))
        bad = "heartbeat_interval_s: expected a positive number of seconds";
    else if (!(c->timeout_s > 0) || !(c->flush_interval_s > 0))
        bad = "timeout_s and flush_interval_s: expected positive numbers of seconds";
    else if (!(c->retry_base_s > 0) || !(c->retry_cap_s > 0))
        bad = "retry_base_s and retry_cap_s: expected positive numbers of seconds";
    if (!bad)
        return AEI_OK;
    aei__set_error(err, 0, "invalid_argument", "%s", bad);
    return AEI_EINVAL;
}

struct aei_agent *aei_agent_new(const struct aei_agent_config *config, struct aei_error *err)
{
    if (check_config(config, err) != AEI_OK)
        return NULL;
    pthread_once(&curl_once, curl_init);
    struct aei_agent *a = calloc(1, sizeof *a);
    if (!a)
        goto nomem;
    a->cfg = *config;
    const char *srv = config->server;
    if (strncmp(srv, "http://", 7) == 0)
        srv += 7;
    size_t n = strlen(srv);
    while (n && srv[n - 1] == '/')
        n--;
    a->server_url = malloc(n + 8);
    a->auth_header = malloc(strlen(config->token) + 32);
    a->token = strdup(config->token);
    a->agent_id = strdup(config->agent_id);
    a->name = dup_or_null(config->name);
    a->parent_agent_id = dup_or_null(config->parent_agent_id);
    if (!a->server_url || !a->auth_header || !a->token || !a->agent_id ||
        (config->name && !a->name) || (config->parent_agent_id && !a->parent_agent_id)) {
        aei_agent_free(a);
        goto nomem;
    }
    snprintf(a->server_url, n + 8, "http://%.*s", (int)n, srv);
    sprintf(a->auth_header, "Authorization: Bearer %s", a->token);
    a->cfg.server = a->server_url;
    a->cfg.token = a->token;
    a->cfg.agent_id = a->agent_id;
    a->cfg.name = a->name;
    a->cfg.parent_agent_id = a->parent_agent_id;
    snprintf(a->status, sizeof a->status, "idle");
    a->rng = jitter_seed(a);
    pthread_mutex_init(&a->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&a->wake, &attr);
    pthread_condattr_destroy(&attr);
    return a;
nomem:
    aei__set_error(err, 0, "no_memory", "out of memory");
    return NULL;
}

/* ---- state reported in heartbeats ---------------------------------------------------------- */

int aei_agent_set_status(struct aei_agent *a, const char *status)
{
    for (size_t i = 0; status && i < sizeof STATUSES / sizeof STATUSES[0]; i++) {
        if (strcmp(status, STATUSES[i]) == 0) {
            pthread_mutex_lock(&a->lock);
            snprintf(a->status, sizeof a->status, "%s", status);
            pthread_mutex_unlock(&a->lock);
            return AEI_OK;
        }
    }
    aei__log(a, AEI_LOG_ERROR, "status: expected idle, processing, waiting, error or complete");
    return AEI_EINVAL;
}

int aei_agent_set_metric(struct aei_agent *a, const char *name, double value)
{
    for (size_t i = 0; name && i < NMETRICS; i++) {
        if (strcmp(name, METRICS[i]) == 0 && isfinite(value)) {
            pthread_mutex_lock(&a->lock);
            a->metrics[i] = value;
            a->metric_set[i] = true;
            pthread_mutex_unlock(&a->lock);
            return AEI_OK;
        }
    }
    aei__log(a, AEI_LOG_ERROR,
             "metric %s: expected a finite cpu_pct, mem_pct, tokens_per_min, cost_usd or "
             "confidence",
             name ? name : "(null)");
    return AEI_EINVAL;
}

void aei_agent_stats(struct aei_agent *a, struct aei_stats *out)
{
    pthread_mutex_lock(&a->lock);
    *out = a->stats;
    out->queued = a->queue_len;
    pthread_mutex_unlock(&a->lock);
}

/* ---- heartbeats ---------------------------------------------------------------------------- */

static void rfc3339_now(char out[40])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%06ldZ", ts.tv_nsec / 1000);
}

static char *heartbeat_json(struct aei_agent *a)
{
    char ts[40];
    rfc3339_now(ts);
    json_t *hb = json_object();
    json_t *metrics = json_object();
    pthread_mutex_lock(&a->lock);
    json_object_set_new(hb, "agent_id", json_string(a->agent_id));
    json_object_set_new(hb, "status", json_string(a->status));
    for (size_t i = 0; i < NMETRICS; i++)
        if (a->metric_set[i])
            json_object_set_new(metrics, METRICS[i], json_real(a->metrics[i]));
    pthread_mutex_unlock(&a->lock);
    json_object_set_new(hb, "metrics", metrics);
    if (a->parent_agent_id)
        json_object_set_new(hb, "parent_agent_id", json_string(a->parent_agent_id));
    if (a->name)
        json_object_set_new(hb, "name", json_string(a->name));
    json_object_set_new(hb, "timestamp", json_string(ts));
    json_object_set_new(hb, "schema_version", json_string("0"));
    char *s = json_dumps(hb, JSON_COMPACT);
    json_decref(hb);
    return s;
}

/* ---- commands ------------------------------------------------------------------------------ */

static void report(struct aei_agent *a, const struct aei_error *e)
{
    if (e->http_status && a->cfg.on_error)
        a->cfg.on_error(e, a->cfg.user);
}

static const char *const ACK_STATUSES[] = {"succeeded", "failed", "rejected"};

/* The command passed on with this id, or NULL. Called with the lock held. */
static struct seen_command *seen_find(struct aei_agent *a, const char *id)
{
    for (size_t i = 0; i < SEEN_COMMANDS; i++)
        if (a->seen[i].id && strcmp(a->seen[i].id, id) == 0)
            return &a->seen[i];
    return NULL;
}

/* Takes note of what pause, resume and terminate ask, before the application hears of them. */
static void obey(struct aei_agent *a, const char *action)
{
    if (!action)
        return;
    pthread_mutex_lock(&a->lock);
    if (strcmp(action, "pause") == 0) {
        a->paused = true;
    } else if (strcmp(action, "resume") == 0) {
        a->paused = a->terminated = false;
    } else if (strcmp(action, "terminate") == 0) {
        a->terminated = true;
        a->paused = false;
    }
    pthread_cond_broadcast(&a->wake);
    pthread_mutex_unlock(&a->lock);
}

/* Runs on_command; returns its status and sets *result to its result (malloc'd JSON) or NULL. */
static int handle(struct aei_agent *a, json_t *command, char **result)
{
    *result = NULL;
    obey(a, json_string_value(json_object_get(command, "action")));
    if (!a->cfg.on_command)
        return AEI_COMMAND_SUCCEEDED;
    char *text = json_dumps(command, JSON_COMPACT | JSON_SORT_KEYS);
    char *buf = calloc(1, AEI_RESULT_MAX);
    int status = AEI_COMMAND_FAILED;
    if (text && buf) {
        status = (int)a->cfg.on_command(text, buf, AEI_RESULT_MAX, a->cfg.user);
        buf[AEI_RESULT_MAX - 1] = '\0';
        if (status < AEI_COMMAND_SUCCEEDED || status > AEI_COMMAND_REJECTED) {
            aei__log(a, AEI_LOG_ERROR,
                     "on_command returned %d, not an aei_command_status: "
                     "acknowledged as failed",
                     status);
            status = AEI_COMMAND_FAILED;
        }
        json_t *parsed = *buf ? json_loads(buf, JSON_DECODE_ANY, NULL) : NULL;
        if (parsed)
            *result = strdup(buf);
        else if (*buf)
            aei__log(a, AEI_LOG_WARNING,
                     "on_command's result is not JSON; acknowledged without it");
        json_decref(parsed);
    }
    free(text);
    free(buf);
    return status;
}

/* POST .../commands/{id}/ack. The same status twice is harmless, so one that fails is simply
 * sent again when the next heartbeat answer hands the command out again. */
static void acknowledge(struct aei_agent *a, CURL *curl, const char *id, int status,
                        const char *result)
{
    json_t *body = json_pack("{s:s}", "status", ACK_STATUSES[status]);
    if (result)
        json_object_set_new(body, "result", json_loads(result, JSON_DECODE_ANY, NULL));
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    char *agent = curl_easy_escape(curl, a->agent_id, 0);
    char *command = curl_easy_escape(curl, id, 0);
    struct aei_error e = {0};
    int rc = AEI_ENOMEM;
    if (text && agent && command) {
        char path[1024];
        snprintf(path, sizeof path, "/api/v0/agents/%s/commands/%s/ack", agent, command);
        json_t *answer = NULL;
        rc = aei__request(a, curl, "POST", path, text, a->cfg.max_attempts ? 0 : 5, false, &answer,
                          &e);
        json_decref(answer);
    }
    curl_free(agent);
    curl_free(command);
    free(text);
    if (rc == AEI_EREFUSED && result && strcmp(e.field, "result") == 0) {
        /* A result the server will not keep (a real number, too big): say so instead. */
        json_t *instead = json_pack("{s:s}", "unsendable_result", e.message);
        char *note = json_dumps(instead, JSON_COMPACT);
        json_decref(instead);
        if (note)
            acknowledge(a, curl, id, status, note);
        free(note);
        return;
    }
    pthread_mutex_lock(&a->lock);
    if (rc == AEI_OK)
        a->stats.acks++;
    else
        a->stats.ack_failures++;
    pthread_mutex_unlock(&a->lock);
    if (rc == AEI_EREFUSED) {
        aei__log(a, AEI_LOG_ERROR, "the server refused the acknowledgement of %s: %s %s", id,
                 e.code, e.message);
        report(a, &e);
    } else if (rc != AEI_OK) {
        aei__log(a, AEI_LOG_WARNING, "acknowledging %s failed (%s); sent again when handed out", id,
                 e.message);
    }
}

/* Passes a command on once and acknowledges it; one passed on before is only acknowledged
 * again (or left alone while on_command still runs). */
static void deliver(struct aei_agent *a, CURL *curl, json_t *command)
{
    const char *id = json_string_value(json_object_get(command, "command_id"));
    if (!id || !*id) {
        aei__log(a, AEI_LOG_ERROR, "a command without a command_id: ignored");
        return;
    }
    pthread_mutex_lock(&a->lock);
    struct seen_command *s = seen_find(a, id);
    bool seen = s != NULL;
    int status = seen ? s->status : -1;
    char *result = seen && s->result ? strdup(s->result) : NULL;
    if (!seen) {
        s = &a->seen[a->seen_next];
        free(s->id);
        free(s->result);
        *s = (struct seen_command){strdup(id), -1, NULL};
        a->seen_next = (a->seen_next + 1) % SEEN_COMMANDS;
        a->stats.commands++;
    }
    pthread_mutex_unlock(&a->lock);
    if (seen && status < 0)
        return;
    if (!seen) {
        status = handle(a, command, &result);
        pthread_mutex_lock(&a->lock);
        if ((s = seen_find(a, id))) {
            s->status = status;
            s->result = result ? strdup(result) : NULL;
        }
        pthread_mutex_unlock(&a->lock);
    }
    acknowledge(a, curl, id, status, result);
    free(result);
}

bool aei_agent_is_paused(struct aei_agent *a)
{
    pthread_mutex_lock(&a->lock);
    bool paused = a->paused;
    pthread_mutex_unlock(&a->lock);
    return paused;
}

bool aei_agent_is_terminated(struct aei_agent *a)
{
    pthread_mutex_lock(&a->lock);
    bool terminated = a->terminated;
    pthread_mutex_unlock(&a->lock);
    return terminated;
}

static int heartbeat_with(struct aei_agent *a, CURL *curl, int attempts, struct aei_error *err)
{
    char *body = heartbeat_json(a);
    if (!body) {
        aei__set_error(err, 0, "no_memory", "out of memory");
        return AEI_ENOMEM;
    }
    json_t *answer = NULL;
    int rc =
        aei__request(a, curl, "POST", "/api/v0/heartbeats", body, attempts, false, &answer, err);
    free(body);
    if (rc != AEI_OK)
        return rc;
    pthread_mutex_lock(&a->lock);
    a->stats.heartbeats++;
    pthread_mutex_unlock(&a->lock);
    json_t *commands = json_object_get(answer, "commands");
    size_t i;
    json_t *c;
    json_array_foreach(commands, i, c) deliver(a, curl, c);
    json_decref(answer);
    return AEI_OK;
}

int aei_agent_heartbeat(struct aei_agent *a, struct aei_error *err)
{
    CURL *curl = curl_easy_init();
    if (!curl) {
        aei__set_error(err, 0, "no_memory", "curl_easy_init failed");
        return AEI_ENOMEM;
    }
    int rc = heartbeat_with(a, curl, 0, err);
    curl_easy_cleanup(curl);
    return rc;
}

static struct timespec abs_in(double seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (seconds < 0)
        seconds = 0;
    double ns = (double)ts.tv_nsec + (seconds - floor(seconds)) * 1e9;
    ts.tv_sec += (time_t)seconds + (time_t)(ns / 1e9);
    ts.tv_nsec = (long)fmod(ns, 1e9);
    return ts;
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *heartbeat_loop(void *arg)
{
    struct aei_agent *a = arg;
    CURL *curl = curl_easy_init();
    double next_at = mono_now() + a->cfg.heartbeat_interval_s;
    for (;;) {
        pthread_mutex_lock(&a->lock);
        while (!a->stopping && mono_now() < next_at) {
            struct timespec until = abs_in(next_at - mono_now());
            pthread_cond_timedwait(&a->wake, &a->lock, &until);
        }
        bool stopping = a->stopping;
        pthread_mutex_unlock(&a->lock);
        if (stopping)
            break;
        next_at += a->cfg.heartbeat_interval_s;
        struct aei_error e;
        if (curl && heartbeat_with(a, curl, 0, &e) != AEI_OK) {
            pthread_mutex_lock(&a->lock);
            a->stats.heartbeat_failures++;
            pthread_mutex_unlock(&a->lock);
            aei__log(a, AEI_LOG_WARNING, "heartbeat failed: %s %s", e.code, e.message);
            report(a, &e);
        }
    }
    if (curl)
        curl_easy_cleanup(curl);
    return NULL;
}

bool aei_agent_wait_if_paused(struct aei_agent *a, double timeout_s)
{
    double until = timeout_s < 0 ? INFINITY : mono_now() + timeout_s;
    pthread_mutex_lock(&a->lock);
    while (a->paused && !a->terminated && !a->stopping && mono_now() < until) {
        /* Woken by obey() and stop; the bound also covers an agent never started. */
        struct timespec at = abs_in(fmin(until - mono_now(), 0.2));
        pthread_cond_timedwait(&a->wake, &a->lock, &at);
    }
    bool go_on = !a->terminated && !a->stopping;
    pthread_mutex_unlock(&a->lock);
    return go_on;
}

/* ---- traces -------------------------------------------------------------------------------- */

static void set_str(json_t *obj, const char *key, const char *value)
{
    if (value)
        json_object_set_new(obj, key, json_string(value));
}

static void set_num(json_t *obj, const char *key, double value)
{
    if (value >= 0 && isfinite(value))
        json_object_set_new(obj, key, json_real(value));
}

static json_t *alternatives_json(const struct aei_decision *d)
{
    json_t *alts = json_array();
    for (size_t i = 0; i < d->n_alternatives; i++) {
        json_t *alt = json_object();
        set_str(alt, "option", d->alternatives[i].option);
        set_str(alt, "reason_rejected", d->alternatives[i].reason_rejected);
        set_num(alt, "score", d->alternatives[i].score);
        json_array_append_new(alts, alt);
    }
    return alts;
}

static char *decision_json(struct aei_agent *a, const struct aei_decision *d, const char *id)
{
    char ts[40];
    rfc3339_now(ts);
    json_t *o = json_object();
    json_object_set_new(o, "decision_id", json_string(id));
    json_object_set_new(o, "execution_id", json_string(d->execution_id));
    json_object_set_new(o, "agent_id", json_string(a->agent_id));
    json_object_set_new(o, "timestamp", json_string(ts));
    set_str(o, "parent_decision_id", d->parent_decision_id);
    json_t *reasoning =
        d->reasoning_json ? json_loads(d->reasoning_json, JSON_DECODE_ANY, NULL) : NULL;
    if (reasoning)
        json_object_set_new(o, "reasoning_context", reasoning);
    else
        set_str(o, "reasoning_context", d->reasoning);
    set_num(o, "confidence_score", d->confidence);
    if (d->n_alternatives)
        json_object_set_new(o, "alternatives_considered", alternatives_json(d));
    set_str(o, "selected_outcome", d->outcome);
    set_str(o, "kind", d->kind);
    set_num(o, "duration_ms", d->duration_ms);
    set_num(o, "tokens", d->tokens);
    set_num(o, "cost_usd", d->cost_usd);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* Counts a drop and says so, at most every 5 s. Called with the lock held. */
static void count_drop(struct aei_agent *a)
{
    a->stats.dropped++;
    double now = aei__now(a);
    if (a->stats.dropped == 1 || now - a->drop_logged_at >= 5) {
        a->drop_logged_at = now;
        aei__log(a, AEI_LOG_WARNING, "trace queue full (%zu); dropped %llu decisions so far",
                 a->cfg.queue_limit, (unsigned long long)a->stats.dropped);
    }
}

/* Characters in UTF-8 text: the bytes that do not continue a character. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* Whether an optional number is AEI_UNSET (any negative) or within [0, max]. */
static bool number_ok(double v, double max)
{
    return v < 0 || (isfinite(v) && v <= max);
}

/* Bytes of the reasoning as aeid measures it (compact JSON), or -1 for reasoning_json that is
 * JSON but neither an object nor a string. */
static long context_size(const struct aei_decision *d)
{
    json_t *v = d->reasoning_json ? json_loads(d->reasoning_json, JSON_DECODE_ANY, NULL) : NULL;
    if (!v && !d->reasoning)
        return 0;
    if (v && !json_is_object(v) && !json_is_string(v)) {
        json_decref(v);
        return -1;
    }
    if (!v)
        v = json_string(d->reasoning);
    char *text = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    long size = text ? (long)strlen(text) : 0;
    free(text);
    json_decref(v);
    return size;
}

/* What aeid would refuse in d, written to why, or false when it takes it. aeid refuses a
 * batch whole, so a decision it would refuse must never be queued next to good ones. */
static bool decision_is_bad(const struct aei_decision *d, const char *id, char *why, size_t len)
{
    const char *field = NULL, *expected = NULL;
    char buf[96];
    long context;
    if (!d->execution_id || !is_id(d->execution_id, ID_MAX))
        field = "execution_id", expected = ID_EXPECTED;
    else if (!is_id(id, ID_MAX))
        field = "decision_id", expected = ID_EXPECTED;
    else if (d->parent_decision_id && !is_id(d->parent_decision_id, ID_MAX))
        field = "parent_decision_id", expected = ID_EXPECTED " (or NULL)";
    else if (d->parent_decision_id && strcmp(d->parent_decision_id, id) == 0)
        field = "parent_decision_id", expected = "a decision other than decision_id itself";
    else if (!number_ok(d->confidence, 100))
        field = "confidence", expected = "a number from 0 to 100, or AEI_UNSET";
    else if (!number_ok(d->duration_ms, AMOUNT_MAX))
        field = "duration_ms", expected = "a number from 0 to 1e15, or AEI_UNSET";
    else if (!number_ok(d->tokens, AMOUNT_MAX))
        field = "tokens", expected = "a number from 0 to 1e15, or AEI_UNSET";
    else if (!number_ok(d->cost_usd, AMOUNT_MAX))
        field = "cost_usd", expected = "a number from 0 to 1e15, or AEI_UNSET";
    else if (d->kind && !is_id(d->kind, KIND_MAX))
        field = "kind", expected = "a name of 1-64 characters from A-Z a-z 0-9 . _ : - (or NULL)";
    else if (d->outcome && utf8_chars(d->outcome) > TEXT_MAX)
        field = "outcome", expected = "at most 4096 characters";
    else if (d->n_alternatives > ALTERNATIVES_MAX || (d->n_alternatives && !d->alternatives))
        field = "alternatives", expected = "at most 64 alternatives";
    else if ((context = context_size(d)) < 0)
        field = "reasoning_json", expected = "a JSON object or string";
    else if (context > CONTEXT_MAX) {
        field = "reasoning";
        snprintf(buf, sizeof buf, "at most %d bytes as JSON (this is %ld)", CONTEXT_MAX, context);
        expected = buf;
    }
    for (size_t i = 0; !field && i < d->n_alternatives; i++) {
        const struct aei_alternative *alt = &d->alternatives[i];
        if (!alt->option || utf8_chars(alt->option) > TEXT_MAX ||
            (alt->reason_rejected && utf8_chars(alt->reason_rejected) > TEXT_MAX)) {
            snprintf(buf, sizeof buf, "alternatives[%zu]", i);
            field = buf;
            expected = "an option of at most 4096 characters, and a reason_rejected of at most "
                       "4096 characters or NULL";
        }
    }
    if (!field)
        return false;
    snprintf(why, len, "%s: expected %s", field, expected);
    return true;
}

int aei_trace_emit(struct aei_agent *a, const struct aei_decision *d, char *id_out)
{
    if (!d) {
        aei__log(a, AEI_LOG_ERROR, "aei_trace_emit: no decision (NULL)");
        return AEI_EINVAL;
    }
    char id[AEI_ID_LEN];
    char why[256];
    /* A longer decision_id would not fit id_out; it was once cut short without a word. */
    if (d->decision_id && strlen(d->decision_id) >= sizeof id) {
        aei__log(a, AEI_LOG_ERROR,
                 "aei_trace_emit: decision_id: expected at most %d characters (AEI_ID_LEN - 1) "
                 "from A-Z a-z 0-9 . _ : -; the decision was not queued",
                 AEI_ID_LEN - 1);
        return AEI_EINVAL;
    }
    if (d->decision_id)
        snprintf(id, sizeof id, "%s", d->decision_id);
    else
        aei_uuid4(id);
    if (decision_is_bad(d, id, why, sizeof why)) {
        aei__log(a, AEI_LOG_ERROR, "aei_trace_emit: %s; the decision was not queued", why);
        return AEI_EINVAL;
    }
    if (id_out)
        memcpy(id_out, id, AEI_ID_LEN);
    struct queued *q = malloc(sizeof *q);
    char *json = q ? decision_json(a, d, id) : NULL;
    if (!json) {
        free(q);
        return AEI_ENOMEM;
    }
    q->json = json;
    q->next = NULL;
    pthread_mutex_lock(&a->lock);
    if (a->queue_len >= a->cfg.queue_limit) {
        count_drop(a);
        pthread_mutex_unlock(&a->lock);
        free(json);
        free(q);
        return AEI_EFULL;
    }
    if (a->tail)
        a->tail->next = q;
    else
        a->head = q;
    a->tail = q;
    a->queue_len++;
    if (a->queue_len - a->in_flight >= a->cfg.batch_size)
        pthread_cond_broadcast(&a->wake);
    pthread_mutex_unlock(&a->lock);
    return AEI_OK;
}

/* The first n queued decisions as one JSON array. Only the trace thread removes entries, so
 * they stay put while the lock is not held. */
static char *batch_body(struct queued *q, size_t n)
{
    size_t len = 3;
    struct queued *p = q;
    for (size_t i = 0; i < n; i++, p = p->next)
        len += strlen(p->json) + 1;
    char *body = malloc(len);
    if (!body)
        return NULL;
    char *w = body;
    *w++ = '[';
    for (size_t i = 0; i < n; i++, q = q->next) {
        if (i)
            *w++ = ',';
        size_t l = strlen(q->json);
        memcpy(w, q->json, l);
        w += l;
    }
    *w++ = ']';
    *w = '\0';
    return body;
}

static void drop_front(struct aei_agent *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct queued *q = a->head;
        a->head = q->next;
        free(q->json);
        free(q);
    }
    if (!a->head)
        a->tail = NULL;
    a->queue_len -= n;
}

/* Sends a batch; true when it is done with (stored, or refused for what it holds). */
static bool send_batch(struct aei_agent *a, CURL *curl, const char *body, size_t n)
{
    json_t *answer = NULL;
    struct aei_error e;
    int rc = aei__request(a, curl, "POST", "/api/v0/traces", body, 0, true, &answer, &e);
    if (rc == AEI_OK) {
        pthread_mutex_lock(&a->lock);
        a->stats.batches++;
        a->stats.decisions_sent += (uint64_t)json_integer_value(json_object_get(answer, "stored"));
        a->stats.duplicates += (uint64_t)json_integer_value(json_object_get(answer, "duplicates"));
        pthread_mutex_unlock(&a->lock);
        json_decref(answer);
        return true;
    }
    if (rc == AEI_EREFUSED) {
        /* Refused for what it holds: retrying cannot help. Counted and reported, not kept. */
        pthread_mutex_lock(&a->lock);
        a->stats.refused += n;
        pthread_mutex_unlock(&a->lock);
        aei__log(a, AEI_LOG_ERROR, "the server refused %zu decisions: HTTP %d %s: %s", n,
                 e.http_status, e.code, e.message);
        report(a, &e);
        return true;
    }
    aei__log(a, AEI_LOG_WARNING, "sending %zu decisions failed: %s", n, e.message);
    return false;
}

/* Waits for a full batch, the flush interval or a stop. Returns the batch size to send now
 * (0 to exit); called and returns with the lock held. */
static size_t next_batch(struct aei_agent *a)
{
    for (;;) {
        double deadline = mono_now() + a->cfg.flush_interval_s;
        while (!a->stopping && mono_now() < deadline &&
               (!a->queue_len || (!a->flushers && a->queue_len < a->cfg.batch_size))) {
            struct timespec until = abs_in(deadline - mono_now());
            pthread_cond_timedwait(&a->wake, &a->lock, &until);
        }
        if (!a->queue_len) {
            if (a->stopping)
                return 0;
            continue;
        }
        if (a->stopping && aei__now(a) >= a->stop_by)
            return 0;
        return a->queue_len < a->cfg.batch_size ? a->queue_len : a->cfg.batch_size;
    }
}

static void *trace_loop(void *arg)
{
    struct aei_agent *a = arg;
    CURL *curl = curl_easy_init();
    pthread_mutex_lock(&a->lock);
    for (;;) {
        size_t n = curl ? next_batch(a) : 0;
        if (!n)
            break;
        a->in_flight = n;
        struct queued *first = a->head;
        pthread_mutex_unlock(&a->lock);
        char *body = batch_body(first, n);
        bool done = body && send_batch(a, curl, body, n);
        free(body);
        pthread_mutex_lock(&a->lock);
        a->in_flight = 0;
        if (done)
            drop_front(a, n); /* else they stay at the front, in order: nothing is lost */
        pthread_cond_broadcast(&a->wake);
        if (!done && a->stopping)
            break;
    }
    pthread_mutex_unlock(&a->lock);
    if (curl)
        curl_easy_cleanup(curl);
    return NULL;
}

int aei_agent_flush(struct aei_agent *a, double timeout_s)
{
    double deadline = mono_now() + timeout_s;
    pthread_mutex_lock(&a->lock);
    a->flushers++;
    pthread_cond_broadcast(&a->wake);
    while (a->queue_len && mono_now() < deadline) {
        struct timespec until = abs_in(fmin(0.05, deadline - mono_now()));
        pthread_cond_timedwait(&a->wake, &a->lock, &until);
    }
    a->flushers--;
    int rc = a->queue_len ? AEI_ETIMEOUT : AEI_OK;
    pthread_mutex_unlock(&a->lock);
    return rc;
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

int aei_agent_start(struct aei_agent *a, struct aei_error *err)
{
    CURL *curl = curl_easy_init();
    if (!curl) {
        aei__set_error(err, 0, "no_memory", "curl_easy_init failed");
        return AEI_ENOMEM;
    }
    struct aei_error first;
    int rc = heartbeat_with(a, curl, 1, &first);
    curl_easy_cleanup(curl);
    if (rc == AEI_EREFUSED) {
        if (err)
            *err = first;
        return rc;
    }
    if (rc != AEI_OK)
        aei__log(a, AEI_LOG_WARNING, "first heartbeat failed, retrying in the background: %s",
                 first.message);
    pthread_mutex_lock(&a->lock);
    if (a->started) {
        pthread_mutex_unlock(&a->lock);
        return AEI_OK;
    }
    a->stopping = false;
    bool ok = pthread_create(&a->hb_thread, NULL, heartbeat_loop, a) == 0;
    if (ok && pthread_create(&a->tr_thread, NULL, trace_loop, a) != 0) {
        a->stopping = true;
        pthread_cond_broadcast(&a->wake);
        pthread_mutex_unlock(&a->lock);
        pthread_join(a->hb_thread, NULL);
        pthread_mutex_lock(&a->lock);
        ok = false;
    }
    a->started = ok;
    pthread_mutex_unlock(&a->lock);
    if (!ok) {
        aei__set_error(err, 0, "no_threads", "could not start libaei's threads");
        return AEI_ENOMEM;
    }
    if (err) /* started either way; an unreachable server's error is kept for the curious */
        *err = rc == AEI_OK ? (struct aei_error){0} : first;
    return AEI_OK;
}

int aei_agent_stop(struct aei_agent *a, double timeout_s)
{
    pthread_mutex_lock(&a->lock);
    bool started = a->started;
    a->stopping = true;
    a->stop_by = aei__now(a) + timeout_s;
    pthread_cond_broadcast(&a->wake);
    pthread_mutex_unlock(&a->lock);
    if (started) {
        pthread_join(a->hb_thread, NULL);
        pthread_join(a->tr_thread, NULL);
    }
    pthread_mutex_lock(&a->lock);
    a->started = false;
    size_t left = a->queue_len;
    pthread_mutex_unlock(&a->lock);
    if (left)
        aei__log(a, AEI_LOG_WARNING, "stopped with %zu decisions unsent", left);
    return left ? AEI_ETIMEOUT : AEI_OK;
}

void aei_agent_free(struct aei_agent *a)
{
    if (!a)
        return;
    if (a->started)
        aei_agent_stop(a, 10);
    if (a->auth_header) { /* fully made: the lock and queue exist */
        drop_front(a, a->queue_len);
        for (size_t i = 0; i < SEEN_COMMANDS; i++) {
            free(a->seen[i].id);
            free(a->seen[i].result);
        }
    }
    free(a->server_url);
    free(a->auth_header);
    free(a->token);
    free(a->agent_id);
    free(a->name);
    free(a->parent_agent_id);
    free(a);
}

/* ---- executions ---------------------------------------------------------------------------- */

int aei_execution_end(struct aei_agent *a, const char *execution_id, const char *status,
                      const char *failure_json, struct aei_error *err)
{
    if (!execution_id || !*execution_id || !status) {
        aei__set_error(err, 0, "invalid_argument", "execution_id and status are required");
        return AEI_EINVAL;
    }
    json_t *failure = failure_json ? json_loads(failure_json, JSON_DECODE_ANY, NULL) : NULL;
    if (failure_json && !failure) {
        aei__set_error(err, 0, "invalid_argument", "failure_json: not valid JSON");
        return AEI_EINVAL;
    }
    pthread_mutex_lock(&a->lock);
    bool started = a->started;
    pthread_mutex_unlock(&a->lock);
    if (started)
        aei_agent_flush(a, 10);
    CURL *curl = curl_easy_init();
    json_t *body = json_object();
    json_object_set_new(body, "status", json_string(status));
    if (failure)
        json_object_set_new(body, "failure", failure);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    char *escaped = curl ? curl_easy_escape(curl, execution_id, 0) : NULL;
    int rc = AEI_ENOMEM;
    if (text && escaped) {
        char path[1024];
        snprintf(path, sizeof path, "/api/v0/executions/%s", escaped);
        json_t *answer = NULL;
        rc = aei__request(a, curl, "PATCH", path, text, 0, true, &answer, err);
        json_decref(answer);
    } else {
        aei__set_error(err, 0, "no_memory", "out of memory");
    }
    curl_free(escaped);
    free(text);
    if (curl)
        curl_easy_cleanup(curl);
    return rc;
}
