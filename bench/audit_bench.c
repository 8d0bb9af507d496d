/* audit_bench.c - audit log benchmark at the store level: durable appends, verification of a
 * large log, and filtered pages from it, with the query plans (run by scripts/bench-audit.sh)
 *
 * Usage: audit-bench URL ROWS APPEND_SECONDS
 * Prints "key value" lines for the script to collect, and the plans between "plan NAME" and
 * "end plan" lines. */
#include "aei/error.h"
#include "common/log.h"
#include "common/time.h"
#include "server/audit_api.h"
#include "server/store.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEAMS 10
#define ACTORS 200
#define RESOURCES 20000
#define LOAD_BATCH 1000
#define PAGE_SAMPLES 1000
#define PAGE_LIMIT 100

static const char *const actions[] = {"execute", "pause",    "resume",   "terminate",
                                      "assign",  "override", "reassign", "token_create"};

static uint8_t key[AUDIT_KEY_LEN] = {1, 2, 3, 4};

static void fill_row(struct audit_row *r, const char *team, uint64_t n, int64_t ts)
{
    memset(r, 0, sizeof(*r));
    r->ts = ts;
    snprintf(r->team_id, sizeof(r->team_id), "%s", team);
    r->actor_type = AUDIT_ACTOR_USER;
    snprintf(r->actor_id, sizeof(r->actor_id), "user-%llu", (unsigned long long)(n * 7 % ACTORS));
    snprintf(r->action_type, sizeof(r->action_type), "%s", actions[n % 8]);
    snprintf(r->resource_id, sizeof(r->resource_id), "agent-%llu",
             (unsigned long long)(n * 13 % RESOURCES));
    char ctx[160];
    snprintf(ctx, sizeof(ctx),
             "{\"after\":{\"status\":\"paused\"},\"before\":{\"status\":\"processing\"},"
             "\"reason\":\"benchmark row %llu\"}",
             (unsigned long long)n);
    r->context = strdup(ctx);
}

static double seconds_since(int64_t start)
{
    return (double)(aei_mono_us() - start) / 1e6;
}

/* Durable appends for `secs` seconds, `per_tx` rows per transaction, one team. */
static void bench_appends(struct store *s, int per_tx, double secs, const char *name)
{
    struct audit_row rows[64];
    char team[64];
    snprintf(team, sizeof(team), "append-%d-%lld", per_tx, (long long)aei_now_us());
    int64_t start = aei_mono_us();
    uint64_t n = 0, tx = 0;
    while (seconds_since(start) < secs) {
        for (int i = 0; i < per_tx; i++)
            fill_row(&rows[i], team, n + (uint64_t)i, aei_now_us());
        if (store_append_audit(s, key, rows, (size_t)per_tx) != 0) {
            fprintf(stderr, "audit-bench: an append failed\n");
            exit(1);
        }
        for (int i = 0; i < per_tx; i++)
            audit_row_clear(&rows[i]);
        n += (uint64_t)per_tx;
        tx++;
    }
    double t = seconds_since(start);
    printf("%s_rows_per_s %.0f\n%s_tx_per_s %.0f\n", name, (double)n / t, name, (double)tx / t);
}

