/* store_sqlite.c - the embedded SQLite store (WAL, durable commits) */
#include "aei/error.h"
#include "common/log.h"
#include "server/store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct store_sqlite {
    struct store base;
    sqlite3 *db;
    char *path;
    sqlite3_stmt *insert_hb, *update_agent, *upsert_agent, *list_agents, *get_agent, *list_hbs;
};

static const char SQL_INSERT_HB[] =
    "INSERT INTO heartbeats (" STORE_AGENT_COLUMNS ", server_ts) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
/* Known agents take this cheaper path (measured +8% heartbeats/s with bench/store_bench.c);
 * the upsert registers new ones. */
static const char SQL_UPDATE_AGENT[] =
    "UPDATE agents SET name = coalesce(?2, name), status = ?3, cpu_pct = ?4, mem_pct = ?5, "
    "tokens_per_min = ?6, cost_usd = ?7, confidence = ?8, parent_agent_id = ?9, "
    "child_agent_ids = ?10, labels = ?11, agent_ts = ?12, last_heartbeat = ?13 "
    "WHERE agent_id = ?1";
static const char SQL_UPSERT_AGENT[] =
    "INSERT INTO agents (" STORE_AGENT_COLUMNS ", last_heartbeat, first_seen) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) " STORE_UPSERT_AGENT;
static const char SQL_LIST_AGENTS[] =
    STORE_SELECT_AGENTS "WHERE agent_id > ?1 ORDER BY agent_id LIMIT ?2";
static const char SQL_GET_AGENT[] = STORE_SELECT_AGENTS "WHERE agent_id = ?1";
static const char SQL_LIST_HBS[] = STORE_SELECT_HEARTBEATS
    "WHERE agent_id = ?1 AND server_ts >= ?2 AND server_ts < ?3 AND (server_ts, id) > (?4, ?5) "
    "ORDER BY server_ts, id LIMIT ?6";

static int fail(struct store_sqlite *s, const char *what)
{
    int code = sqlite3_errcode(s->db);
    log_error("sqlite %s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
    /* A busy or locked database, a full disk or an I/O fault may pass; say "retry later". */
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED || code == SQLITE_FULL ||
        code == SQLITE_IOERR || code == SQLITE_CANTOPEN)
        return AEI_EUNAVAILABLE;
    return AEI_EIO;
}

static int exec(struct store_sqlite *s, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        log_error("sqlite %s: %s", s->path, msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        return fail(s, "statement failed");
    }
    return 0;
}

static int sqlite_migrate(struct store_sqlite *s, char *err, size_t errlen)
{
    const struct migration *m = store_sqlite_migrations;
    char *msg = NULL;
    int rc = sqlite3_exec(s->db,
                          "BEGIN IMMEDIATE; CREATE TABLE IF NOT EXISTS schema_migrations ("
                          "version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                          "applied_at INTEGER NOT NULL)",
                          NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        goto err_msg;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT coalesce(max(version), 0) FROM schema_migrations", -1,
                           &st, NULL) != SQLITE_OK)
        goto err_db;
    sqlite3_step(st);
    int have = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    int known = 0;
    while (m[known].version)
        known++;
    if (have > known) {
        snprintf(err, errlen,
                 "database schema version %d is newer than this aeid knows (%d): upgrade aeid",
                 have, known);
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return AEI_EINVAL;
    }
    for (int i = have; i < known; i++) {
        if (sqlite3_exec(s->db, m[i].sql, NULL, NULL, &msg) != SQLITE_OK)
            goto err_msg;
        char sql[256];
        snprintf(sql, sizeof(sql),
                 "INSERT INTO schema_migrations VALUES (%d, '%s', "
                 "CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER))",
                 m[i].version, m[i].name);
        if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK)
            goto err_msg;
        log_info("store: applied sqlite migration %04d_%s", m[i].version, m[i].name);
    }
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK)
        goto err_msg;
    return 0;

err_db:
    snprintf(err, errlen, "migrating %s: %s", s->path, sqlite3_errmsg(s->db));
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return AEI_EIO;
err_msg:
    snprintf(err, errlen, "migrating %s: %s", s->path, msg ? msg : sqlite3_errmsg(s->db));
    sqlite3_free(msg);
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return AEI_EIO;
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

