/* health.c - what GET /api/v0/debug/health reports: heartbeat and decision rates over the last
 * minute, the last error answers, a timed store probe and the newest audit rows */
#include "server/health.h"
#include "aei/error.h"
#include "common/json.h"
#include "common/time.h"
#include "server/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The rate windows reported, in seconds. */
static const int rate_windows[] = {10, 60};

void health_init(struct health *h, const char *db_url)
{
    memset(h, 0, sizeof(*h));
    h->started_mono = aei_mono_us();
    h->started_ts = aei_now_us();
    h->store_backend = store_sqlite_file(db_url) ? "sqlite" : "postgres";
}

void health_rate_add(struct health_rate *r, int64_t now_s, uint64_t n)
{
    size_t i = (size_t)(now_s % HEALTH_RATE_SECONDS);
    if (r->second[i] != now_s) {
        /* The slot last counted a second a minute or more ago: start it afresh. */
        r->second[i] = now_s;
        r->count[i] = 0;
    }
    r->count[i] += n;
}

double health_rate_per_second(const struct health_rate *r, int64_t now_s, int seconds)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < HEALTH_RATE_SECONDS; i++)
        if (r->count[i] && r->second[i] <= now_s && r->second[i] > now_s - seconds)
            sum += r->count[i];
    return (double)sum / seconds;
}

static int64_t now_second(void)
{
    return aei_mono_us() / 1000000;
}

void health_count_heartbeats(struct health *h, uint64_t n)
{
    health_rate_add(&h->heartbeats, now_second(), n);
}

void health_count_decisions(struct health *h, uint64_t n)
{
    health_rate_add(&h->decisions, now_second(), n);
}

/* Takes the next slot of the ring, stamped now. */
static struct health_error *next_error(struct health *h)
{
    struct health_error *e = &h->errors[h->n_errors++ % HEALTH_ERRORS_MAX];
    memset(e, 0, sizeof(*e));
    e->ts = aei_now_us();
    return e;
}

void health_note_answer(struct health *h, const char *method, const char *route, int status,
                        const char *body, size_t len)
{
    struct health_error *e = next_error(h);
    snprintf(e->where, sizeof(e->where), "%s %s", method, route);
    e->status = status;
    snprintf(e->code, sizeof(e->code), "http_%d", status);
    /* Error answers are small documents that this server wrote itself. */
    json_t *doc = json_loadb(body, len, 0, NULL);
    json_t *err = json_object_get(doc, "error");
    const char *code = json_string_value(json_object_get(err, "code"));
    const char *message = json_string_value(json_object_get(err, "message"));
    if (code)
        snprintf(e->code, sizeof(e->code), "%s", code);
    snprintf(e->message, sizeof(e->message), "%s", message ? message : "");
    json_decref(doc);
}

void health_note_failure(struct health *h, const char *what, int rc)
{
    struct health_error *e = next_error(h);
    snprintf(e->where, sizeof(e->where), "%s", what);
    snprintf(e->code, sizeof(e->code), "%s",
             rc == AEI_EUNAVAILABLE ? "store_unavailable" : "store");
    snprintf(e->message, sizeof(e->message), "%s", aei_strerror(rc));
}

/* {"ok": false, "error": "..."} for a failed store call. */
static json_t *store_failure(int rc)
{
    return json_pack("{s:b, s:s}", "ok", 0, "error", aei_strerror(rc));
}

int health_probe(struct store *s, struct audit_job *a, char **fragment)
{
    struct heartbeat *rows;
    size_t n;
    int64_t start = aei_mono_us();
    int rc = store_list_agents(s, "", 1, &rows, &n);
    double ms = (double)(aei_mono_us() - start) / 1e3;
    json_t *probe = rc ? store_failure(rc) : json_pack("{s:b}", "ok", 1);
    json_object_set_new(probe, "query_ms", json_real(ms));
    if (rc == 0)
        store_free_rows(rows, n);

    /* The newest rows of whatever the caller may see (submit() set the team scope). */
    a->q = (struct audit_query){.team_id = a->q.team_id,
                                .from = INT64_MIN,
                                .to = INT64_MAX,
                                .before_ts = INT64_MAX,
                                .before_id = INT64_MAX,
                                .limit = HEALTH_AUDIT_SAMPLE};
    char *page = NULL;
    start = aei_mono_us();
    rc = audit_api_page(s, a, &page);
    ms = (double)(aei_mono_us() - start) / 1e3;
    json_t *sample = rc ? store_failure(rc) : json_pack("{s:b}", "ok", 1);
    json_object_set_new(sample, "query_ms", json_real(ms));
    json_t *rows_doc = page ? json_loads(page, 0, NULL) : NULL;
    json_t *sampled = json_object_get(rows_doc, "rows");
    json_object_set_new(sample, "rows", sampled ? json_incref(sampled) : json_array());
    json_decref(rows_doc);
    free(page);

    *fragment = json_render(json_pack("{s:o, s:o}", "probe", probe, "audit_sample", sample));
    return 0;
}