static void load(struct store *s, long total)
{
    struct audit_row *rows = calloc(LOAD_BATCH, sizeof(*rows));
    int64_t ts = 1700000000000000LL, start = aei_mono_us();
    for (long done = 0; done < total;) {
        char team[32];
        snprintf(team, sizeof(team), "team-%ld", (done / LOAD_BATCH) % TEAMS);
        int n = total - done < LOAD_BATCH ? (int)(total - done) : LOAD_BATCH;
        for (int i = 0; i < n; i++)
            fill_row(&rows[i], team, (uint64_t)(done + i), ts += 1000);
        if (store_append_audit(s, key, rows, (size_t)n) != 0) {
            fprintf(stderr, "audit-bench: loading failed\n");
            exit(1);
        }
        for (int i = 0; i < n; i++)
            audit_row_clear(&rows[i]);
        done += n;
    }
    printf("load_rows_per_s %.0f\n", (double)total / seconds_since(start));
    free(rows);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The filters measured, as a page of the audit route would ask for them. */
enum filter { F_ACTOR, F_RESOURCE, F_ACTION, F_ACTOR_RANGE, F_NONE, F_COUNT };
static const char *const filter_names[] = {"actor", "resource_id", "action_type", "actor_from_to",
                                           "none"};

static void make_query(struct audit_query *q, enum filter f, unsigned r, char *a, char *res)
{
    *q = (struct audit_query){.from = INT64_MIN,
                              .to = INT64_MAX,
                              .before_ts = INT64_MAX,
                              .before_id = INT64_MAX,
                              .limit = PAGE_LIMIT};
    snprintf(a, 32, "user-%u", r % ACTORS);
    snprintf(res, 32, "agent-%u", r % RESOURCES);
    if (f == F_ACTOR || f == F_ACTOR_RANGE)
        q->actor_id = a;
    if (f == F_RESOURCE)
        q->resource_id = res;
    if (f == F_ACTION)
        q->action_type = actions[r % 8];
    if (f == F_ACTOR_RANGE) {
        /* A window in the middle of the log. */
        q->from = 1700000000000000LL + 200000LL * 1000;
        q->to = q->from + 300000LL * 1000;
    }
}

/* Pages as GET /api/v0/audit builds them (each row verified, rendered as JSON). */
static void bench_pages(struct store *s)
{
    struct audit_state st = {0};
    memcpy(st.key, key, AUDIT_KEY_LEN);
    for (int f = 0; f < F_COUNT; f++) {
        double *lat = calloc(PAGE_SAMPLES, sizeof(*lat));
        size_t rows = 0;
        for (int i = 0; i < PAGE_SAMPLES; i++) {
            struct audit_job a = {.state = &st};
            make_query(&a.q, (enum filter)f, (unsigned)rand(), a.actor, a.resource);
            char *body = NULL;
            int64_t t0 = aei_mono_us();
            if (audit_api_page(s, &a, &body) != 0) {
                fprintf(stderr, "audit-bench: a page failed\n");
                exit(1);
            }
            lat[i] = (double)(aei_mono_us() - t0) / 1000.0;
            for (char *p = body; (p = strstr(p, "\"verified\":")); p++)
                rows++;
            free(body);
        }
        qsort(lat, PAGE_SAMPLES, sizeof(*lat), cmp_double);
        printf("page_%s_p50_ms %.3f\npage_%s_p99_ms %.3f\npage_%s_max_ms %.3f\n"
               "page_%s_rows_per_page %.1f\n",
               filter_names[f], lat[PAGE_SAMPLES / 2], filter_names[f],
               lat[PAGE_SAMPLES * 99 / 100], filter_names[f], lat[PAGE_SAMPLES - 1],
               filter_names[f], (double)rows / PAGE_SAMPLES);
        free(lat);
    }
}

/* EXPLAIN of each filter's page query, with the same SQL the store runs. */
static void plans(const char *url)
{
    bool pg = strncmp(url, "sqlite:", 7) != 0;
    sqlite3 *db = NULL;
    PGconn *conn = NULL;
    if (pg)
        conn = PQconnectdb(url);
    else
        sqlite3_open(url + 7, &db);
    for (int f = 0; f < F_COUNT; f++) {
        struct audit_query q;
        char a[32], res[32];
        make_query(&q, (enum filter)f, 4242, a, res);
        struct buf sql = {0};
        printf("plan %s\n", filter_names[f]);
        if (pg) {
            buf_puts(&sql, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) ");
            store_pg_audit_sql(&q, &sql);
            char from[24], to[24], lim[8];
            snprintf(from, sizeof(from), "%lld", (long long)q.from);
            snprintf(to, sizeof(to), "%lld", (long long)q.to);
            snprintf(lim, sizeof(lim), "%d", q.limit);
            const char *params[6] = {from, to, "9223372036854775807", "9223372036854775807", lim};
            int np = 5;
            if (q.actor_id)
                params[np++] = q.actor_id;
            if (q.action_type)
                params[np++] = q.action_type;
            if (q.resource_id)
                params[np++] = q.resource_id;
            PGresult *r = PQexecParams(conn, sql.data, np, NULL, params, NULL, NULL, 0);
            for (int i = 0; i < PQntuples(r); i++)
                printf("  %s\n", PQgetvalue(r, i, 0));
            PQclear(r);
        } else {
            buf_puts(&sql, "EXPLAIN QUERY PLAN ");
            store_sqlite_audit_sql(&q, &sql);
            sqlite3_stmt *st;
            sqlite3_prepare_v2(db, sql.data, -1, &st, NULL);
            if (q.actor_id)
                sqlite3_bind_text(st, 2, q.actor_id, -1, SQLITE_STATIC);
            if (q.action_type)
                sqlite3_bind_text(st, 3, q.action_type, -1, SQLITE_STATIC);
            if (q.resource_id)
                sqlite3_bind_text(st, 4, q.resource_id, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 5, q.from);
            sqlite3_bind_int64(st, 6, q.to);
            sqlite3_bind_int64(st, 7, INT64_MAX);
            sqlite3_bind_int64(st, 8, INT64_MAX);
            sqlite3_bind_int(st, 9, q.limit);
            while (sqlite3_step(st) == SQLITE_ROW)
                printf("  %s\n", (const char *)sqlite3_column_text(st, 3));
            sqlite3_finalize(st);
        }
        printf("end plan\n");
        buf_free(&sql);
    }
    if (pg)
        PQfinish(conn);
    else
        sqlite3_close(db);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: audit-bench URL ROWS APPEND_SECONDS\n");
        return 2;
    }
    log_set_level(LOG_WARN);
    const char *url = argv[1];
    long total = atol(argv[2]);
    double secs = atof(argv[3]);
    struct store *s;
    char err[256];
    if (store_open(url, &s, err, sizeof(err)) != 0) {
        fprintf(stderr, "audit-bench: %s\n", err);
        return 1;
    }
    srand(42);
    bench_appends(s, 1, secs, "append_1");
    bench_appends(s, 16, secs, "append_16");
    load(s, total);
    if (strncmp(url, "sqlite:", 7) != 0) {
        /* Fresh statistics, as autovacuum would gather them soon after a bulk load. */
        PGconn *c = PQconnectdb(url);
        PQclear(PQexec(c, "ANALYZE audit_logs"));
        PQfinish(c);
    } else {
        sqlite3 *db;
        sqlite3_open(url + 7, &db);
        sqlite3_exec(db, "ANALYZE", NULL, NULL, NULL);
        sqlite3_close(db);
    }
    /* Verification: every chain, twice; the second run has the pages cached, as a server's
     * would be. */
    for (int run = 0; run < 2; run++) {
        struct audit_verifier v;
        audit_verify_init(&v, key, NULL, 0);
        int64_t t0 = aei_mono_us();
        if (store_verify_audit(s, NULL, &v) != 0 || v.fault) {
            fprintf(stderr, "audit-bench: verification failed: %s\n", v.why);
            return 1;
        }
        double t = seconds_since(t0);
        printf("verify_rows %lld\nverify_run%d_seconds %.3f\nverify_run%d_rows_per_s %.0f\n",
               (long long)v.checked, run + 1, t, run + 1, (double)v.checked / t);
    }
    /* The keyed hash alone, for comparison with the walk. */
    {
        struct audit_row r;
        fill_row(&r, "team-0", 1, 1700000000000000LL);
        int64_t t0 = aei_mono_us();
        uint8_t h[AUDIT_HASH_LEN];
        for (int i = 0; i < 1000000; i++) {
            r.seq = i;
            audit_hash(key, &r, h);
        }
        printf("hash_only_rows_per_s %.0f\n", 1e6 / seconds_since(t0));
        audit_row_clear(&r);
    }
    bench_pages(s);
    store_close(s);
    plans(url);
    return 0;
}