/* Binds ?1..?13 in the order of STORE_AGENT_COLUMNS followed by the server time. */
static void bind_heartbeat(sqlite3_stmt *st, const struct heartbeat *hb)
{
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, hb->agent_id, -1, SQLITE_STATIC);
    bind_text_or_null(st, 2, hb->name);
    sqlite3_bind_text(st, 3, hb_status_names[hb->status], -1, SQLITE_STATIC);
    for (int m = 0; m < HB_METRIC_COUNT; m++) {
        if (hb->has_metric[m])
            sqlite3_bind_double(st, 4 + m, hb->metric[m]);
        else
            sqlite3_bind_null(st, 4 + m);
    }
    bind_text_or_null(st, 9, hb->parent_agent_id);
    sqlite3_bind_text(st, 10, hb->children_json, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 11, hb->labels_json, -1, SQLITE_STATIC);
    if (hb->has_agent_ts)
        sqlite3_bind_int64(st, 12, hb->agent_ts);
    else
        sqlite3_bind_null(st, 12);
    sqlite3_bind_int64(st, 13, hb->server_ts);
}

static int sqlite_put_heartbeats(struct store *base, struct heartbeat *const *hbs, size_t n,
                                 const bool *latest, const int64_t *first_ts)
{
    struct store_sqlite *s = (struct store_sqlite *)base;
    int rc = exec(s, "BEGIN IMMEDIATE");
    if (rc)
        goto out;
    for (size_t i = 0; i < n; i++) {
        bind_heartbeat(s->insert_hb, hbs[i]);
        if (sqlite3_step(s->insert_hb) != SQLITE_DONE) {
            rc = fail(s, "inserting a heartbeat");
            goto err_rollback;
        }
        if (!latest[i])
            continue;
        bind_heartbeat(s->update_agent, hbs[i]);
        if (sqlite3_step(s->update_agent) != SQLITE_DONE) {
            rc = fail(s, "updating an agent");
            goto err_rollback;
        }
        if (sqlite3_changes(s->db) == 1)
            continue;
        bind_heartbeat(s->upsert_agent, hbs[i]);
        sqlite3_bind_int64(s->upsert_agent, 14, first_ts[i]);
        if (sqlite3_step(s->upsert_agent) != SQLITE_DONE) {
            rc = fail(s, "updating an agent");
            goto err_rollback;
        }
    }
    rc = exec(s, "COMMIT");
    if (rc)
        goto err_rollback;
    goto out;

err_rollback:
    sqlite3_reset(s->insert_hb);
    sqlite3_reset(s->update_agent);
    sqlite3_reset(s->upsert_agent);
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
out:
    sqlite3_reset(s->insert_hb);
    sqlite3_reset(s->update_agent);
    sqlite3_reset(s->upsert_agent);
    return rc;
}

static char *column_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    char *p = t ? strdup((const char *)t) : NULL;
    if (t && !p)
        abort();
    return p;
}

/* Reads one row in STORE_ROW_COLUMNS order. */
static void read_row(sqlite3_stmt *st, struct heartbeat *hb)
{
    memset(hb, 0, sizeof(*hb));
    snprintf(hb->agent_id, sizeof(hb->agent_id), "%s", (const char *)sqlite3_column_text(st, 0));
    hb->name = column_dup(st, 1);
    int status = hb_status_parse((const char *)sqlite3_column_text(st, 2));
    hb->status = status < 0 ? HB_ERROR : (enum hb_status)status;
    for (int m = 0; m < HB_METRIC_COUNT; m++) {
        hb->has_metric[m] = sqlite3_column_type(st, 3 + m) != SQLITE_NULL;
        hb->metric[m] = sqlite3_column_double(st, 3 + m);
    }
    hb->parent_agent_id = column_dup(st, 8);
    hb->children_json = column_dup(st, 9);
    hb->labels_json = column_dup(st, 10);
    hb->has_agent_ts = sqlite3_column_type(st, 11) != SQLITE_NULL;
    hb->agent_ts = sqlite3_column_int64(st, 11);
    hb->server_ts = sqlite3_column_int64(st, 12);
    hb->first_seen = sqlite3_column_int64(st, 13);
    hb->id = sqlite3_column_int64(st, 14);
}

/* Steps a bound statement to the end, collecting rows. */
static int collect(struct store_sqlite *s, sqlite3_stmt *st, struct heartbeat **out, size_t *n)
{
    size_t len = 0, cap = 16;
    struct heartbeat *rows = malloc(cap * sizeof(*rows));
    int rc;
    if (!rows)
        abort();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            cap *= 2;
            struct heartbeat *p = realloc(rows, cap * sizeof(*rows));
            if (!p)
                abort();
            rows = p;
        }
        read_row(st, &rows[len++]);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        store_free_rows(rows, len);
        return fail(s, "reading rows");
    }
    *out = rows;
    *n = len;
    return 0;
}

