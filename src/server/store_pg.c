/* store_pg.c - the PostgreSQL store (libpq; no session state, so it works through pgbouncer) */
#include "aei/error.h"
#include "common/buf.h"
#include "common/json.h"
#include "common/log.h"
#include "common/time.h"
#include "server/store.h"

#include <errno.h>
#include <libpq-fe.h>
#include <math.h>
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
    bool in_tx;       /* between begin and commit: a lost connection fails, never reconnects */
    struct buf batch; /* reused for each batch: the arrays of heartbeats, the JSON of decisions */
    char scope[AEI_ID_MAX + 1]; /* the session's row-level security scope, "" for none */
};

/* One statement, hence one transaction and one round trip, for a whole batch, run by a procedure
 * (migrations/pg/0009_heartbeat_batch.sql) whose statement each server session plans once. The
 * batch comes in binary format (pg_put_heartbeats()), so that the server parses no number: an
 * array per column and, for child_agent_ids and labels, one jsonb document each, the array of the
 * rows' documents (two JSON parses a batch rather than two a row, each of which costs the server
 * kilobytes that it keeps until the statement ends). */
static const char SQL_PUT_BATCH[] = "CALL aei_put_heartbeats($1, $2, $3, $4, $5, $6, $7, $8, $9, "
                                    "$10, $11, $12, $13, $14, $15, $16, $17)";
static const char SQL_LIST_AGENTS[] =
    STORE_SELECT_AGENTS "WHERE agent_id > $1 AND ($3::text IS NULL OR team_id = $3) "
                        "ORDER BY agent_id LIMIT $2";
static const char SQL_GET_AGENT[] = STORE_SELECT_AGENTS "WHERE agent_id = $1";
static const char SQL_LIST_HBS[] = STORE_SELECT_HEARTBEATS
    "WHERE agent_id = $1 AND server_ts >= $2 AND server_ts < $3 AND (server_ts, id) > ($4, $5) "
    "ORDER BY server_ts, id LIMIT $6";
/* A batch of decisions is one call of a function that the migration defines: one statement for
 * the client (see migrations/pg/0002_traces.sql for why it is a function). */
static const char SQL_PUT_DECISIONS[] = "SELECT aei_put_decisions($1::jsonb, $2, $3, $4)";
#define EXEC_COLUMNS                                                                               \
    "execution_id, agent_id, status, started, ended, decisions, confidence_n, confidence_sum, "    \
    "cost_usd, pending, failure, team_id"
/* Only a running execution ends; one that has ended keeps how it ended. */
static const char SQL_END_EXEC[] =
    "UPDATE executions SET status = $2, ended = $3, failure = $4::jsonb "
    "WHERE execution_id = $1 AND status = 'running'";
static const char SQL_GET_EXEC[] =
    "SELECT " EXEC_COLUMNS " FROM executions WHERE execution_id = $1";
/* Newest first from a cursor; one statement per filter so that each uses its index. */
/* The last parameter is the caller's team, or NULL for every team. */
#define SQL_LIST_EXECS(filter, limit, team)                                                        \
    "SELECT " EXEC_COLUMNS " FROM executions WHERE (started, execution_id) < ($1, $2)" filter      \
    " AND (" team "::text IS NULL OR team_id = " team ") "                                         \
    "ORDER BY started DESC, execution_id DESC LIMIT " limit
static const char *const SQL_LIST_EXECS_BY[4] = {
    SQL_LIST_EXECS("", "$3", "$4"), SQL_LIST_EXECS(" AND agent_id = $3", "$4", "$5"),
    SQL_LIST_EXECS(" AND status = $3", "$4", "$5"),
    SQL_LIST_EXECS(" AND agent_id = $3 AND status = $4", "$5", "$6")};
#define DECISION_COLUMNS                                                                           \
    "id, decision_id, execution_id, agent_id, parent_decision_id, server_ts, agent_ts, "           \
    "reasoning_context, confidence_score, alternatives_considered, selected_outcome, kind, "       \
    "labels, duration_ms, tokens, cost_usd, path"
/* Waiting decisions have a NULL path, which "path > $n" leaves out. */
/* aei_decision_page() reads in index order (migrations/pg/0002_traces.sql says why). */
static const char SQL_LIST_TREE[] =
    "SELECT " DECISION_COLUMNS " FROM aei_decision_page($1, $2, $3) ORDER BY path";
static const char SQL_LIST_CHILDREN[] =
    "SELECT " DECISION_COLUMNS " FROM decisions "
    "WHERE execution_id = $1 AND parent_decision_id = $2 AND path > $3 ORDER BY path LIMIT $4";
static const char SQL_LIST_WAITING[] =
    "SELECT " DECISION_COLUMNS " FROM decisions "
    "WHERE execution_id = $1 AND path IS NULL AND id > $2 ORDER BY id LIMIT $3";
static const char SQL_LIST_ROOTS[] =
    "SELECT " DECISION_COLUMNS " FROM decisions "
    "WHERE execution_id = $1 AND parent_decision_id IS NULL AND path > $2 ORDER BY path LIMIT $3";

/* The first line of libpq's message, without the trailing newline. */
static const char *first_line(const char *msg, char *out, size_t n)
{
    snprintf(out, n, "%s", msg);
    out[strcspn(out, "\n")] = '\0';
    return out;
}

static const char SQL_SET_SCOPE[] = "SELECT set_config('aei.team', $1, false)";
static const char SQL_SCOPE_TRANSACTION[] = "SELECT set_config('aei.team', $1, true)";

/* A new session starts unscoped, which sees every team: a connection that was scoped before it
 * was lost gets its scope back before anything else runs on it, or is not used. */