/* A number of milliseconds, or null for the negative "none" of a latency summary. */
static json_t *ms_or_null(double ms)
{
    return ms < 0 ? json_null() : json_real(ms);
}

static json_t *latency_json(enum metrics_latency which)
{
    struct latency_summary l;
    metrics_latency_summary(which, &l);
    return json_pack("{s:I, s:o, s:o, s:o}", "count", (json_int_t)l.count, "mean_ms",
                     ms_or_null(l.mean_ms), "p50_ms", ms_or_null(l.p50_ms), "p99_ms",
                     ms_or_null(l.p99_ms));
}

static json_t *rates_json(const struct health_rate *r, int64_t now_s)
{
    json_t *o = json_object();
    for (size_t i = 0; i < sizeof(rate_windows) / sizeof(rate_windows[0]); i++) {
        char key[24];
        snprintf(key, sizeof(key), "per_second_%ds", rate_windows[i]);
        json_object_set_new(o, key, json_real(health_rate_per_second(r, now_s, rate_windows[i])));
    }
    return o;
}

/* The errors kept, newest first. */
static json_t *errors_json(const struct health *h)
{
    json_t *list = json_array();
    uint64_t kept = h->n_errors < HEALTH_ERRORS_MAX ? h->n_errors : HEALTH_ERRORS_MAX;
    for (uint64_t k = 1; k <= kept; k++) {
        const struct health_error *e = &h->errors[(h->n_errors - k) % HEALTH_ERRORS_MAX];
        char ts[AEI_TIME_LEN];
        aei_time_format(e->ts, ts);
        /* Messages may quote what a client sent, which need not be UTF-8. */
        json_array_append_new(list,
                              json_pack("{s:s, s:o, s:o, s:s, s:o}", "ts", ts, "where",
                                        json_string_lossy(e->where), "status",
                                        e->status ? json_integer(e->status) : json_null(), "code",
                                        e->code, "message", json_string_lossy(e->message)));
    }
    return list;
}

char *health_render(const struct health *h, const struct health_ws *ws, const char *fragment)
{
    int64_t now_s = now_second();
    char started[AEI_TIME_LEN], now[AEI_TIME_LEN];
    aei_time_format(h->started_ts, started);
    aei_time_format(aei_now_us(), now);
    json_t *reader = json_loads(fragment ? fragment : "", 0, NULL);
    json_t *probe = json_object_get(reader, "probe");
    json_t *store =
        json_pack("{s:s, s:O, s:{s:o, s:o}}", "backend", h->store_backend, "probe",
                  probe ? probe : json_null(), "latency", "commit",
                  latency_json(METRICS_LATENCY_COMMIT), "read", latency_json(METRICS_LATENCY_READ));
    json_t *sample = json_object_get(reader, "audit_sample");
    json_t *doc = json_pack(
        "{s:s, s:s, s:s, s:f, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:o}, s:{s:o, s:o}, "
        "s:{s:I, s:o}, s:O}",
        "version", AEI_VERSION, "started", started, "now", now, "uptime_seconds",
        (double)(aei_mono_us() - h->started_mono) / 1e6, "store", store, "websocket", "connections",
        (json_int_t)ws->connections, "subscribed", (json_int_t)ws->subscribed, "agents_all",
        (json_int_t)ws->agents_all, "agent_topics", (json_int_t)ws->agent_topics,
        "execution_topics", (json_int_t)ws->execution_topics, "command_topics",
        (json_int_t)ws->command_topics, "push_latency", latency_json(METRICS_LATENCY_PUSH), "rates",
        "heartbeats", rates_json(&h->heartbeats, now_s), "decisions",
        rates_json(&h->decisions, now_s), "errors", "total", (json_int_t)h->n_errors, "recent",
        errors_json(h), "audit_sample", sample ? sample : json_null());
    json_decref(reader);
    return json_render(doc);
}