static int sqlite_list_agents(struct store *base, const char *after, int limit,
                              struct heartbeat **out, size_t *n)
{
    struct store_sqlite *s = (struct store_sqlite *)base;
    sqlite3_bind_text(s->list_agents, 1, after, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(s->list_agents, 2, limit); /* -1: no limit */
    return collect(s, s->list_agents, out, n);
}

static int sqlite_get_agent(struct store *base, const char *agent_id, struct heartbeat **out,
                            size_t *n)
{
    struct store_sqlite *s = (struct store_sqlite *)base;
    sqlite3_bind_text(s->get_agent, 1, agent_id, -1, SQLITE_TRANSIENT);
    return collect(s, s->get_agent, out, n);
}

static int sqlite_list_heartbeats(struct store *base, const struct hb_query *q,
                                  struct heartbeat **out, size_t *n)
{
    struct store_sqlite *s = (struct store_sqlite *)base;
    sqlite3_stmt *st = s->list_hbs;
    sqlite3_bind_text(st, 1, q->agent_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, q->from);
    sqlite3_bind_int64(st, 3, q->to);
    sqlite3_bind_int64(st, 4, q->after_ts);
    sqlite3_bind_int64(st, 5, q->after_id);
    sqlite3_bind_int(st, 6, q->limit);
    return collect(s, st, out, n);
}

static void sqlite_close(struct store *base)
{
    struct store_sqlite *s = (struct store_sqlite *)base;
    sqlite3_finalize(s->insert_hb);
    sqlite3_finalize(s->update_agent);
    sqlite3_finalize(s->upsert_agent);
    sqlite3_finalize(s->list_agents);
    sqlite3_finalize(s->get_agent);
    sqlite3_finalize(s->list_hbs);
    sqlite3_close(s->db);
    free(s->path);
    free(s);
}

static const struct store_ops sqlite_ops = {
    .name = "sqlite",
    .put_heartbeats = sqlite_put_heartbeats,
    .list_agents = sqlite_list_agents,
    .get_agent = sqlite_get_agent,
    .list_heartbeats = sqlite_list_heartbeats,
    .close = sqlite_close,
};

/* Prepares the statements; the tables exist only after migration, so this runs lazily. */
static int prepare_all(struct store_sqlite *s, char *err, size_t errlen)
{
    struct {
        sqlite3_stmt **st;
        const char *sql;
    } list[] = {{&s->insert_hb, SQL_INSERT_HB},       {&s->update_agent, SQL_UPDATE_AGENT},
                {&s->upsert_agent, SQL_UPSERT_AGENT}, {&s->list_agents, SQL_LIST_AGENTS},
                {&s->get_agent, SQL_GET_AGENT},       {&s->list_hbs, SQL_LIST_HBS}};
    for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++) {
        if (sqlite3_prepare_v3(s->db, list[i].sql, -1, SQLITE_PREPARE_PERSISTENT, list[i].st,
                               NULL) != SQLITE_OK) {
            snprintf(err, errlen, "preparing statements on %s: %s", s->path, sqlite3_errmsg(s->db));
            return AEI_EIO;
        }
    }
    return 0;
}

int store_sqlite_open(const char *path, struct store **out, char *err, size_t errlen)
{
    struct store_sqlite *s = calloc(1, sizeof(*s));
    if (!s || !(s->path = strdup(path)))
        abort();
    s->base.ops = &sqlite_ops;
    int rc = sqlite3_open_v2(
        path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open SQLite database %s: %s", path,
                 s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto err_close;
    }
    sqlite3_busy_timeout(s->db, 5000);
    /* WAL lets readers run beside the writer; synchronous=FULL makes each commit durable. */
    char *msg = NULL;
    if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL,
                     &msg) != SQLITE_OK) {
        snprintf(err, errlen, "cannot use SQLite database %s: %s", path,
                 msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        goto err_close;
    }
    char merr[256] = "";
    rc = sqlite_migrate(s, merr, sizeof(merr));
    if (rc) {
        snprintf(err, errlen, "%s", merr);
        goto err_close_rc;
    }
    rc = prepare_all(s, err, errlen);
    if (rc)
        goto err_close_rc;
    *out = &s->base;
    return 0;

err_close:
    rc = AEI_EUNAVAILABLE;
err_close_rc:
    sqlite_close(&s->base);
    return rc;
}
