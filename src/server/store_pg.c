/* store_pg.c - the PostgreSQL store (libpq; no session state, so it works through pgbouncer) */
#include "aei/error.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/time.h"
#include "server/store.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long a statement may go unanswered before its connection is given up as lost. */
#define STATEMENT_TIMEOUT_MS 10000

struct store_pg {
    struct store base;
    PGconn *conn;
    bool broken;      /* a statement timed out: reconnect before the next */
    struct buf batch; /* reused for the JSON of each heartbeat batch */
};

/* One statement, hence one transaction and one round trip, for a whole batch: the batch arrives
 * as one JSON array; every row goes to heartbeats, the rows marked latest update agents. */
static const char SQL_PUT_BATCH[] =
    "WITH b AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x("
    "agent_id text, name text, status text, cpu_pct float8, mem_pct float8, "
    "tokens_per_min float8, cost_usd float8, confidence float8, parent_agent_id text, "
    "child_agent_ids jsonb, labels jsonb, agent_ts bigint, server_ts bigint, latest bool, "
    "first_ts bigint, ord int)),"
    " ins AS (INSERT INTO heartbeats (" STORE_AGENT_COLUMNS ", server_ts) "
    "SELECT " STORE_AGENT_COLUMNS ", server_ts FROM b ORDER BY ord) "
    "INSERT INTO agents (" STORE_AGENT_COLUMNS ", last_heartbeat, first_seen) "
    "SELECT " STORE_AGENT_COLUMNS ", server_ts, first_ts FROM b WHERE latest " STORE_UPSERT_AGENT;
static const char SQL_LIST_AGENTS[] =
    STORE_SELECT_AGENTS "WHERE agent_id > $1 ORDER BY agent_id LIMIT $2";
static const char SQL_GET_AGENT[] = STORE_SELECT_AGENTS "WHERE agent_id = $1";
static const char SQL_LIST_HBS[] = STORE_SELECT_HEARTBEATS
    "WHERE agent_id = $1 AND server_ts >= $2 AND server_ts < $3 AND (server_ts, id) > ($4, $5) "
    "ORDER BY server_ts, id LIMIT $6";

/* The first line of libpq's message, without the trailing newline. */
static const char *first_line(const char *msg, char *out, size_t n)
{
    snprintf(out, n, "%s", msg);
    out[strcspn(out, "\n")] = '\0';
    return out;
}

/* Returns the result of a statement, or NULL if the connection is lost or the server does not
 * answer within STATEMENT_TIMEOUT_MS; reconnects first if the last statement lost it. */
static PGresult *run(struct store_pg *s, const char *sql, int nparams, const char *const *params)
{
    if (s->broken || PQstatus(s->conn) != CONNECTION_OK) {
        PQreset(s->conn);
        if (PQstatus(s->conn) != CONNECTION_OK)
            return NULL;
        s->broken = false;
        log_info("store: reconnected to PostgreSQL");
    }
    if (!PQsendQueryParams(s->conn, sql, nparams, NULL, params, NULL, NULL, 0))
        return NULL;
    int64_t deadline = aei_mono_us() + STATEMENT_TIMEOUT_MS * 1000LL;
    while (PQisBusy(s->conn)) {
        struct pollfd pfd = {.fd = PQsocket(s->conn), .events = POLLIN};
        int64_t left_ms = (deadline - aei_mono_us()) / 1000;
        int ready = left_ms > 0 ? poll(&pfd, 1, (int)left_ms) : 0;
        if (ready == 0) {
            /* Dropping the connection ends the statement's transaction on the server. */
            log_error("postgres: no answer within %d ms; reconnecting", STATEMENT_TIMEOUT_MS);
            s->broken = true;
            return NULL;
        }
        if (ready < 0 && errno != EINTR)
            return NULL;
        if (ready > 0 && !PQconsumeInput(s->conn))
            return NULL;
    }
    PGresult *res = PQgetResult(s->conn), *extra;
    while ((extra = PQgetResult(s->conn)))
        PQclear(extra);
    return res;
}