static bool restore_scope(struct store_pg *s)
{
    if (!s->scope[0])
        return true;
    const char *params[] = {s->scope};
    PGresult *res = PQexecParams(s->conn, SQL_SET_SCOPE, 1, NULL, params, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    PQclear(res);
    if (!ok)
        log_error("postgres: could not restore the scope of a reconnected session");
    return ok;
}

/* The types, lengths and formats of a statement's parameters (PQsendQueryParams()'s
 * paramTypes, paramLengths and paramFormats), for parameters sent in binary format. Without
 * them every parameter is text, of the type the statement gives it. */
struct param_types {
    const Oid *types;
    const int *lengths;
    const int *formats;
};

/* Sends a statement without waiting for its answer, its parameters in text or (pt) the formats
 * pt gives, its result in text or (binary) binary format; false if the connection is lost.
 * Reconnects first if the last statement lost it. */
static bool send_query(struct store_pg *s, const char *sql, int nparams, const char *const *params,
                       const struct param_types *pt, bool binary)
{
    if (s->broken || PQstatus(s->conn) != CONNECTION_OK) {
        if (s->in_tx)
            return false; /* the transaction, and its locks, are gone with the connection */
        PQreset(s->conn);
        if (PQstatus(s->conn) != CONNECTION_OK || !restore_scope(s))
            return false;
        s->broken = false;
        log_info("store: reconnected to PostgreSQL");
    }
    return PQsendQueryParams(s->conn, sql, nparams, pt ? pt->types : NULL, params,
                             pt ? pt->lengths : NULL, pt ? pt->formats : NULL, binary ? 1 : 0);
}

/* Returns the result of the statement sent last, or NULL if the connection is lost or the server
 * does not answer within STATEMENT_TIMEOUT_MS. */
static PGresult *receive(struct store_pg *s)
{
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

/* Returns the result of a statement, or NULL (see send_query() and receive()). */
static PGresult *run(struct store_pg *s, const char *sql, int nparams, const char *const *params)
{
    return send_query(s, sql, nparams, params, NULL, false) ? receive(s) : NULL;
}

/* Maps a failed result to an AEI_E* code and logs why. Frees res. */
static int fail(struct store_pg *s, PGresult *res, const char *what)
{
    char line[256], code[6] = "";
    const char *field = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *state = field ? code : NULL;
    if (field) /* copied: the field lives in res, which is freed below */
        snprintf(code, sizeof(code), "%s", field);
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

/* Runs a statement that returns no rows, its parameters typed by pt (or NULL: text); `what`
 * names it in an error. */
static int command_typed(struct store_pg *s, const char *sql, int nparams,
                         const char *const *params, const struct param_types *pt, const char *what)
{
    PGresult *res = send_query(s, sql, nparams, params, pt, false) ? receive(s) : NULL;
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
        return fail(s, res, what);
    PQclear(res);
    return 0;
}

static int command(struct store_pg *s, const char *sql, int nparams, const char *const *params,
                   const char *what)
{
    return command_typed(s, sql, nparams, params, NULL, what);
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
        /* A migration of comments alone (a placeholder) is an empty query. */
        if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_EMPTY_QUERY)
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

/* Type OIDs (catalog/pg_type_d.h, which libpq does not install); they never change. */
#define BOOL_OID 16
#define INT8_OID 20
#define TEXT_OID 25
#define FLOAT8_OID 701
#define JSONB_OID 3802
#define BOOL_ARRAY_OID 1000
#define TEXT_ARRAY_OID 1009
#define INT8_ARRAY_OID 1016
#define FLOAT8_ARRAY_OID 1022

/* The parameters of SQL_PUT_BATCH, in its order: for each column, an array with an element per
 * heartbeat, or a jsonb array with a document per heartbeat. */
enum {
    P_AGENT_ID,
    P_NAME,
    P_STATUS,
    P_METRIC, /* HB_METRIC_COUNT of them, in enum hb_metric order */
    P_PARENT = P_METRIC + HB_METRIC_COUNT,
    P_CHILDREN,
    P_LABELS,
    P_AGENT_TS,
    P_SERVER_TS,
    P_LATEST,
    P_FIRST_TS,
    P_TEAM_ID,
    P_AGENT_NAME,
    P_COUNT
};
_Static_assert(HB_METRIC_COUNT == 5, "SQL_PUT_BATCH names five metric columns");

static const Oid batch_types[P_COUNT] = {[P_AGENT_ID] = TEXT_ARRAY_OID,
                                         [P_NAME] = TEXT_ARRAY_OID,
                                         [P_STATUS] = TEXT_ARRAY_OID,
                                         [P_METRIC + HB_CPU] = FLOAT8_ARRAY_OID,
                                         [P_METRIC + HB_MEM] = FLOAT8_ARRAY_OID,
                                         [P_METRIC + HB_TPM] = FLOAT8_ARRAY_OID,
                                         [P_METRIC + HB_COST] = FLOAT8_ARRAY_OID,
                                         [P_METRIC + HB_CONFIDENCE] = FLOAT8_ARRAY_OID,
                                         [P_PARENT] = TEXT_ARRAY_OID,
                                         [P_CHILDREN] = JSONB_OID,
                                         [P_LABELS] = JSONB_OID,
                                         [P_AGENT_TS] = INT8_ARRAY_OID,
                                         [P_SERVER_TS] = INT8_ARRAY_OID,
                                         [P_LATEST] = BOOL_ARRAY_OID,
                                         [P_FIRST_TS] = INT8_ARRAY_OID,
                                         [P_TEAM_ID] = TEXT_ARRAY_OID,
                                         [P_AGENT_NAME] = TEXT_ARRAY_OID};

/* The type of an array's elements. */
static Oid element_type(Oid array)
{
    switch (array) {
    case BOOL_ARRAY_OID:
        return BOOL_OID;
    case INT8_ARRAY_OID:
        return INT8_OID;
    case FLOAT8_ARRAY_OID:
        return FLOAT8_OID;
    default:
        return TEXT_OID;
    }
}

/* Binary values are in network byte order: big-endian. */
static void put_be32(struct buf *b, uint32_t v)
{
    uint8_t p[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    buf_append(b, p, sizeof(p));
}

static void put_be64(struct buf *b, uint64_t v)
{
    put_be32(b, (uint32_t)(v >> 32));
    put_be32(b, (uint32_t)v);
}

/* Starts a one-dimensional array of n elements in binary format (array_recv()'s): the number of
 * dimensions, a has-null flag, the element type, then each dimension's length and lower bound,
 * all int32; the elements follow, each its length (-1 for NULL) and that many bytes. Returns
 * where the array starts, for elem_null(). */
static size_t array_begin(struct buf *b, Oid elem, size_t n)
{
    size_t at = b->len;
    put_be32(b, 1);
    put_be32(b, 0);
    put_be32(b, elem);
    put_be32(b, (uint32_t)n);
    put_be32(b, 1);
    return at;
}

/* Appends a NULL element to the array that starts at `array`, and raises its has-null flag. */
static void elem_null(struct buf *b, size_t array)
{
    put_be32(b, UINT32_MAX);
    b->data[array + 7] = 1;
}

/* A text element: its bytes without the NUL, or NULL for s NULL. */
static void elem_text(struct buf *b, size_t array, const char *s)
{
    if (!s) {
        elem_null(b, array);
        return;
    }
    size_t len = strlen(s);
    put_be32(b, (uint32_t)len);
    buf_append(b, s, len);
}

static void elem_int8(struct buf *b, int64_t v)
{
    put_be32(b, 8);
    put_be64(b, (uint64_t)v);
}

/* A float8 element: its IEEE 754 bits. */
static void elem_float8(struct buf *b, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    put_be32(b, 8);
    put_be64(b, bits);
}

static void elem_bool(struct buf *b, bool v)
{
    const uint8_t byte = v;
    put_be32(b, 1);
    buf_append(b, &byte, 1);
}

/* Appends a jsonb value in binary format (jsonb_recv()'s: format version 1, then the text): the
 * array of each heartbeat's child_agent_ids (children) or labels, compact JSON already. */
static void append_jsonb_array(struct buf *b, struct heartbeat *const *hbs, size_t n, bool children)
{
    const uint8_t version = 1;
    buf_append(b, &version, 1);
    buf_puts(b, "[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_puts(b, ",");
        buf_puts(b, children ? hbs[i]->children_json : hbs[i]->labels_json);
    }
    buf_puts(b, "]");
}

/* Appends parameter p of SQL_PUT_BATCH for the batch: its column, in binary format. */
static void append_param(struct buf *b, int p, struct heartbeat *const *hbs, size_t n,
                         const struct agent_update *up)
{
    if (batch_types[p] == JSONB_OID) {
        append_jsonb_array(b, hbs, n, p == P_CHILDREN);
        return;
    }
    size_t array = array_begin(b, element_type(batch_types[p]), n);
    for (size_t i = 0; i < n; i++) {
        const struct heartbeat *hb = hbs[i];
        switch (p) {
        case P_AGENT_ID:
            elem_text(b, array, hb->agent_id);
            break;
        case P_NAME:
            elem_text(b, array, hb->name);
            break;
        case P_STATUS:
            elem_text(b, array, hb_status_names[hb->status]);
            break;
        case P_PARENT:
            elem_text(b, array, hb->parent_agent_id);
            break;
        case P_AGENT_TS:
            if (hb->has_agent_ts)
                elem_int8(b, hb->agent_ts);
            else
                elem_null(b, array);
            break;
        case P_SERVER_TS:
            elem_int8(b, hb->server_ts);
            break;
        case P_LATEST:
            elem_bool(b, up[i].latest);
            break;
        case P_FIRST_TS:
            elem_int8(b, up[i].first_ts);
            break;
        case P_TEAM_ID: /* read for the rows marked latest alone */
            elem_text(b, array, up[i].latest ? up[i].team_id : NULL);
            break;
        case P_AGENT_NAME: /* likewise */
            elem_text(b, array, up[i].name);
            break;
        default: /* a metric */
            if (hb->has_metric[p - P_METRIC])
                elem_float8(b, hb->metric[p - P_METRIC]);
            else
                elem_null(b, array);
        }
    }
}

static int pg_put_heartbeats(struct store *base, struct heartbeat *const *hbs, size_t n,
                             const struct agent_update *up)
{
    struct store_pg *s = (struct store_pg *)base;
    /* The parameters go one after another into one buffer, which may move as it grows: they
     * are pointed at once it is whole. */
    size_t at[P_COUNT + 1];
    buf_reset(&s->batch);
    for (int p = 0; p < P_COUNT; p++) {
        at[p] = s->batch.len;
        append_param(&s->batch, p, hbs, n, up);
    }
    at[P_COUNT] = s->batch.len;
    const char *params[P_COUNT];
    int lengths[P_COUNT], formats[P_COUNT];
    for (int p = 0; p < P_COUNT; p++) {
        params[p] = s->batch.data + at[p];
        lengths[p] = (int)(at[p + 1] - at[p]);
        formats[p] = 1;
    }
    const struct param_types pt = {batch_types, lengths, formats};
    return command_typed(s, SQL_PUT_BATCH, P_COUNT, params, &pt, "storing heartbeats");
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

/* Reads row r in STORE_ROW_COLUMNS order into a struct heartbeat. */
static void read_row(PGresult *res, int r, void *row)
{
    struct heartbeat *hb = row;
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
    snprintf(hb->team_id, sizeof(hb->team_id), "%s", PQgetvalue(res, r, 15));
    int control = agent_control_parse(PQgetvalue(res, r, 16));
    hb->control = control < 0 ? AGENT_ACTIVE : (enum agent_control)control;
}

/* Runs a query and reads each row of its result with `read` into a new array of `size`-byte
 * elements (never NULL, even when empty); `what` names the rows in an error. Caller frees. */
static int select_rows(struct store_pg *s, const char *sql, int nparams, const char *const *params,
                       const char *what, size_t size, void (*read)(PGresult *, int, void *),
                       void **out, size_t *n)
{
    PGresult *res = run(s, sql, nparams, params);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        return fail(s, res, what);
    int rows = PQntuples(res);
    char *p = calloc(rows ? (size_t)rows : 1, size);
    if (!p)
        abort();
    for (int r = 0; r < rows; r++)
        read(res, r, p + (size_t)r * size);
    PQclear(res);
    *out = p;
    *n = (size_t)rows;
    return 0;
}

static int query_rows(struct store_pg *s, const char *sql, int nparams, const char *const *params,
                      struct heartbeat **out, size_t *n)
{
    void *rows;
    int rc =
        select_rows(s, sql, nparams, params, "reading rows", sizeof(**out), read_row, &rows, n);
    if (rc == 0)
        *out = rows;
    return rc;
}

static int pg_list_agents(struct store *base, const char *after, int limit, const char *team,
                          struct heartbeat **out, size_t *n)
{
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", limit);
    const char *params[] = {after, limit < 0 ? NULL : lim, team}; /* LIMIT NULL: no limit */
    return query_rows((struct store_pg *)base, SQL_LIST_AGENTS, 3, params, out, n);
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

/* Appends a number, or null if it is not finite (JSON has no infinities). */
static void append_number(struct buf *b, const char *name, double v)
{
    if (isfinite(v))
        buf_printf(b, ",\"%s\":%.17g", name, v);
}

static void append_string(struct buf *b, const char *name, const char *v)
{
    if (!v)
        return;
    buf_printf(b, ",\"%s\":", name);
    json_write_string(b, v);
}

/* Appends one decision as a JSON object whose members match the recordset of
 * aei_put_decisions() (migrations/pg/0002_traces.sql); JSON members go in as they are. */
static void append_decision(struct buf *b, size_t ord, const struct decision *d)
{
    buf_printf(b, "{\"ord\":%zu", ord);
    append_string(b, "decision_id", d->decision_id);
    append_string(b, "execution_id", d->execution_id);
    append_string(b, "agent_id", d->agent_id);
    if (d->parent_id[0])
        append_string(b, "parent_decision_id", d->parent_id);
    buf_printf(b, ",\"server_ts\":%lld", (long long)d->server_ts);
    if (d->has_agent_ts)
        buf_printf(b, ",\"agent_ts\":%lld", (long long)d->agent_ts);
    if (d->context_json)
        buf_printf(b, ",\"reasoning_context\":%s", d->context_json);
    if (d->has_confidence)
        append_number(b, "confidence_score", d->confidence);
    if (d->alternatives_json)
        buf_printf(b, ",\"alternatives_considered\":%s", d->alternatives_json);
    append_string(b, "selected_outcome", d->outcome);
    append_string(b, "kind", d->kind);
    if (d->labels_json)
        buf_printf(b, ",\"labels\":%s", d->labels_json);
    if (d->has_duration)
        append_number(b, "duration_ms", d->duration_ms);
    if (d->has_tokens)
        append_number(b, "tokens", d->tokens);
    if (d->has_cost)
        append_number(b, "cost_usd", d->cost_usd);
    buf_puts(b, "}");
}

/* Reads a refusal of aei_put_decisions() (migrations/pg/0010_execution_team.sql) into b: an
 * execution out of the sender's scope (SQLSTATE AE404) or of another agent (AE409), DETAIL the
 * index of the decision, HINT the execution's agent. Returns 0 for any other error. */
static int refusal(PGresult *res, struct decision_batch *b)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    int rc = !state                        ? 0
             : strcmp(state, "AE404") == 0 ? AEI_ENOTFOUND
             : strcmp(state, "AE409") == 0 ? AEI_ECONFLICT
                                           : 0;
    if (rc == 0)
        return 0;
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
    b->refused = detail ? strtol(detail, NULL, 10) : 0;
    snprintf(b->owner, sizeof(b->owner), "%s", rc == AEI_ECONFLICT && hint ? hint : "");
    return rc;
}

static int pg_put_decisions(struct store *base, struct decision_batch *b)
{
    struct store_pg *s = (struct store_pg *)base;
    struct decision *const *ds = b->ds;
    size_t n = b->n;
    bool *stored = b->stored;
    buf_reset(&s->batch);
    buf_puts(&s->batch, "[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_puts(&s->batch, ",");
        append_decision(&s->batch, i, ds[i]);
    }
    buf_puts(&s->batch, "]");
    const char *params[] = {s->batch.data, b->team, b->scope_team, b->scope_agent};
    PGresult *res = run(s, SQL_PUT_DECISIONS, 4, params);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        const char *constraint = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
        if (constraint && strcmp(constraint, "decisions_depth") == 0) {
            log_info("postgres: a decision of the batch would sit deeper than %d", TRACE_DEPTH_MAX);
            PQclear(res);
            return AEI_EINVAL;
        }
        int rc = refusal(res, b);
        if (rc) {
            PQclear(res);
            return rc;
        }
        return fail(s, res, "storing decisions");
    }
    /* The indexes of the stored decisions, as an int[] in text form: "{0,1,3}". */
    for (size_t i = 0; i < n; i++)
        stored[i] = false;
    const char *p = PQgetvalue(res, 0, 0);
    while (*p && *p != '}') {
        char *end;
        long i = strtol(p + 1, &end, 10);
        if (end == p + 1)
            break;
        if (i >= 0 && (size_t)i < n)
            stored[i] = true;
        p = end;
    }
    PQclear(res);
    return 0;
}

/* Reads row r into a struct execution. */
static void read_execution(PGresult *res, int r, void *row)
{
    struct execution *e = row;
    memset(e, 0, sizeof(*e));
    snprintf(e->execution_id, sizeof(e->execution_id), "%s", PQgetvalue(res, r, 0));
    snprintf(e->agent_id, sizeof(e->agent_id), "%s", PQgetvalue(res, r, 1));
    const char *status = PQgetvalue(res, r, 2);
    for (int i = 0; i < EXEC_STATUS_COUNT; i++)
        if (strcmp(status, execution_status_names[i]) == 0)
            e->status = (enum execution_status)i;
    e->started = strtoll(PQgetvalue(res, r, 3), NULL, 10);
    e->ended = strtoll(PQgetvalue(res, r, 4), NULL, 10);
    e->decisions = strtoll(PQgetvalue(res, r, 5), NULL, 10);
    e->confidence_n = strtoll(PQgetvalue(res, r, 6), NULL, 10);
    e->confidence_sum = strtod(PQgetvalue(res, r, 7), NULL);
    e->cost_usd = strtod(PQgetvalue(res, r, 8), NULL);
    e->pending = strtoll(PQgetvalue(res, r, 9), NULL, 10);
    e->failure_json = value_dup(res, r, 10);
    snprintf(e->team_id, sizeof(e->team_id), "%s", PQgetvalue(res, r, 11));
}

static int pg_list_executions(struct store *base, const struct exec_query *q,
                              struct execution **out, size_t *n)
{
    struct store_pg *s = (struct store_pg *)base;
    char before[24], limit[16];
    snprintf(before, sizeof(before), "%lld",
             (long long)(q->before_id ? q->before_started : INT64_MAX));
    snprintf(limit, sizeof(limit), "%d", q->limit);
    const char *params[6] = {before, q->before_id ? q->before_id : ""};
    int np = 2;
    if (q->agent_id)
        params[np++] = q->agent_id;
    if (q->status >= 0 && q->status < EXEC_STATUS_COUNT)
        params[np++] = execution_status_names[q->status];
    params[np++] = q->limit < 0 ? NULL : limit; /* LIMIT NULL: no limit */
    params[np++] = q->team_id;
    int variant = (q->agent_id ? 1 : 0) | (q->status >= 0 && q->status < EXEC_STATUS_COUNT ? 2 : 0);
    void *rows;
    int rc = select_rows(s, SQL_LIST_EXECS_BY[variant], np, params, "reading executions",
                         sizeof(**out), read_execution, &rows, n);
    if (rc == 0)
        *out = rows;
    return rc;
}

static int pg_get_execution(struct store *base, const char *execution_id, struct execution *out)
{
    struct store_pg *s = (struct store_pg *)base;
    const char *params[] = {execution_id};
    PGresult *res = run(s, SQL_GET_EXEC, 1, params);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        return fail(s, res, "reading an execution");
    int rc = PQntuples(res) == 0 ? AEI_ENOTFOUND : 0;
    if (rc == 0)
        read_execution(res, 0, out);
    PQclear(res);
    return rc;
}

static int pg_end_execution(struct store *base, const char *execution_id,
                            enum execution_status status, int64_t ended, const char *failure_json,
                            struct execution *out, bool *changed)
{
    struct store_pg *s = (struct store_pg *)base;
    char when[24];
    snprintf(when, sizeof(when), "%lld", (long long)ended);
    const char *params[] = {execution_id, execution_status_names[status], when, failure_json};
    PGresult *res = run(s, SQL_END_EXEC, 4, params);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
        return fail(s, res, "ending an execution");
    *changed = strcmp(PQcmdTuples(res), "0") != 0;
    PQclear(res);
    return pg_get_execution(base, execution_id, out);
}

static void value_copy(PGresult *res, int r, int c, char *out, size_t n)
{
    snprintf(out, n, "%s", PQgetvalue(res, r, c)); /* "" for NULL */
}

static bool value_double(PGresult *res, int r, int c, double *out)
{
    *out = strtod(PQgetvalue(res, r, c), NULL);
    return !PQgetisnull(res, r, c);
}

/* Reads row r in DECISION_COLUMNS order into a struct decision. */
static void read_decision(PGresult *res, int r, void *row)
{
    struct decision *d = row;
    memset(d, 0, sizeof(*d));
    d->id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
    value_copy(res, r, 1, d->decision_id, sizeof(d->decision_id));
    value_copy(res, r, 2, d->execution_id, sizeof(d->execution_id));
    value_copy(res, r, 3, d->agent_id, sizeof(d->agent_id));
    value_copy(res, r, 4, d->parent_id, sizeof(d->parent_id));
    d->server_ts = strtoll(PQgetvalue(res, r, 5), NULL, 10);
    d->has_agent_ts = !PQgetisnull(res, r, 6);
    d->agent_ts = strtoll(PQgetvalue(res, r, 6), NULL, 10);
    d->context_json = value_dup(res, r, 7);
    d->has_confidence = value_double(res, r, 8, &d->confidence);
    d->alternatives_json = value_dup(res, r, 9);
    d->outcome = value_dup(res, r, 10);
    d->kind = value_dup(res, r, 11);
    d->labels_json = value_dup(res, r, 12);
    d->has_duration = value_double(res, r, 13, &d->duration_ms);
    d->has_tokens = value_double(res, r, 14, &d->tokens);
    d->has_cost = value_double(res, r, 15, &d->cost_usd);
    d->path = value_dup(res, r, 16);
    d->depth = d->path ? (int)(strlen(d->path) / TRACE_KEY_LEN) - 1 : -1;
}

static int pg_list_decisions(struct store *base, const struct decision_query *q,
                             struct decision **out, size_t *n)
{
    struct store_pg *s = (struct store_pg *)base;
    char limit[16], after_id[24];
    snprintf(limit, sizeof(limit), "%d", q->limit);
    snprintf(after_id, sizeof(after_id), "%lld", (long long)q->after_id);
    const char *params[4] = {q->execution_id};
    int np = 1;
    const char *sql = q->waiting        ? SQL_LIST_WAITING
                      : !q->parent_id   ? SQL_LIST_TREE
                      : q->parent_id[0] ? SQL_LIST_CHILDREN
                                        : SQL_LIST_ROOTS;
    if (q->waiting)
        params[np++] = after_id;
    else if (q->parent_id && q->parent_id[0])
        params[np++] = q->parent_id;
    if (!q->waiting)
        params[np++] = q->after_path ? q->after_path : "";
    params[np++] = q->limit < 0 ? NULL : limit;
    void *rows;
    int rc = select_rows(s, sql, np, params, "reading decisions", sizeof(**out), read_decision,
                         &rows, n);
    if (rc == 0)
        *out = rows;
    return rc;
}

/* Retention: each call is one statement, so one short transaction (and pgbouncer-safe); the
 * functions are in migrations/pg/0003_retention.sql. */
static const char SQL_LIST_ROLLUPS[] =
    "SELECT day, heartbeats, cpu_n, cpu_sum, cpu_max, mem_n, mem_sum, mem_max, "
    "tokens_per_min_max, cost_added FROM rollups "
    "WHERE agent_id = $1 AND day >= $2 AND day <= $3 AND day > $4 ORDER BY day LIMIT $5";
static const char SQL_OLD_EXECS[] =
    "SELECT execution_id, started, coalesce(ended, 0) < $1 AND NOT EXISTS (SELECT 1 FROM "
    "decisions d WHERE d.execution_id = e.execution_id AND d.server_ts >= $1) FROM executions e "
    "WHERE started < $1 AND (started, execution_id) > ($2, $3) "
    "ORDER BY started, execution_id LIMIT $4";

/* Days outside what an int column holds are clamped; no rollup lives there. */
static void day_param(char *out, size_t n, int64_t day)
{
    snprintf(out, n, "%lld",
             (long long)(day < INT32_MIN   ? INT32_MIN
                         : day > INT32_MAX ? INT32_MAX
                                           : day));
}

static void read_rollup(PGresult *res, int r, void *row)
{
    struct rollup *ru = row;
    memset(ru, 0, sizeof(*ru));
    ru->day = strtoll(PQgetvalue(res, r, 0), NULL, 10);
    ru->heartbeats = strtoll(PQgetvalue(res, r, 1), NULL, 10);
    ru->cpu_n = strtoll(PQgetvalue(res, r, 2), NULL, 10);
    ru->cpu_sum = strtod(PQgetvalue(res, r, 3), NULL);
    ru->cpu_max = strtod(PQgetvalue(res, r, 4), NULL);
    ru->mem_n = strtoll(PQgetvalue(res, r, 5), NULL, 10);
    ru->mem_sum = strtod(PQgetvalue(res, r, 6), NULL);
    ru->mem_max = strtod(PQgetvalue(res, r, 7), NULL);
    ru->has_tokens_per_min = !PQgetisnull(res, r, 8);
    ru->tokens_per_min_max = strtod(PQgetvalue(res, r, 8), NULL);
    ru->cost_added = strtod(PQgetvalue(res, r, 9), NULL);
}

static int pg_list_rollups(struct store *base, const struct rollup_query *q, struct rollup **out,
                           size_t *n)
{
    char from[24], to[24], after[24], limit[16];
    day_param(from, sizeof(from), q->from_day);
    day_param(to, sizeof(to), q->to_day);
    day_param(after, sizeof(after), q->after_day);
    snprintf(limit, sizeof(limit), "%d", q->limit);
    const char *params[] = {q->agent_id, from, to, after, limit};
    void *rows;
    int rc = select_rows((struct store_pg *)base, SQL_LIST_ROLLUPS, 5, params, "reading rollups",
                         sizeof(**out), read_rollup, &rows, n);
    if (rc == 0)
        *out = rows;
    return rc;
}

/* Runs a statement that returns one row, and hands it back (caller clears), or fails. */
static int one_row(struct store_pg *s, const char *sql, int nparams, const char *const *params,
                   const char *what, PGresult **out)
{
    PGresult *res = run(s, sql, nparams, params);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        return fail(s, res, what);
    *out = res;
    return 0;
}

static int pg_rollup_step(struct store *base, int64_t before, int max_rows, int *rows)
{
    char b[24], n[16];
    snprintf(b, sizeof(b), "%lld", (long long)before);
    snprintf(n, sizeof(n), "%d", max_rows);
    const char *params[] = {b, n};
    PGresult *res;
    int rc = one_row((struct store_pg *)base, "SELECT aei_rollup_step($1, $2)", 2, params,
                     "rolling up heartbeats", &res);
    *rows = rc ? 0 : atoi(PQgetvalue(res, 0, 0));
    if (rc == 0)
        PQclear(res);
    return rc;
}

static int pg_make_partitions(struct store *base, int64_t first_day, int64_t last_day, int *made)
{
    char first[24], last[24];
    day_param(first, sizeof(first), first_day);
    day_param(last, sizeof(last), last_day);
    const char *params[] = {first, last};
    PGresult *res;
    int rc = one_row((struct store_pg *)base,
                     "SELECT count(*) FILTER (WHERE aei_heartbeat_partition(d)) "
                     "FROM generate_series($1::int, $2::int) d",
                     2, params, "making heartbeat partitions", &res);
    if (rc == 0) {
        *made = atoi(PQgetvalue(res, 0, 0));
        PQclear(res);
    }
    return rc;
}

static int pg_expire_heartbeats(struct store *base, int64_t before, int max_rows, int64_t *deleted,
                                char *dropped, size_t dropped_len)
{
    char b[24], n[16];
    snprintf(b, sizeof(b), "%lld", (long long)before);
    snprintf(n, sizeof(n), "%d", max_rows);
    const char *params[] = {b, n};
    PGresult *res;
    int rc = one_row((struct store_pg *)base, "SELECT * FROM aei_expire_heartbeats($1, $2)", 2,
                     params, "deleting old heartbeats", &res);
    if (rc == 0) {
        *deleted = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        snprintf(dropped, dropped_len, "%s", PQgetvalue(res, 0, 1)); /* "" for NULL */
        PQclear(res);
    }
    return rc;
}

static void read_old_execution(PGresult *res, int r, void *row)
{
    struct old_execution *e = row;
    snprintf(e->execution_id, sizeof(e->execution_id), "%s", PQgetvalue(res, r, 0));
    e->started = strtoll(PQgetvalue(res, r, 1), NULL, 10);
    e->expired = PQgetvalue(res, r, 2)[0] == 't';
}

static int pg_list_old_executions(struct store *base, int64_t before, int64_t after_started,
                                  const char *after_id, int limit, struct old_execution **out,
                                  size_t *n)
{
    char b[24], a[24], l[16];
    snprintf(b, sizeof(b), "%lld", (long long)before);
    snprintf(a, sizeof(a), "%lld", (long long)after_started);
    snprintf(l, sizeof(l), "%d", limit);
    const char *params[] = {b, a, after_id, l};
    void *rows;
    int rc = select_rows((struct store_pg *)base, SQL_OLD_EXECS, 4, params,
                         "finding old executions", sizeof(**out), read_old_execution, &rows, n);
    if (rc == 0)
        *out = rows;
    return rc;
}

/* The audit log, teams, users and tokens. */

static int pg_begin(struct store *base)
{
    struct store_pg *s = (struct store_pg *)base;
    int rc = command(s, "BEGIN", 0, NULL, "beginning a transaction");
    s->in_tx = rc == 0;
    return rc;
}

static int pg_commit(struct store *base)
{
    struct store_pg *s = (struct store_pg *)base;
    int rc = command(s, "COMMIT", 0, NULL, "committing");
    s->in_tx = false;
    return rc;
}

static void pg_rollback(struct store *base)
{
    struct store_pg *s = (struct store_pg *)base;
    if (s->in_tx && !s->broken && PQstatus(s->conn) == CONNECTION_OK)
        PQclear(run(s, "ROLLBACK", 0, NULL));
    s->in_tx = false;
}

/* Appenders of one team queue on a transaction-scoped advisory lock (it works through
 * pgbouncer in transaction mode); the head is read in a later statement, whose snapshot is
 * taken once the lock is held. */
static const char SQL_AUDIT_LOCK[] = "SELECT pg_advisory_xact_lock(hashtextextended($1, 7))";
static const char SQL_AUDIT_LAST[] =
    "SELECT seq, immutable_hash FROM audit_logs WHERE team_id = $1 ORDER BY seq DESC LIMIT 1";
static const char SQL_AUDIT_INSERT[] =
    "INSERT INTO audit_logs (team_id, seq, ts, actor_type, actor_id, action_type, resource_id, "
    "context, prev_hash, immutable_hash) "
    "SELECT team_id, seq, ts, actor_type, actor_id, action_type, resource_id, context, prev_hash, "
    "immutable_hash FROM jsonb_to_recordset($1::jsonb) AS x(team_id text, seq bigint, ts bigint, "
    "actor_type text, actor_id text, action_type text, resource_id text, context text, "
    "prev_hash text, immutable_hash text) ORDER BY seq RETURNING seq, id";

static int pg_append_audit(struct store *base, const uint8_t *key, struct audit_row *rows, size_t n)
{
    struct store_pg *s = (struct store_pg *)base;
    if (n == 0)
        return 0;
    const char *team[] = {rows[0].team_id};
    PGresult *res = run(s, SQL_AUDIT_LOCK, 1, team);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        return fail(s, res, "locking the audit chain");
    PQclear(res);
    res = run(s, SQL_AUDIT_LAST, 1, team);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        return fail(s, res, "reading the audit chain head");
    int64_t seq = 0;
    uint8_t prev[AUDIT_HASH_LEN] = {0};
    if (PQntuples(res) == 1) {
        seq = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        if (!audit_unhex(PQgetvalue(res, 0, 1), prev, AUDIT_HASH_LEN)) {
            log_error("postgres: the audit chain head of team %s has no valid hash", team[0]);
            PQclear(res);
            return AEI_EIO;
        }
    }
    PQclear(res);
    struct buf b = {0};
    buf_puts(&b, "[");
    for (size_t i = 0; i < n; i++) {
        struct audit_row *r = &rows[i];
        char prev_hex[AUDIT_HEX_LEN + 1], hash_hex[AUDIT_HEX_LEN + 1];
        audit_link(key, r, &seq, prev, prev_hex, hash_hex);
        buf_printf(&b, "%s{\"team_id\":", i ? "," : "");
        json_write_string(&b, r->team_id);
        buf_printf(&b, ",\"seq\":%lld,\"ts\":%lld,\"actor_type\":\"%s\",\"actor_id\":",
                   (long long)r->seq, (long long)r->ts, audit_actor_names[r->actor_type]);
        json_write_string(&b, r->actor_id);
        buf_puts(&b, ",\"action_type\":");
        json_write_string(&b, r->action_type);
        buf_puts(&b, ",\"resource_id\":");
        json_write_string(&b, r->resource_id);
        buf_puts(&b, ",\"context\":");
        json_write_string(&b, r->context ? r->context : "{}");
        buf_printf(&b, ",\"prev_hash\":\"%s\",\"immutable_hash\":\"%s\"}", prev_hex, hash_hex);
    }
    buf_puts(&b, "]");
    const char *params[] = {b.data};
    res = run(s, SQL_AUDIT_INSERT, 1, params);
    buf_free(&b);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        return fail(s, res, "appending audit rows");
    int64_t first = rows[0].seq;
    for (int i = 0; i < PQntuples(res); i++) {
        int64_t at = strtoll(PQgetvalue(res, i, 0), NULL, 10) - first;
        if (at >= 0 && at < (int64_t)n)
            rows[at].id = strtoll(PQgetvalue(res, i, 1), NULL, 10);
    }
    PQclear(res);
    return 0;
}

/* Copies a value into out[n], cut short if longer (four times a row in a verification walk,
 * so no printf). */
static void text_copy(PGresult *res, int r, int c, char *out, size_t n)
{
    size_t len = (size_t)PQgetlength(res, r, c);
    if (len >= n)
        len = n - 1;
    memcpy(out, PQgetvalue(res, r, c), len);
    out[len] = '\0';
}

/* A bigint: decimal text, or 8 bytes big-endian in binary result format (the audit walk's). */
static int64_t value_i64(PGresult *res, int r, int c)
{
    if (PQfformat(res, c) == 0)
        return strtoll(PQgetvalue(res, r, c), NULL, 10);
    if (PQgetlength(res, r, c) != 8)
        return 0;
    const uint8_t *p = (const uint8_t *)PQgetvalue(res, r, c);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return (int64_t)v;
}

/* Reads a row in STORE_AUDIT_COLUMNS order, in either result format (a text value in binary
 * format is its bytes, still followed by a NUL); context points into res. */
static void read_audit_pg(PGresult *res, int r, struct audit_row *row)
{
    row->id = value_i64(res, r, 0);
    text_copy(res, r, 1, row->team_id, sizeof(row->team_id));
    row->seq = value_i64(res, r, 2);
    row->ts = value_i64(res, r, 3);
    int actor = audit_actor_parse(PQgetvalue(res, r, 4));
    row->actor_type = actor < 0 ? AUDIT_ACTOR_SERVICE : (enum audit_actor)actor;
    text_copy(res, r, 5, row->actor_id, sizeof(row->actor_id));
    text_copy(res, r, 6, row->action_type, sizeof(row->action_type));
    text_copy(res, r, 7, row->resource_id, sizeof(row->resource_id));
    row->context = PQgetvalue(res, r, 8);
    if (!audit_unhex(PQgetvalue(res, r, 9), row->prev_hash, AUDIT_HASH_LEN))
        memset(row->prev_hash, 0xff, AUDIT_HASH_LEN);
    if (!audit_unhex(PQgetvalue(res, r, 10), row->hash, AUDIT_HASH_LEN))
        memset(row->hash, 0, AUDIT_HASH_LEN);
}

static void read_audit_owned(PGresult *res, int r, void *row)
{
    struct audit_row *a = row;
    read_audit_pg(res, r, a);
    a->context = strdup(a->context);
    if (!a->context)
        abort();
}

void store_pg_audit_sql(const struct audit_query *q, struct buf *sql)
{
    buf_puts(sql, "SELECT " STORE_AUDIT_COLUMNS " FROM audit_logs WHERE ts >= $1 AND ts < $2 "
                  "AND (ts, id) < ($3, $4)");
    const char *names[] = {"team_id", "actor_id", "action_type", "resource_id"};
    const char *values[] = {q->team_id, q->actor_id, q->action_type, q->resource_id};
    int np = 5;
    for (int i = 0; i < 4; i++)
        if (values[i])
            buf_printf(sql, " AND %s = $%d", names[i], ++np);
    buf_puts(sql, " ORDER BY ts DESC, id DESC LIMIT $5");
}

static int pg_list_audit(struct store *base, const struct audit_query *q, struct audit_row **out,
                         size_t *n)
{
    struct store_pg *s = (struct store_pg *)base;
    char from[24], to[24], bts[24], bid[24], limit[16];
    snprintf(from, sizeof(from), "%lld", (long long)q->from);
    snprintf(to, sizeof(to), "%lld", (long long)q->to);
    snprintf(bts, sizeof(bts), "%lld", (long long)q->before_ts);
    snprintf(bid, sizeof(bid), "%lld", (long long)q->before_id);
    snprintf(limit, sizeof(limit), "%d", q->limit);
    const char *params[9] = {from, to, bts, bid, limit};
    int np = 5;
    const char *values[] = {q->team_id, q->actor_id, q->action_type, q->resource_id};
    for (int i = 0; i < 4; i++)
        if (values[i])
            params[np++] = values[i];
    struct buf sql = {0};
    store_pg_audit_sql(q, &sql);
    void *rows;
    int rc = select_rows(s, sql.data, np, params, "reading an audit page", sizeof(**out),
                         read_audit_owned, &rows, n);
    buf_free(&sql);
    if (rc == 0)
        *out = rows;
    return rc;
}

static int pg_expire_execution(struct store *base, const char *execution_id, int64_t before,
                               int max_rows, int64_t *deleted, bool *gone)
{
    char b[24], n[16];
    snprintf(b, sizeof(b), "%lld", (long long)before);
    snprintf(n, sizeof(n), "%d", max_rows);
    const char *params[] = {execution_id, b, n};
    PGresult *res;
    int rc = one_row((struct store_pg *)base, "SELECT * FROM aei_expire_execution($1, $2, $3)", 3,
                     params, "deleting an old execution", &res);
    if (rc == 0) {
        *deleted = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        *gone = PQgetvalue(res, 0, 1)[0] == 't';
        PQclear(res);
    }
    return rc;
}

#define SCAN_PAGE "10000"

/* The scans, by (team, seq) or by id, of every team or one ($3). */
static const char *const SQL_SCAN[2][2] = {
    {"SELECT " STORE_AUDIT_COLUMNS " FROM audit_logs WHERE (team_id, seq) > ($1, $2) "
     "ORDER BY team_id, seq LIMIT " SCAN_PAGE,
     "SELECT " STORE_AUDIT_COLUMNS " FROM audit_logs WHERE team_id = $3 AND seq > $2 AND "
     "$1::text IS NOT NULL ORDER BY seq LIMIT " SCAN_PAGE},
    {"SELECT " STORE_AUDIT_COLUMNS " FROM audit_logs WHERE id > $2 AND $1::text IS NOT NULL "
     "ORDER BY id LIMIT " SCAN_PAGE,
     "SELECT " STORE_AUDIT_COLUMNS " FROM audit_logs WHERE team_id = $3 AND id > $2 AND "
     "$1::text IS NOT NULL ORDER BY id LIMIT " SCAN_PAGE},
};

/* Calls each() for the rows of a page; returns the first non-zero answer, or 0. */
static int scan_page(PGresult *res, int (*each)(void *arg, const struct audit_row *r), void *arg)
{
    struct audit_row r;
    for (int i = 0, rows = PQntuples(res); i < rows; i++) {
        read_audit_pg(res, i, &r);
        int stop = each(arg, &r);
        if (stop)
            return stop;
    }
    return 0;
}

static int pg_scan_audit(struct store *base, const char *team_id, bool by_id,
                         int (*each)(void *arg, const struct audit_row *r), void *arg)
{
    struct store_pg *s = (struct store_pg *)base;
    /* Keyset pages keep memory flat however long the log is: after (team, seq), or after id.
     * Each page is asked for as soon as the one before it arrives, so that the server reads
     * and sends it while this thread hashes (the walk took the sum of both before). Results
     * come in binary format: integers need no parsing. */
    char team[AEI_ID_MAX + 1] = "", after[24] = "0";
    const char *sql = SQL_SCAN[by_id][team_id != NULL];
    const char *params[] = {team, after, team_id};
    int np = team_id ? 3 : 2;
    if (!send_query(s, sql, np, params, NULL, true))
        return fail(s, NULL, "reading the audit log");
    for (;;) {
        PGresult *res = receive(s);
        if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
            return fail(s, res, "reading the audit log");
        int rows = PQntuples(res);
        bool more = rows == atoi(SCAN_PAGE);
        if (more) {
            text_copy(res, rows - 1, 1, team, sizeof(team));
            snprintf(after, sizeof(after), "%lld",
                     (long long)value_i64(res, rows - 1, by_id ? 0 : 2));
            if (!send_query(s, sql, np, params, NULL, true)) {
                PQclear(res);
                return fail(s, NULL, "reading the audit log");
            }
        }
        int stop = scan_page(res, each, arg);
        PQclear(res);
        if (stop && more)
            PQclear(receive(s)); /* the page asked for ahead, unread: the connection is free */
        if (stop || !more)
            return stop;
    }
}

static void read_head(PGresult *res, int r, void *row)
{
    struct audit_head *h = row;
    value_copy(res, r, 0, h->team_id, sizeof(h->team_id));
    h->seq = strtoll(PQgetvalue(res, r, 1), NULL, 10);
    if (!audit_unhex(PQgetvalue(res, r, 2), h->hash, AUDIT_HASH_LEN))
        memset(h->hash, 0, AUDIT_HASH_LEN);
}

static int pg_audit_heads(struct store *base, struct audit_head **out, size_t *n)
{
    void *rows;
    int rc = select_rows((struct store_pg *)base,
                         "SELECT DISTINCT ON (team_id) team_id, seq, immutable_hash FROM "
                         "audit_logs ORDER BY team_id, seq DESC",
                         0, NULL, "reading the audit heads", sizeof(**out), read_head, &rows, n);
    if (rc == 0)
        *out = rows;
    return rc;
}

/* Runs an INSERT ... ON CONFLICT DO NOTHING RETURNING: *created when it inserted a row. */
static int insert_if_new(struct store_pg *s, const char *sql, int np, const char *const *params,
                         const char *what, bool *created)
{
    PGresult *res = run(s, sql, np, params);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        return fail(s, res, what);
    *created = PQntuples(res) == 1;
    PQclear(res);
    return 0;
}

static int pg_ensure_team(struct store *base, const char *team_id, int64_t now, bool *created)
{
    char ts[24];
    snprintf(ts, sizeof(ts), "%lld", (long long)now);
    const char *params[] = {team_id, ts};
    return insert_if_new((struct store_pg *)base,
                         "INSERT INTO teams (team_id, created) VALUES ($1, $2) "
                         "ON CONFLICT DO NOTHING RETURNING team_id",
                         2, params, "creating a team", created);
}

static int pg_ensure_user(struct store *base, const char *user_id, const char *team_id,
                          const char *role, int64_t now, bool *created, char *team, char *role_out)
{
    struct store_pg *s = (struct store_pg *)base;
    char ts[24];
    snprintf(ts, sizeof(ts), "%lld", (long long)now);
    const char *params[] = {user_id, team_id, role, ts};
    int rc = insert_if_new(s,
                           "INSERT INTO users (user_id, team_id, role, created) "
                           "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING user_id",
                           4, params, "creating a user", created);
    if (rc)
        return rc;
    PGresult *res = run(s, "SELECT team_id, role FROM users WHERE user_id = $1", 1, params);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        return fail(s, res, "reading a user");
    value_copy(res, 0, 0, team, AEI_ID_MAX + 1);
    value_copy(res, 0, 1, role_out, 16);
    PQclear(res);
    return 0;
}

static int pg_insert_token(struct store *base, const struct token_rec *t)
{
    struct store_pg *s = (struct store_pg *)base;
    char ts[24];
    snprintf(ts, sizeof(ts), "%lld", (long long)t->created);
    const char *params[] = {t->token_id, t->hash, t->kind, t->team_id, t->user_id, t->agent_id, ts};
    PGresult *res = run(s,
                        "INSERT INTO tokens (token_id, token_hash, kind, team_id, user_id, "
                        "agent_id, created) VALUES ($1, $2, $3, $4, nullif($5, ''), "
                        "nullif($6, ''), $7)",
                        7, params);
    if (res && PQresultStatus(res) == PGRES_FATAL_ERROR) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state && strcmp(state, "23505") == 0) {
            PQclear(res);
            return AEI_ECONFLICT;
        }
    }
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
        return fail(s, res, "storing a token");
    PQclear(res);
    return 0;
}

static void read_token(PGresult *res, int r, void *row)
{
    struct token_rec *t = row;
    value_copy(res, r, 0, t->token_id, sizeof(t->token_id));
    value_copy(res, r, 1, t->hash, sizeof(t->hash));
    value_copy(res, r, 2, t->kind, sizeof(t->kind));
    value_copy(res, r, 3, t->team_id, sizeof(t->team_id));
    value_copy(res, r, 4, t->user_id, sizeof(t->user_id));
    value_copy(res, r, 5, t->agent_id, sizeof(t->agent_id));
    value_copy(res, r, 6, t->role, sizeof(t->role));
    t->created = strtoll(PQgetvalue(res, r, 7), NULL, 10);
    t->revoked = strtoll(PQgetvalue(res, r, 8), NULL, 10);
}

static int pg_revoke_token(struct store *base, const char *token_id, int64_t now,
                           struct token_rec *out)
{
    struct store_pg *s = (struct store_pg *)base;
    const char *params[] = {token_id, NULL};
    void *rows;
    size_t n;
    int rc = select_rows(s, STORE_SELECT_TOKENS "WHERE t.token_id = $1 FOR UPDATE OF t", 1, params,
                         "reading a token", sizeof(*out), read_token, &rows, &n);
    if (rc)
        return rc;
    if (n == 1)
        *out = *(struct token_rec *)rows;
    free(rows);
    if (n != 1)
        return AEI_ENOTFOUND;
    if (out->revoked)
        return AEI_ECONFLICT;
    char ts[24];
    snprintf(ts, sizeof(ts), "%lld", (long long)now);
    params[1] = ts;
    rc = command(s, "UPDATE tokens SET revoked = $2 WHERE token_id = $1", 2, params,
                 "revoking a token");
    if (rc == 0)
        out->revoked = now;
    return rc;
}

static int pg_list_tokens(struct store *base, const char *team_id, const char *hash,
                          struct token_rec **out, size_t *n)
{
    const char *params[] = {team_id, hash};
    void *rows;
    int rc = select_rows((struct store_pg *)base,
                         STORE_SELECT_TOKENS "WHERE ($1::text IS NULL OR t.team_id = $1) "
                                             "AND ($2::text IS NULL OR t.token_hash = $2) "
                                             "ORDER BY t.created, t.token_id",
                         2, params, "listing tokens", sizeof(**out), read_token, &rows, n);
    if (rc == 0)
        *out = rows;
    return rc;
}

static int pg_insert_command(struct store *base, const struct command *c)
{
    char audit_id[24], created[24];
    snprintf(audit_id, sizeof(audit_id), "%lld", (long long)c->audit_id);
    snprintf(created, sizeof(created), "%lld", (long long)c->created);
    const char *params[] = {c->command_id,
                            c->agent_id,
                            c->team_id,
                            command_action_names[c->action],
                            c->params,
                            command_status_names[c->status],
                            audit_actor_names[c->actor_type],
                            c->actor_id,
                            audit_id,
                            created};
    return command((struct store_pg *)base,
                   STORE_INSERT_COMMAND "VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10)",
                   10, params, "recording a command");
}

static int pg_set_control(struct store *base, const char *agent_id, int control)
{
    const char *params[] = {agent_id, agent_control_names[control]};
    return command((struct store_pg *)base, "UPDATE agents SET control = $2 WHERE agent_id = $1", 2,
                   params, "setting an agent's control state");
}

/* Reads row r of STORE_SELECT_COMMANDS into a struct command. */
static void read_command(PGresult *res, int r, void *row)
{
    struct command *c = row;
    memset(c, 0, sizeof(*c));
    value_copy(res, r, 0, c->command_id, sizeof(c->command_id));
    value_copy(res, r, 1, c->agent_id, sizeof(c->agent_id));
    value_copy(res, r, 2, c->team_id, sizeof(c->team_id));
    int action = command_action_parse(PQgetvalue(res, r, 3));
    c->action = action < 0 ? CMD_EXECUTE : (enum command_action)action;
    c->params = value_dup(res, r, 4);
    int status = command_status_parse(PQgetvalue(res, r, 5));
    c->status = status < 0 ? CMD_PENDING : (enum command_status)status;
    int actor = audit_actor_parse(PQgetvalue(res, r, 6));
    c->actor_type = actor < 0 ? AUDIT_ACTOR_USER : (enum audit_actor)actor;
    value_copy(res, r, 7, c->actor_id, sizeof(c->actor_id));
    c->audit_id = strtoll(PQgetvalue(res, r, 8), NULL, 10);
    c->created = strtoll(PQgetvalue(res, r, 9), NULL, 10);
    c->delivered = strtoll(PQgetvalue(res, r, 10), NULL, 10);
    c->acked = strtoll(PQgetvalue(res, r, 11), NULL, 10);
    c->result = value_dup(res, r, 12);
}

static int pg_get_command(struct store *base, const char *command_id, struct command *out)
{
    const char *params[] = {command_id};
    void *rows;
    size_t n;
    int rc = select_rows((struct store_pg *)base,
                         STORE_SELECT_COMMANDS "WHERE command_id = $1 FOR UPDATE", 1, params,
                         "reading a command", sizeof(*out), read_command, &rows, &n);
    if (rc)
        return rc;
    if (n == 1)
        *out = *(struct command *)rows;
    free(rows);
    return n == 1 ? 0 : AEI_ENOTFOUND;
}

static int pg_ack_command(struct store *base, const char *command_id, enum command_status status,
                          const char *result, int64_t now)
{
    char ts[24];
    snprintf(ts, sizeof(ts), "%lld", (long long)now);
    const char *params[] = {command_id, command_status_names[status], ts, result};
    return command((struct store_pg *)base,
                   "UPDATE commands SET status = $2, acked = $3, result = $4::jsonb "
                   "WHERE command_id = $1",
                   4, params, "recording an acknowledgement");
}

static int pg_list_commands(struct store *base, const struct command_query *q, struct command **out,
                            size_t *n)
{
    char before[24], limit[16];
    snprintf(before, sizeof(before), "%lld",
             (long long)(q->before_id ? q->before_created : INT64_MAX));
    snprintf(limit, sizeof(limit), "%d", q->limit);
    const char *params[] = {q->agent_id, q->open ? "1" : "0", before,
                            q->before_id ? q->before_id : "", q->limit < 0 ? NULL : limit};
    void *rows;
    int rc = select_rows((struct store_pg *)base,
                         STORE_SELECT_COMMANDS "WHERE ($1::text IS NULL OR agent_id = $1) "
                                               "AND ($2 = 0 OR " STORE_COMMANDS_OPEN ") "
                                               "AND (created, command_id) < ($3, $4) "
                                               "ORDER BY created DESC, command_id DESC LIMIT $5",
                         5, params, "listing commands", sizeof(**out), read_command, &rows, n);
    if (rc == 0)
        *out = rows;
    return rc;
}

static int pg_mark_delivered(struct store *base, const char *command_id, int64_t now)
{
    char ts[24];
    snprintf(ts, sizeof(ts), "%lld", (long long)now);
    const char *params[] = {command_id, ts};
    return command((struct store_pg *)base,
                   "UPDATE commands SET status = 'delivered', delivered = $2 "
                   "WHERE command_id = $1 AND status = 'pending'",
                   2, params, "marking a command delivered");
}

/* The scope is the session's setting aei.team, which the policies of migration 0008 read; a
 * session-level set_config() made inside a transaction would be undone by its rollback, hence
 * the refusal there. A session that is lost is given its scope back when it reconnects
 * (restore_scope()), so an unchanged scope needs no round trip. */
static int pg_set_scope(struct store *base, const char *team_id)
{
    struct store_pg *s = (struct store_pg *)base;
    if (s->in_tx)
        return AEI_EINVAL;
    if (strcmp(s->scope, team_id) == 0)
        return 0;
    snprintf(s->scope, sizeof(s->scope), "%s", team_id);
    const char *params[] = {team_id};
    PGresult *res = run(s, SQL_SET_SCOPE, 1, params);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        /* Whatever the session's scope is now, the next statement starts a new session with
         * the scope asked for here, or fails: never runs in a scope nobody asked for. */
        s->broken = true;
        return fail(s, res, "setting the team scope");
    }
    PQclear(res);
    return 0;
}

static int pg_scope_transaction(struct store *base, const char *team_id)
{
    struct store_pg *s = (struct store_pg *)base;
    const char *params[] = {team_id};
    PGresult *res = run(s, SQL_SCOPE_TRANSACTION, 1, params);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        return fail(s, res, "scoping a transaction");
    PQclear(res);
    return 0;
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
    .parallel_writers = true,
    .put_heartbeats = pg_put_heartbeats,
    .list_agents = pg_list_agents,
    .get_agent = pg_get_agent,
    .list_heartbeats = pg_list_heartbeats,
    .put_decisions = pg_put_decisions,
    .list_executions = pg_list_executions,
    .get_execution = pg_get_execution,
    .end_execution = pg_end_execution,
    .list_decisions = pg_list_decisions,
    .list_rollups = pg_list_rollups,
    .rollup_step = pg_rollup_step,
    .make_partitions = pg_make_partitions,
    .expire_heartbeats = pg_expire_heartbeats,
    .list_old_executions = pg_list_old_executions,
    .expire_execution = pg_expire_execution,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .append_audit = pg_append_audit,
    .list_audit = pg_list_audit,
    .scan_audit = pg_scan_audit,
    .audit_heads = pg_audit_heads,
    .ensure_team = pg_ensure_team,
    .ensure_user = pg_ensure_user,
    .insert_token = pg_insert_token,
    .revoke_token = pg_revoke_token,
    .list_tokens = pg_list_tokens,
    .insert_command = pg_insert_command,
    .set_control = pg_set_control,
    .get_command = pg_get_command,
    .ack_command = pg_ack_command,
    .list_commands = pg_list_commands,
    .mark_delivered = pg_mark_delivered,
    .close = pg_close,
    .set_scope = pg_set_scope,
    .scope_transaction = pg_scope_transaction,
};

PGconn *store_pg_conn(struct store *s)
{
    return s->ops == &pg_ops ? ((struct store_pg *)s)->conn : NULL;
}

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
