/* test_retention.c - retention and rollups with an injected clock, on SQLite and (with
 * AEI_TEST_PG_URL) PostgreSQL, each test on a store of its own */
#include "aei/error.h"
#include "server/retention.h"
#include "server/store.h"
#include "store_fixture.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "Today" in these tests: 2024-10-04 (day 20000); retention runs at its noon. */
#define D0 20000
#define HOUR (3600 * 1000000LL)
#define NOW ((int64_t)D0 * STORE_DAY_US + 12 * HOUR)
#define AT(day, hour) ((int64_t)(day)*STORE_DAY_US + (hour)*HOUR)

static const struct retention_policy policy = {
    .heartbeat_days = 7, .trace_days = 30, .batch_rows = 2};

/* Metrics given as NAN are left out of the heartbeat. */
static void put_hb(struct store *s, const char *agent, int64_t ts, double cpu, double mem,
                   double tpm, double cost)
{
    struct heartbeat hb = {.status = HB_PROCESSING, .server_ts = ts};
    snprintf(hb.agent_id, sizeof(hb.agent_id), "%s", agent);
    double v[HB_METRIC_COUNT] = {
        [HB_CPU] = cpu, [HB_MEM] = mem, [HB_TPM] = tpm, [HB_COST] = cost, [HB_CONFIDENCE] = NAN};
    for (int m = 0; m < HB_METRIC_COUNT; m++) {
        hb.has_metric[m] = !isnan(v[m]);
        hb.metric[m] = hb.has_metric[m] ? v[m] : 0;
    }
    hb.children_json = strdup("[]");
    hb.labels_json = strdup("{}");
    struct heartbeat *one[1] = {&hb};
    cr_assert_eq(store_put_heartbeats(s, one, 1), 0);
    hb_clear(&hb);
}

static size_t count_heartbeats(struct store *s, const char *agent)
{
    struct hb_query q = {agent, INT64_MIN, INT64_MAX, INT64_MIN, INT64_MIN, 1000};
    struct heartbeat *rows;
    size_t n;
    cr_assert_eq(store_list_heartbeats(s, &q, &rows, &n), 0);
    store_free_rows(rows, n);
    return n;
}

/* Reads all of an agent's rollups (at most 16). */
static size_t rollups(struct store *s, const char *agent, struct rollup *out)
{
    struct rollup_query q = {agent, INT64_MIN, INT64_MAX, INT64_MIN, 16};
    struct rollup *rows;
    size_t n;
    cr_assert_eq(store_list_rollups(s, &q, &rows, &n), 0);
    memcpy(out, rows, n * sizeof(*rows));
    free(rows);
    return n;
}

static void run(struct store *s, int64_t now, struct retention_stats *st)
{
    cr_assert_eq(retention_run_all(s, &policy, now, st), 0);
}