/* Maps a failed result to an AEI_E* code and logs why. Frees res. */
static int fail(struct store_pg *s, PGresult *res, const char *what)
{
    char line[256];
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    log_error("postgres: %s: %s", what,
              first_line(res         ? PQresultErrorMessage(res)
                         : s->broken ? "the server did not answer in time"
                                     : PQerrorMessage(s->conn),
                         line, sizeof(line)));
    PQclear(res);
    /* Lost connections, shutdowns, exhausted resources and serialisation conflicts pass. */
    if (s->broken || PQstatus(s->conn) != CONNECTION_OK || !state || strncmp(state, "08", 2) == 0 ||
        strncmp(state, "57P", 3) == 0 || strncmp(state, "53", 2) == 0 ||
        strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
        return AEI_EUNAVAILABLE;
    return AEI_EIO;
}

static int command(struct store_pg *s, const char *sql, int nparams, const char *const *params,
                   const char *what)
{
    PGresult *res = run(s, sql, nparams, params);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
        return fail(s, res, what);
    PQclear(res);
    return 0;
}

static int pg_migrate(struct store_pg *s, char *err, size_t errlen)
{
    char line[256];
    PGresult *res = PQexec(s->conn,
                           /* The advisory lock serialises migrations across nodes. */
                           "BEGIN; SELECT pg_advisory_xact_lock(290275672065); "
                           "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY "
                           "KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL); "
                           "SELECT coalesce(max(version), 0) FROM schema_migrations");
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        goto err_res;
    int have = atoi(PQgetvalue(res, 0, 0)), known = 0;
    PQclear(res);
    while (store_pg_migrations[known].version)
        known++;
    if (have > known) {
        snprintf(err, errlen,
                 "database schema version %d is newer than this aeid knows (%d): upgrade aeid",
                 have, known);
        PQclear(PQexec(s->conn, "ROLLBACK"));
        return AEI_EINVAL;
    }
    for (int i = have; i < known; i++) {
        const struct migration *m = &store_pg_migrations[i];
        res = PQexec(s->conn, m->sql);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            goto err_res;
        PQclear(res);
        char version[16];
        snprintf(version, sizeof(version), "%d", m->version);
        const char *params[] = {version, m->name};
        res = PQexecParams(s->conn,
                           "INSERT INTO schema_migrations VALUES ($1, $2, "
                           "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint)",
                           2, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            goto err_res;
        PQclear(res);
        log_info("store: applied postgres migration %04d_%s", m->version, m->name);
    }
    res = PQexec(s->conn, "COMMIT");
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        goto err_res;
    PQclear(res);
    return 0;

err_res:
    snprintf(err, errlen, "migrating the PostgreSQL database: %s",
             first_line(PQresultErrorMessage(res), line, sizeof(line)));
    PQclear(res);
    PQclear(PQexec(s->conn, "ROLLBACK"));
    return AEI_EIO;
}

/* Appends one heartbeat as a JSON object whose members match the recordset in SQL_PUT_BATCH. */
static void append_json(struct buf *b, size_t ord, const struct heartbeat *hb, bool latest,
                        int64_t first_ts)
{
    buf_printf(b, "{\"ord\":%zu,\"agent_id\":\"%s\",\"status\":\"%s\"", ord, hb->agent_id,
               hb_status_names[hb->status]);
    if (hb->name) {
        json_t *name = json_string(hb->name);
        char *enc = json_dumps(name, JSON_ENCODE_ANY);
        buf_printf(b, ",\"name\":%s", enc);
        free(enc);
        json_decref(name);
    }
    for (int m = 0; m < HB_METRIC_COUNT; m++)
        if (hb->has_metric[m])
            buf_printf(b, ",\"%s\":%.17g", hb_metric_names[m], hb->metric[m]);
    if (hb->parent_agent_id)
        buf_printf(b, ",\"parent_agent_id\":\"%s\"", hb->parent_agent_id);
    buf_printf(b, ",\"child_agent_ids\":%s,\"labels\":%s", hb->children_json, hb->labels_json);
    if (hb->has_agent_ts)
        buf_printf(b, ",\"agent_ts\":%lld", (long long)hb->agent_ts);
    buf_printf(b, ",\"server_ts\":%lld,\"latest\":%s,\"first_ts\":%lld}", (long long)hb->server_ts,
               latest ? "true" : "false", (long long)first_ts);
}

static int pg_put_heartbeats(struct store *base, struct heartbeat *const *hbs, size_t n,
                             const bool *latest, const int64_t *first_ts)
{
    struct store_pg *s = (struct store_pg *)base;
    buf_reset(&s->batch);
    buf_puts(&s->batch, "[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_puts(&s->batch, ",");
        append_json(&s->batch, i, hbs[i], latest[i], first_ts[i]);
    }
    buf_puts(&s->batch, "]");
    const char *params[] = {s->batch.data};
    return command(s, SQL_PUT_BATCH, 1, params, "storing heartbeats");
}

static char *value_dup(PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return NULL;
    char *p = strdup(PQgetvalue(res, row, col));
    if (!p)
        abort();
    return p;
}

/* Reads one row in STORE_ROW_COLUMNS order. */
static void read_row(PGresult *res, int r, struct heartbeat *hb)
{
    memset(hb, 0, sizeof(*hb));
    snprintf(hb->agent_id, sizeof(hb->agent_id), "%s", PQgetvalue(res, r, 0));
    hb->name = value_dup(res, r, 1);
    int status = hb_status_parse(PQgetvalue(res, r, 2));
    hb->status = status < 0 ? HB_ERROR : (enum hb_status)status;
    for (int m = 0; m < HB_METRIC_COUNT; m++) {
        hb->has_metric[m] = !PQgetisnull(res, r, 3 + m);
        hb->metric[m] = strtod(PQgetvalue(res, r, 3 + m), NULL);
    }
    hb->parent_agent_id = value_dup(res, r, 8);
    hb->children_json = value_dup(res, r, 9);
    hb->labels_json = value_dup(res, r, 10);
    hb->has_agent_ts = !PQgetisnull(res, r, 11);
    hb->agent_ts = strtoll(PQgetvalue(res, r, 11), NULL, 10);
    hb->server_ts = strtoll(PQgetvalue(res, r, 12), NULL, 10);
    hb->first_seen = strtoll(PQgetvalue(res, r, 13), NULL, 10);
    hb->id = strtoll(PQgetvalue(res, r, 14), NULL, 10);
}

static int query_rows(struct store_pg *s, const char *sql, int nparams, const char *const *params,
                      struct heartbeat **out, size_t *n)
{
    PGresult *res = run(s, sql, nparams, params);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        return fail(s, res, "reading rows");
    int rows = PQntuples(res);
    struct heartbeat *hbs = calloc(rows ? (size_t)rows : 1, sizeof(*hbs));
    if (!hbs)
        abort();
    for (int r = 0; r < rows; r++)
        read_row(res, r, &hbs[r]);
    PQclear(res);
    *out = hbs;
    *n = (size_t)rows;
    return 0;
}

static int pg_list_agents(struct store *base, const char *after, int limit, struct heartbeat **out,
                          size_t *n)
{
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", limit);
    const char *params[] = {after, limit < 0 ? NULL : lim}; /* LIMIT NULL: no limit */
    return query_rows((struct store_pg *)base, SQL_LIST_AGENTS, 2, params, out, n);
}

static int pg_get_agent(struct store *base, const char *agent_id, struct heartbeat **out, size_t *n)
{
    const char *params[] = {agent_id};
    return query_rows((struct store_pg *)base, SQL_GET_AGENT, 1, params, out, n);
}

static int pg_list_heartbeats(struct store *base, const struct hb_query *q, struct heartbeat **out,
                              size_t *n)
{
    char from[24], to[24], after_ts[24], after_id[24], limit[16];
    snprintf(from, sizeof(from), "%lld", (long long)q->from);
    snprintf(to, sizeof(to), "%lld", (long long)q->to);
    snprintf(after_ts, sizeof(after_ts), "%lld", (long long)q->after_ts);
    snprintf(after_id, sizeof(after_id), "%lld", (long long)q->after_id);
    snprintf(limit, sizeof(limit), "%d", q->limit);
    const char *params[] = {q->agent_id, from, to, after_ts, after_id, limit};
    return query_rows((struct store_pg *)base, SQL_LIST_HBS, 6, params, out, n);
}

static void pg_close(struct store *base)
{
    struct store_pg *s = (struct store_pg *)base;
    PQfinish(s->conn);
    buf_free(&s->batch);
    free(s);
}

static const struct store_ops pg_ops = {
    .name = "postgres",
    .put_heartbeats = pg_put_heartbeats,
    .list_agents = pg_list_agents,
    .get_agent = pg_get_agent,
    .list_heartbeats = pg_list_heartbeats,
    .close = pg_close,
};

/* Notices such as "relation already exists, skipping" are not worth a log line. */
static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

int store_pg_open(const char *url, struct store **out, char *err, size_t errlen)
{
    struct store_pg *s = calloc(1, sizeof(*s));
    if (!s)
        abort();
    s->base.ops = &pg_ops;
    /* These come first so that the same settings given in the URL win. TCP keepalives and a
     * user timeout notice a peer that vanished without closing the connection. */
    const char *keys[] = {"connect_timeout",
                          "application_name",
                          "keepalives",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "tcp_user_timeout",
                          "dbname",
                          NULL};
    const char *values[] = {"5", "aeid", "1", "10", "5", "3", "10000", url, NULL};
    s->conn = PQconnectdbParams(keys, values, 1);
    PQsetNoticeProcessor(s->conn, ignore_notice, NULL);
    char line[256];
    if (PQstatus(s->conn) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect to PostgreSQL: %s",
                 first_line(PQerrorMessage(s->conn), line, sizeof(line)));
        pg_close(&s->base);
        return AEI_EUNAVAILABLE;
    }
    int rc = pg_migrate(s, err, errlen);
    if (rc) {
        pg_close(&s->base);
        return rc;
    }
    *out = &s->base;
    return 0;
}