Test(retention, rollups_then_raw_heartbeats_go)
{
    char urls[2][512];
    int n = store_fixture_fresh_urls(urls, "aei_ret_hb");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        /* Agent a: day -10 has a reset of its cumulative cost (1.5 -> 0.25). */
        put_hb(s, "a", AT(D0 - 10, 1), 10, 40, 100, 1.0);
        put_hb(s, "a", AT(D0 - 10, 2), 20, 50, 300, 1.5);
        put_hb(s, "a", AT(D0 - 10, 3), 30, NAN, 200, 0.25);
        put_hb(s, "b", AT(D0 - 10, 4), NAN, NAN, NAN, NAN);
        put_hb(s, "a", AT(D0 - 9, 5), 50, NAN, NAN, 0.75);
        put_hb(s, "a", AT(D0 - 9, 6), NAN, NAN, NAN, NAN);
        put_hb(s, "a", AT(D0 - 1, 23), NAN, NAN, NAN, 2.0);
        put_hb(s, "a", AT(D0, 1), NAN, NAN, NAN, 2.5);

        /* Raw rows are never deleted before they are rolled up. */
        int64_t deleted;
        char dropped[64];
        cr_assert_eq(store_expire_heartbeats(s, NOW, 100, &deleted, dropped, sizeof(dropped)), 0);
        cr_assert_eq(deleted, 0, "%s: deleted rows not rolled up", urls[u]);
        cr_assert_str_empty(dropped);

        struct retention_stats st;
        run(s, NOW, &st);
        cr_assert_eq(st.rolled_up, 7, "%s: rolled up %lld", urls[u], (long long)st.rolled_up);
        cr_assert_eq(count_heartbeats(s, "a"), 2, "%s: days -1 and 0 stay raw", urls[u]);
        cr_assert_eq(count_heartbeats(s, "b"), 0, "%s", urls[u]);

        struct rollup r[16];
        cr_assert_eq(rollups(s, "a", r), 3, "%s: today is not rolled up", urls[u]);
        cr_assert_eq(r[0].day, D0 - 10);
        cr_assert_eq(r[0].heartbeats, 3);
        cr_assert_eq(r[0].cpu_n, 3);
        cr_assert_eq(r[0].cpu_sum, 60);
        cr_assert_eq(r[0].cpu_max, 30);
        cr_assert_eq(r[0].mem_n, 2);
        cr_assert_eq(r[0].mem_sum, 90);
        cr_assert_eq(r[0].mem_max, 50);
        cr_assert(r[0].has_tokens_per_min);
        cr_assert_eq(r[0].tokens_per_min_max, 300);
        /* 1.0 (the first report) + 0.5 + 0.25 (after the reset). */
        cr_assert_eq(r[0].cost_added, 1.75, "%s: %g", urls[u], r[0].cost_added);
        cr_assert_eq(r[1].day, D0 - 9);
        cr_assert_eq(r[1].heartbeats, 2);
        cr_assert_eq(r[1].cpu_n, 1);
        cr_assert_eq(r[1].cpu_max, 50);
        cr_assert_eq(r[1].mem_n, 0);
        cr_assert_not(r[1].has_tokens_per_min);
        cr_assert_eq(r[1].cost_added, 0.5, "%s: the step from the day before", urls[u]);
        cr_assert_eq(r[2].day, D0 - 1);
        cr_assert_eq(r[2].cost_added, 1.25, "%s: %g", urls[u], r[2].cost_added);
        cr_assert_eq(rollups(s, "b", r), 1);
        cr_assert_eq(r[0].heartbeats, 1);
        cr_assert_eq(r[0].cpu_n, 0);
        cr_assert_not(r[0].has_tokens_per_min);
        cr_assert_eq(r[0].cost_added, 0);

        /* Running again at the same time changes nothing. */
        run(s, NOW, &st);
        cr_assert_eq(st.rolled_up + st.heartbeats_deleted + st.partitions_dropped, 0, "%s",
                     urls[u]);
        struct rollup again[16];
        cr_assert_eq(rollups(s, "a", again), 3);
        cr_assert_eq(again[0].heartbeats, 3);
        cr_assert_eq(again[0].cost_added, 1.75);
        cr_assert_eq(again[2].cost_added, 1.25);
        cr_assert_eq(count_heartbeats(s, "a"), 2);

        /* A day later, today is rolled up too, its rise measured from yesterday's 2.0. */
        run(s, NOW + STORE_DAY_US, &st);
        cr_assert_eq(st.rolled_up, 1, "%s", urls[u]);
        cr_assert_eq(rollups(s, "a", r), 4);
        cr_assert_eq(r[3].day, D0);
        cr_assert_eq(r[3].cost_added, 0.5);

        /* Pages by day range and cursor. */
        struct rollup_query q = {"a", D0 - 9, D0 - 1, INT64_MIN, 1};
        struct rollup *page;
        size_t np;
        cr_assert_eq(store_list_rollups(s, &q, &page, &np), 0);
        cr_assert_eq(np, 1);
        cr_assert_eq(page[0].day, D0 - 9);
        free(page);
        q.after_day = D0 - 9;
        q.limit = 5;
        cr_assert_eq(store_list_rollups(s, &q, &page, &np), 0);
        cr_assert_eq(np, 1, "%s: to is inclusive", urls[u]);
        cr_assert_eq(page[0].day, D0 - 1);
        free(page);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

Test(retention, heartbeats_deleted_in_bounded_batches)
{
    char urls[2][512];
    int n = store_fixture_fresh_urls(urls, "aei_ret_batch");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        for (int i = 0; i < 5; i++)
            put_hb(s, "a", AT(D0 - 20, i), i, NAN, NAN, NAN);
        put_hb(s, "a", AT(D0, 1), 1, NAN, NAN, NAN);
        int rows;
        cr_assert_eq(store_rollup_step(s, retention_rollup_cutoff(NOW), 4, &rows), 0);
        cr_assert_eq(rows, 4, "%s: at most max_rows rolled up per step", urls[u]);
        cr_assert_eq(store_rollup_step(s, retention_rollup_cutoff(NOW), 4, &rows), 0);
        cr_assert_eq(rows, 1, "%s: today's heartbeat waits", urls[u]);
        int64_t cutoff = retention_heartbeat_cutoff(&policy, NOW), deleted;
        char dropped[64];
        /* On SQLite, and on PostgreSQL for rows that sit in the default partition (no daily
         * partition was made for that day), deletion goes 2 rows per transaction. */
        int64_t expect[] = {2, 2, 1, 0};
        for (int i = 0; i < 4; i++) {
            cr_assert_eq(store_expire_heartbeats(s, cutoff, 2, &deleted, dropped, sizeof(dropped)),
                         0);
            cr_assert_eq(deleted, expect[i], "%s: step %d deleted %lld", urls[u], i,
                         (long long)deleted);
            cr_assert_str_empty(dropped);
        }
        cr_assert_eq(count_heartbeats(s, "a"), 1);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

/* Runs a query on PostgreSQL and returns its single value as a number. */
static long long pg_value(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    long long v = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

Test(retention, postgres_partitions_made_ahead_and_dropped_whole)
{
    char urls[2][512];
    if (store_fixture_fresh_urls(urls, "aei_ret_part") < 2)
        cr_skip_test("AEI_TEST_PG_URL is not set");
    struct store *s = store_fixture_open(urls[1]);
    PGconn *c = PQconnectdb(urls[1]);
    cr_assert_eq(PQstatus(c), CONNECTION_OK);

    /* 2024-09-25 (day -9) has no partition yet: its heartbeat lands in the default one, and
     * moves to its own partition when that is made. */
    put_hb(s, "a", AT(D0 - 9, 1), 10, NAN, NAN, 1);
    cr_assert_eq(pg_value(c, "SELECT count(*) FROM heartbeats_default"), 1);
    int made;
    cr_assert_eq(store_make_partitions(s, D0 - 9, D0 - 8, &made), 0);
    cr_assert_eq(made, 2);
    cr_assert_eq(pg_value(c, "SELECT count(*) FROM heartbeats_default"), 0);
    cr_assert_eq(pg_value(c, "SELECT count(*) FROM heartbeats_20240925"), 1);
    cr_assert_eq(store_make_partitions(s, D0 - 9, D0 - 8, &made), 0);
    cr_assert_eq(made, 0, "making them again is a no-op");
    put_hb(s, "a", AT(D0 - 8, 2), 20, NAN, NAN, 3);
    put_hb(s, "a", AT(D0 - 8, 3), 30, NAN, NAN, 4);
    cr_assert_eq(pg_value(c, "SELECT count(*) FROM heartbeats_20240926"), 2);
    /* No later heartbeat: the rollup position stops inside the last partition to go. */

    struct retention_stats st;
    run(s, NOW, &st);
    cr_assert_eq(st.partitions_dropped, 2, "dropped %lld", (long long)st.partitions_dropped);
    cr_assert_eq(st.partitions_made, RETENTION_PARTITIONS_AHEAD + 2, "yesterday to 3 days ahead");
    cr_assert_eq(pg_value(c, "SELECT count(*) FROM pg_class WHERE relname IN "
                             "('heartbeats_20240925', 'heartbeats_20240926')"),
                 0);
    cr_assert_eq(pg_value(c, "SELECT count(*) FROM pg_class WHERE relname IN "
                             "('heartbeats_20241003', 'heartbeats_20241007')"),
                 2, "partitions exist ahead");
    cr_assert_eq(count_heartbeats(s, "a"), 0);
    struct rollup r[16];
    cr_assert_eq(rollups(s, "a", r), 2);
    cr_assert_eq(r[1].day, D0 - 8);
    cr_assert_eq(r[1].heartbeats, 2);
    cr_assert_eq(r[1].cpu_sum, 50);
    cr_assert_eq(r[1].cost_added, 3, "1 -> 3 -> 4");

    run(s, NOW, &st);
    cr_assert_eq(st.partitions_dropped + st.partitions_made + st.rolled_up, 0, "idempotent");
    PQfinish(c);
    store_close(s);
}

static void put_decision(struct store *s, const char *id, const char *exec, const char *parent,
                         int64_t ts)
{
    struct decision d = {.server_ts = ts};
    snprintf(d.decision_id, sizeof(d.decision_id), "%s", id);
    snprintf(d.execution_id, sizeof(d.execution_id), "%s", exec);
    snprintf(d.agent_id, sizeof(d.agent_id), "agent");
    if (parent)
        snprintf(d.parent_id, sizeof(d.parent_id), "%s", parent);
    d.alternatives_json = strdup("[]");
    d.labels_json = strdup("{}");
    struct decision *one[1] = {&d};
    bool stored;
    cr_assert_eq(store_put_decisions(s, one, 1, &stored), 0);
    decision_clear(&d);
}

static bool has_execution(struct store *s, const char *id)
{
    struct execution e;
    int rc = store_get_execution(s, id, &e);
    cr_assert(rc == 0 || rc == AEI_ENOTFOUND);
    return rc == 0;
}

Test(retention, executions_go_after_their_last_activity)
{
    char urls[2][512];
    int n = store_fixture_fresh_urls(urls, "aei_ret_tr");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        put_decision(s, "e1-root", "e1", NULL, AT(D0 - 40, 1));
        put_decision(s, "e1-kid", "e1", "e1-root", AT(D0 - 40, 2));
        /* Started long ago, but still active. */
        put_decision(s, "e2-root", "e2", NULL, AT(D0 - 40, 3));
        put_decision(s, "e2-kid", "e2", "e2-root", AT(D0 - 5, 3));
        put_decision(s, "e3-root", "e3", NULL, AT(D0 - 2, 3));
        /* Five decisions: three transactions of at most two. */
        put_decision(s, "e4-0", "e4", NULL, AT(D0 - 35, 1));
        for (int i = 1; i < 5; i++) {
            char id[16], parent[16];
            snprintf(id, sizeof(id), "e4-%d", i);
            snprintf(parent, sizeof(parent), "e4-%d", i - 1);
            put_decision(s, id, "e4", parent, AT(D0 - 35, 1 + i));
        }
        /* Asked directly, an active execution is left alone (the check is made again inside
         * the deleting transaction, as a decision may arrive after the listing). */
        int64_t deleted;
        bool gone;
        cr_assert_eq(store_expire_execution(s, "e2", retention_trace_cutoff(&policy, NOW), 2,
                                            &deleted, &gone),
                     0);
        cr_assert_eq(deleted, 0, "%s", urls[u]);
        cr_assert_not(gone);
        struct retention_stats st;
        run(s, NOW, &st);
        cr_assert_eq(st.executions_deleted, 2, "%s", urls[u]);
        cr_assert_eq(st.decisions_deleted, 7, "%s", urls[u]);
        cr_assert_not(has_execution(s, "e1"));
        cr_assert_not(has_execution(s, "e4"));
        cr_assert(has_execution(s, "e2"), "%s: an active execution stays", urls[u]);
        cr_assert(has_execution(s, "e3"));
        struct decision_query q = {.execution_id = "e2", .limit = 10};
        struct decision *ds;
        size_t nd;
        cr_assert_eq(store_list_decisions(s, &q, &ds, &nd), 0);
        cr_assert_eq(nd, 2, "%s: kept whole", urls[u]);
        store_free_decisions(ds, nd);
        /* Decisions of a deleted execution do not linger. */
        q.execution_id = "e4";
        cr_assert_eq(store_list_decisions(s, &q, &ds, &nd), 0);
        cr_assert_eq(nd, 0);
        store_free_decisions(ds, nd);

        run(s, NOW, &st);
        cr_assert_eq(st.executions_deleted + st.decisions_deleted, 0, "idempotent");
        /* Once e2 has been quiet for 30 days, it goes too. */
        run(s, AT(D0 + 26, 0), &st);
        cr_assert_eq(st.executions_deleted, 1);
        cr_assert_not(has_execution(s, "e2"));
        cr_assert(has_execution(s, "e3"));
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

Test(retention, days)
{
    char out[RETENTION_DAY_LEN];
    int64_t d;
    retention_day_format(0, out);
    cr_assert_str_eq(out, "1970-01-01");
    retention_day_format(-1, out);
    cr_assert_str_eq(out, "1969-12-31");
    retention_day_format(D0, out);
    cr_assert_str_eq(out, "2024-10-04");
    cr_assert(retention_day_parse("2024-02-29", &d));
    retention_day_format(d, out);
    cr_assert_str_eq(out, "2024-02-29");
    for (int64_t day = -800; day < 80000; day += 37) {
        retention_day_format(day, out);
        cr_assert(retention_day_parse(out, &d), "%s", out);
        cr_assert_eq(d, day, "%s", out);
    }
    const char *bad[] = {"2023-02-29", "2024-13-01", "2024-00-10",
                         "2024-1-01",  "2024-01-32", "2024-01-01T00:00:00Z",
                         "",           "yesterday",  "2024/01/01"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_not(retention_day_parse(bad[i], &d), "%s", bad[i]);
    cr_assert_eq(retention_day(-1), -1);
    cr_assert_eq(retention_day(STORE_DAY_US), 1);
}

/* A PostgreSQL store made by an aeid before partitioning keeps its heartbeats, ids and all. */
Test(retention, postgres_migration_keeps_heartbeats)
{
    char urls[2][512];
    if (store_fixture_fresh_urls(urls, "aei_ret_mig") < 2)
        cr_skip_test("AEI_TEST_PG_URL is not set");
    PGconn *c = PQconnectdb(urls[1]);
    cr_assert_eq(PQstatus(c), CONNECTION_OK);
    PGresult *res = PQexec(c, "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                              "name TEXT NOT NULL, applied_at BIGINT NOT NULL); "
                              "INSERT INTO schema_migrations VALUES (1, 'heartbeats', 0), "
                              "(2, 'traces', 0)");
    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
    PQclear(res);
    for (int i = 0; i < 2; i++) {
        res = PQexec(c, store_pg_migrations[i].sql);
        cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
        PQclear(res);
    }
    /* Three old days and today's, through the old table's identity column. */
    res = PQexec(c, "INSERT INTO heartbeats (agent_id, server_ts, status, cpu_pct, "
                    "child_agent_ids, labels) SELECT 'a', t, 'idle', 1, '[]', '{}' FROM "
                    "unnest(ARRAY[1727740800000000, 1727827200000000, 1727827200000001, "
                    "1000, (extract(epoch FROM now()) * 1000000)::bigint]) t");
    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
    PQclear(res);

    struct store *s = store_fixture_open(urls[1]);
    cr_assert_eq(count_heartbeats(s, "a"), 5);
    cr_assert_eq(pg_value(c, "SELECT count(*) FROM heartbeats_20241001"), 1);
    cr_assert_eq(pg_value(c, "SELECT count(*) FROM heartbeats_20241002"), 2);
    cr_assert_eq(pg_value(c, "SELECT count(*) FROM heartbeats_19700101"), 1);
    cr_assert_eq(pg_value(c, "SELECT count(*) FROM heartbeats_default"), 0);
    cr_assert_eq(pg_value(c, "SELECT max(id) FROM heartbeats"), 5);
    put_hb(s, "a", AT(D0 + 1000, 1), 1, NAN, NAN, NAN);
    cr_assert_eq(pg_value(c, "SELECT max(id) FROM heartbeats"), 6, "ids go on from the old ones");
    /* Keyset pages over the partitions. */
    struct hb_query q = {"a", INT64_MIN, INT64_MAX, 1727827200000000, 2, 2};
    struct heartbeat *rows;
    size_t n;
    cr_assert_eq(store_list_heartbeats(s, &q, &rows, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(rows[0].server_ts, 1727827200000001);
    store_free_rows(rows, n);
    PQfinish(c);
    store_close(s);
}
