/* test_store.c - one set of store behaviours, run on SQLite and (with AEI_TEST_PG_URL) PostgreSQL
 */
#include "aei/error.h"
#include "common/time.h"
#include "server/store.h"
#include "store_fixture.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct heartbeat make(const char *id, enum hb_status st, int64_t ts, double cpu)
{
    struct heartbeat hb = {.status = st, .server_ts = ts};
    snprintf(hb.agent_id, sizeof(hb.agent_id), "%s", id);
    hb.metric[HB_CPU] = cpu;
    hb.has_metric[HB_CPU] = true;
    hb.children_json = strdup("[\"kid-1\"]");
    hb.labels_json = strdup("{\"role\":\"test\"}");
    return hb;
}

/* A prefix unique to this run, so that PostgreSQL runs do not see each other's agents. */
static void unique(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s-%d-%lld", name, (int)getpid(), (long long)(aei_now_us() % 1000000000));
}

Test(store, batch_keeps_latest_state_per_agent)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-unit");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        char a[64], b[64];
        unique(a, sizeof(a), "a");
        unique(b, sizeof(b), "b");
        struct heartbeat hbs[3] = {make(a, HB_IDLE, 1000, 1), make(b, HB_WAITING, 1001, 2),
                                   make(a, HB_ERROR, 1002, 3)};
        hbs[2].name = strdup("Agent A");
        struct heartbeat *ptrs[3] = {&hbs[0], &hbs[1], &hbs[2]};
        cr_assert_eq(store_put_heartbeats(s, ptrs, 3), 0, "%s", urls[u]);

        struct heartbeat got;
        cr_assert_eq(store_get_agent(s, a, &got), 0);
        cr_assert_eq(got.status, HB_ERROR, "%s: the last heartbeat of the batch wins", urls[u]);
        cr_assert_eq(got.metric[HB_CPU], 3);
        cr_assert_eq(got.first_seen, 1000, "%s: first_seen is the first heartbeat", urls[u]);
        cr_assert_eq(got.server_ts, 1002);
        cr_assert_str_eq(got.name, "Agent A");
        cr_assert_not(got.has_metric[HB_MEM]);
        hb_clear(&got);

        /* A later heartbeat without a name keeps the name. */
        struct heartbeat later = make(a, HB_IDLE, 2000, 4);
        struct heartbeat *one[1] = {&later};
        cr_assert_eq(store_put_heartbeats(s, one, 1), 0);
        cr_assert_eq(store_get_agent(s, a, &got), 0);
        cr_assert_str_eq(got.name, "Agent A");
        cr_assert_eq(got.first_seen, 1000);
        hb_clear(&got);
        hb_clear(&later);

        cr_assert_eq(store_get_agent(s, "no-such-agent-xyz", &got), AEI_ENOTFOUND);
        struct heartbeat *rows;
        size_t nrows;
        cr_assert_eq(store_list_agents(s, "", -1, &rows, &nrows), 0);
        int seen = 0;
        for (size_t i = 0; i < nrows; i++) {
            seen += strcmp(rows[i].agent_id, a) == 0 || strcmp(rows[i].agent_id, b) == 0;
            if (i)
                cr_assert_lt(strcmp(rows[i - 1].agent_id, rows[i].agent_id), 0, "ordered by id");
        }
        cr_assert_eq(seen, 2);
        store_free_rows(rows, nrows);
        for (int i = 0; i < 3; i++)
            hb_clear(&hbs[i]);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

/* The first page of one agent's whole history, `limit` heartbeats long. */
static struct hb_query whole_history(const char *agent, int limit)
{
    return (struct hb_query){.agent_id = agent,
                             .from = INT64_MIN,
                             .to = INT64_MAX,
                             .after_ts = INT64_MIN,
                             .after_id = INT64_MIN,
                             .limit = limit};
}

/* Whether two JSON texts hold the same value (PostgreSQL prints jsonb its own way). */
static bool same_json(const char *a, const char *b)
{
    json_t *x = json_loads(a, 0, NULL), *y = json_loads(b, 0, NULL);
    bool same = x && y && json_equal(x, y);
    json_decref(x);
    json_decref(y);
    return same;
}

/* Checks that a stored heartbeat reads back with every field as it was sent. */
static void assert_same_heartbeat(const struct heartbeat *got, const struct heartbeat *sent,
                                  const char *url)
{
    cr_assert_str_eq(got->agent_id, sent->agent_id, "%s", url);
    cr_assert_eq(got->status, sent->status, "%s", url);
    cr_assert_eq(got->server_ts, sent->server_ts, "%s", url);
    cr_assert_eq(got->has_agent_ts, sent->has_agent_ts, "%s", url);
    if (sent->has_agent_ts)
        cr_assert_eq(got->agent_ts, sent->agent_ts, "%s", url);
    for (int m = 0; m < HB_METRIC_COUNT; m++) {
        cr_assert_eq(got->has_metric[m], sent->has_metric[m], "%s: metric %d", url, m);
        if (sent->has_metric[m])
            cr_assert_eq(got->metric[m], sent->metric[m], "%s: metric %d", url, m);
    }
    cr_assert_eq(!got->name, !sent->name, "%s", url);
    if (sent->name)
        cr_assert_str_eq(got->name, sent->name, "%s", url);
    cr_assert_eq(!got->parent_agent_id, !sent->parent_agent_id, "%s", url);
    if (sent->parent_agent_id)
        cr_assert_str_eq(got->parent_agent_id, sent->parent_agent_id, "%s", url);
    cr_assert(same_json(got->children_json, sent->children_json), "%s: %s", url,
              got->children_json);
    cr_assert(same_json(got->labels_json, sent->labels_json), "%s: %s", url, got->labels_json);
}

/* Every field of a heartbeat, present or absent, with text that needs escaping, reads back as
 * sent, in a batch that registers one agent, updates another and holds two of the first. The
 * agent takes the last name its heartbeats in the batch carry, whichever batch they share; a new
 * agent takes the team of its first heartbeat ("" for the default one), a known one keeps its
 * own. */
Test(store, heartbeats_read_back_as_sent_with_every_field_present_or_absent)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-unit");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        char full[64], bare[64];
        unique(full, sizeof(full), "full");
        unique(bare, sizeof(bare), "bare");

        struct heartbeat first = make(bare, HB_IDLE, 5000, 0);
        snprintf(first.team_id, sizeof(first.team_id), "%s", "");
        struct heartbeat *one[1] = {&first};
        cr_assert_eq(store_put_heartbeats(s, one, 1), 0, "%s", urls[u]);

        struct heartbeat hbs[3] = {make(full, HB_PROCESSING, 6000, 12.5),
                                   make(bare, HB_COMPLETE, 6001, 0), make(full, HB_ERROR, 6002, 0)};
        struct heartbeat *f = &hbs[0];
        f->name = strdup("Zoë \"the\" \\ planner\n\t✓");
        f->parent_agent_id = strdup("parent.agent:1");
        free(f->children_json);
        f->children_json = strdup("[\"kid-1\",\"kid_2\"]");
        free(f->labels_json);
        f->labels_json = strdup("{\"quote\":\"\\\"\",\"ünï\":\"✓ \\u0001\"}");
        double values[HB_METRIC_COUNT] = {12.5, 4.9e-324, 1e15, 0.1, 100};
        for (int m = 0; m < HB_METRIC_COUNT; m++)
            f->metric[m] = values[m], f->has_metric[m] = true;
        f->agent_ts = -123456789012LL, f->has_agent_ts = true;
        snprintf(f->team_id, sizeof(f->team_id), "%s", "team-a");
        for (int i = 1; i < 3; i++) {
            struct heartbeat *b = &hbs[i];
            b->has_metric[HB_CPU] = false; /* nothing optional at all */
            free(b->children_json);
            b->children_json = strdup("[]");
            free(b->labels_json);
            b->labels_json = strdup("{}");
            snprintf(b->team_id, sizeof(b->team_id), "%s", "team-z");
        }
        struct heartbeat *ptrs[3] = {&hbs[0], &hbs[1], &hbs[2]};
        cr_assert_eq(store_put_heartbeats(s, ptrs, 3), 0, "%s", urls[u]);

        struct hb_query q = whole_history(full, 10);
        struct heartbeat *rows;
        size_t nrows;
        cr_assert_eq(store_list_heartbeats(s, &q, &rows, &nrows), 0);
        cr_assert_eq(nrows, 2, "%s", urls[u]);
        assert_same_heartbeat(&rows[0], &hbs[0], urls[u]);
        assert_same_heartbeat(&rows[1], &hbs[2], urls[u]);
        store_free_rows(rows, nrows);

        struct heartbeat got;
        cr_assert_eq(store_get_agent(s, full, &got), 0);
        cr_assert_str_eq(got.name, hbs[0].name, "%s: the name outlives a heartbeat without one",
                         urls[u]);
        free(got.name);
        got.name = NULL;
        assert_same_heartbeat(&got, &hbs[2], urls[u]);
        cr_assert_eq(got.first_seen, 6000, "%s", urls[u]);
        cr_assert_str_eq(got.team_id, "team-a", "%s: a new agent takes its first heartbeat's team",
                         urls[u]);
        hb_clear(&got);
        cr_assert_eq(store_get_agent(s, bare, &got), 0);
        assert_same_heartbeat(&got, &hbs[1], urls[u]);
        cr_assert_eq(got.first_seen, 5000, "%s", urls[u]);
        cr_assert_str_eq(got.team_id, "default", "%s: a known agent keeps its team", urls[u]);
        hb_clear(&got);

        hb_clear(&first);
        for (int i = 0; i < 3; i++)
            hb_clear(&hbs[i]);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

/* Reads one agent's whole history in pages of `limit`, checking that cpu_pct counts up from 0
 * (each agent's heartbeats carry their own sequence number there); returns how many it read. */
static int read_history(struct store *s, const char *agent, int limit)
{
    struct hb_query q = whole_history(agent, limit);
    int seen = 0;
    for (;;) {
        struct heartbeat *rows;
        size_t nrows;
        cr_assert_eq(store_list_heartbeats(s, &q, &rows, &nrows), 0);
        for (size_t i = 0; i < nrows; i++)
            cr_assert_eq(rows[i].metric[HB_CPU], seen++, "%s: heartbeat %d in order", agent, seen);
        if (nrows)
            q.after_ts = rows[nrows - 1].server_ts, q.after_id = rows[nrows - 1].id;
        store_free_rows(rows, nrows);
        if (nrows < (size_t)limit)
            return seen;
    }
}

struct racing_put {
    struct store *s;
    struct heartbeat *hb;
    int rc;
};

static void *put_one(void *arg)
{
    struct racing_put *r = arg;
    r->rc = store_put_heartbeats(r->s, &r->hb, 1);
    return NULL;
}

/* PostgreSQL, where several aeid nodes may write: a batch for an agent that another writer
 * registers while the batch is on its way updates that agent; it is neither registered twice nor
 * lost, and keeps the team and first_seen of its registration. */
Test(store, a_new_agent_registered_meanwhile_by_another_writer_is_updated)
{
    char urls[2][512];
    if (store_fixture_urls(urls, "aei-unit") < 2)
        cr_skip_test("AEI_TEST_PG_URL is not set");
    struct store *first = store_fixture_open(urls[1]), *second = store_fixture_open(urls[1]);
    char id[64];
    unique(id, sizeof(id), "race");
    struct heartbeat one = make(id, HB_IDLE, 7000, 0), two = make(id, HB_ERROR, 7001, 1);
    one.name = strdup("One");
    two.name = strdup("Two");
    snprintf(one.team_id, sizeof(one.team_id), "%s", "team-1");
    snprintf(two.team_id, sizeof(two.team_id), "%s", "team-2");

    /* The first writer's batch holds the new agent's key in a transaction left open... */
    PGconn *c = store_pg_conn(first);
    PGresult *res = PQexec(c, "BEGIN");
    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    struct heartbeat *ptr = &one;
    cr_assert_eq(store_put_heartbeats(first, &ptr, 1), 0);
    /* ... while the second writer's batch, which did not see the agent, waits for it. */
    struct racing_put r = {second, &two, -1};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, put_one, &r), 0);
    usleep(300000);
    res = PQexec(c, "COMMIT");
    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    pthread_join(t, NULL);
    cr_assert_eq(r.rc, 0, "the second batch is stored");

    struct heartbeat got;
    cr_assert_eq(store_get_agent(second, id, &got), 0);
    cr_assert_str_eq(got.name, "Two");
    cr_assert_eq(got.status, HB_ERROR);
    cr_assert_eq(got.server_ts, 7001);
    cr_assert_eq(got.first_seen, 7000, "first_seen of the registration");
    cr_assert_str_eq(got.team_id, "team-1", "the team of the registration");
    hb_clear(&got);
    cr_assert_eq(read_history(second, id, 10), 2, "both heartbeats are stored");
    hb_clear(&one);
    hb_clear(&two);
    store_close(first);
    store_close(second);
}

Test(store, history_pages_by_keyset_without_gaps)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-unit");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        char a[64];
        unique(a, sizeof(a), "hist");
        enum { N = 25 };
        struct heartbeat hbs[N];
        struct heartbeat *ptrs[N];
        for (int i = 0; i < N; i++) {
            /* Pairs of equal times: the id breaks the tie. */
            hbs[i] = make(a, HB_PROCESSING, 5000 + i / 2, i);
            ptrs[i] = &hbs[i];
        }
        cr_assert_eq(store_put_heartbeats(s, ptrs, N), 0);
        cr_assert_eq(read_history(s, a, 10), N, "%s", urls[u]);

        struct hb_query window = {.agent_id = a,
                                  .from = 5002,
                                  .to = 5004,
                                  .after_ts = INT64_MIN,
                                  .after_id = INT64_MIN,
                                  .limit = 100};
        struct heartbeat *rows;
        size_t nrows;
        cr_assert_eq(store_list_heartbeats(s, &window, &rows, &nrows), 0);
        cr_assert_eq(nrows, 4, "from is inclusive, to exclusive");
        store_free_rows(rows, nrows);
        for (int i = 0; i < N; i++)
            hb_clear(&hbs[i]);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

static int64_t sqlite_value(const char *url, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_open(url + strlen("sqlite:"), &db), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* SQLite adds heartbeats to its history index a few thousand at a time (store_sqlite.c,
 * HISTORY_BULK); pages must read the same across that mark, before and after it, and after a
 * restart, and ids must never be reused once retention empties the table. */
Test(store, history_reads_the_same_across_the_bulk_index_mark, .timeout = 240)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-unit");
    for (int u = 0; u < n; u++) {
        bool sqlite = strncmp(urls[u], "sqlite:", 7) == 0;
        struct store *s = store_fixture_open(urls[u]);
        enum { AGENTS = 3, BATCH = 100, BATCHES = 100 };
        char agents[AGENTS][64];
        for (int a = 0; a < AGENTS; a++) {
            char name[16];
            snprintf(name, sizeof(name), "bulk-%c", 'a' + a);
            unique(agents[a], sizeof(agents[a]), name);
        }
        int sent[AGENTS] = {0};
        int64_t ts = 1000000;
        for (int b = 0; b < BATCHES; b++) {
            struct heartbeat hbs[BATCH], *ptrs[BATCH];
            for (int i = 0; i < BATCH; i++) {
                /* Agent c only ever sends the first batch's heartbeats: its history is all in
                 * the index once the mark is passed. Times repeat in pairs; the id breaks ties. */
                int a = b == 0 ? i % AGENTS : i % (AGENTS - 1);
                hbs[i] = make(agents[a], HB_PROCESSING, ts + (b * BATCH + i) / 2, sent[a]++);
                ptrs[i] = &hbs[i];
            }
            cr_assert_eq(store_put_heartbeats(s, ptrs, BATCH), 0);
            for (int i = 0; i < BATCH; i++)
                hb_clear(&hbs[i]);
            if (b == 0 || b == BATCHES / 2 || b == BATCHES - 1)
                for (int a = 0; a < AGENTS; a++)
                    cr_assert_eq(read_history(s, agents[a], 97), sent[a], "%s after batch %d",
                                 urls[u], b);
        }
        if (sqlite) {
            int64_t indexed =
                sqlite_value(urls[u], "SELECT indexed_id FROM heartbeat_history_state");
            cr_assert_gt(indexed, 0, "the mark was passed and heartbeats were indexed in bulk");
            cr_assert_lt(indexed, BATCH * BATCHES, "some heartbeats wait outside the index");
            cr_assert_eq(sqlite_value(urls[u], "SELECT count(*) FROM heartbeat_history"), indexed);
        }
        store_close(s);

        s = store_fixture_open(urls[u]);
        for (int a = 0; a < AGENTS; a++)
            cr_assert_eq(read_history(s, agents[a], 1000), sent[a], "%s after a restart", urls[u]);
        store_close(s);

        if (sqlite) {
            /* Retention deletes every row, indexed or not; their index entries go with them, and
             * new ids stay above every id the index has seen even when the table is empty. */
            s = store_fixture_open(urls[u]);
            int64_t before = ts + BATCH * BATCHES, deleted;
            int rows;
            char dropped[64];
            do
                cr_assert_eq(store_rollup_step(s, before, 1000, &rows), 0);
            while (rows == 1000);
            do
                cr_assert_eq(
                    store_expire_heartbeats(s, before, 1000, &deleted, dropped, sizeof(dropped)),
                    0);
            while (deleted);
            cr_assert_eq(sqlite_value(urls[u], "SELECT count(*) FROM heartbeats"), 0);
            cr_assert_eq(sqlite_value(urls[u], "SELECT count(*) FROM heartbeat_history"), 0);
            struct heartbeat again = make(agents[0], HB_IDLE, ts * 2, 0);
            struct heartbeat *one[1] = {&again};
            cr_assert_eq(store_put_heartbeats(s, one, 1), 0);
            hb_clear(&again);
            cr_assert_eq(read_history(s, agents[0], 10), 1, "a new heartbeat after the purge");
            cr_assert_gt(sqlite_value(urls[u], "SELECT max(id) FROM heartbeats"),
                         sqlite_value(urls[u], "SELECT indexed_id FROM heartbeat_history_state"));
            store_close(s);
        }
        store_fixture_remove(urls[u]);
    }
}

static void sqlite_run(const char *url, const char *sql)
{
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(url + strlen("sqlite:"), &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);
}

/* A batch that passes the bulk index mark and then fails takes its index entries and the mark
 * with it: nothing of it is stored, and the same batch stored again is indexed once. */
Test(store, a_failed_batch_at_the_bulk_index_mark_leaves_the_index_as_it_was)
{
    char urls[2][512];
    store_fixture_urls(urls, "aei-unit");
    const char *url = urls[0]; /* SQLite alone has the bulk index */
    struct store *s = store_fixture_open(url);
    enum { AGENTS = 4, BATCH = 100, BEFORE = 40 }; /* 4,000 heartbeats: below the 4,096 mark */
    char agents[AGENTS][64];
    for (int a = 0; a < AGENTS; a++) {
        char name[16];
        snprintf(name, sizeof(name), "mark-%c", 'a' + a);
        unique(agents[a], sizeof(agents[a]), name);
    }
    int sent[AGENTS] = {0};
    struct heartbeat hbs[BATCH], *ptrs[BATCH];
    for (int b = 0; b <= BEFORE; b++) {
        for (int i = 0; i < BATCH; i++) {
            int a = i % AGENTS;
            hbs[i] = make(agents[a], HB_WAITING, 1000 + b * BATCH + i, sent[a] + i / AGENTS);
            ptrs[i] = &hbs[i];
        }
        if (b == BEFORE) /* the index's step fails after it has added the entries */
            sqlite_run(url, "CREATE TRIGGER poison BEFORE UPDATE ON heartbeat_history_state "
                            "BEGIN SELECT RAISE(ABORT, 'poisoned'); END");
        int rc = store_put_heartbeats(s, ptrs, BATCH);
        if (b < BEFORE) {
            cr_assert_eq(rc, 0);
            for (int i = 0; i < BATCH; i++)
                hb_clear(&hbs[i]);
            for (int a = 0; a < AGENTS; a++)
                sent[a] += BATCH / AGENTS;
        } else {
            cr_assert_neq(rc, 0, "the batch passing the mark runs the index's step and fails");
        }
    }
    cr_assert_eq(sqlite_value(url, "SELECT count(*) FROM heartbeats"), BEFORE * BATCH);
    cr_assert_eq(sqlite_value(url, "SELECT count(*) FROM heartbeat_history"), 0);
    cr_assert_eq(sqlite_value(url, "SELECT indexed_id FROM heartbeat_history_state"), 0);
    for (int a = 0; a < AGENTS; a++)
        cr_assert_eq(read_history(s, agents[a], 333), sent[a]);

    sqlite_run(url, "DROP TRIGGER poison");
    cr_assert_eq(store_put_heartbeats(s, ptrs, BATCH), 0);
    for (int i = 0; i < BATCH; i++)
        hb_clear(&hbs[i]);
    for (int a = 0; a < AGENTS; a++)
        sent[a] += BATCH / AGENTS;
    int64_t total = (BEFORE + 1) * BATCH;
    cr_assert_eq(sqlite_value(url, "SELECT indexed_id FROM heartbeat_history_state"), total);
    cr_assert_eq(sqlite_value(url, "SELECT count(*) FROM heartbeat_history"), total);
    for (int a = 0; a < AGENTS; a++)
        cr_assert_eq(read_history(s, agents[a], 333), sent[a]);
    store_close(s);
    store_fixture_remove(url);
}

/* A SQLite store written before migration 0009 keeps every agent's history when it is opened. */
Test(store, upgrading_to_the_bulk_history_index_keeps_the_history)
{
    char urls[2][512];
    store_fixture_urls(urls, "aei-unit");
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(urls[0] + strlen("sqlite:"), &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db,
                              "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                              "name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    for (int i = 0; i < 8; i++) {
        char *msg = NULL;
        cr_assert_eq(sqlite3_exec(db, store_sqlite_migrations[i].sql, NULL, NULL, &msg), SQLITE_OK,
                     "%s", msg);
        char sql[128];
        snprintf(sql, sizeof(sql), "INSERT INTO schema_migrations VALUES (%d, 'old', 0)", i + 1);
        cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    }
    /* Two agents, interleaved, cpu_pct counting each one's heartbeats. */
    cr_assert_eq(
        sqlite3_exec(db,
                     "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n "
                     "WHERE i < 299) INSERT INTO heartbeats (agent_id, server_ts, status, "
                     "cpu_pct, child_agent_ids, labels) SELECT CASE i % 2 WHEN 0 THEN "
                     "'old-a' ELSE 'old-b' END, 1000 + i, 'idle', i / 2, '[]', '{}' FROM n",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);

    struct store *s = store_fixture_open(urls[0]);
    cr_assert_eq(read_history(s, "old-a", 64), 150);
    cr_assert_eq(read_history(s, "old-b", 64), 150);
    cr_assert_eq(sqlite_value(urls[0], "SELECT count(*) FROM heartbeat_history"), 300);
    cr_assert_eq(sqlite_value(urls[0], "SELECT indexed_id FROM heartbeat_history_state"), 300);
    struct heartbeat next = make("old-a", HB_IDLE, 5000, 150);
    struct heartbeat *one[1] = {&next};
    cr_assert_eq(store_put_heartbeats(s, one, 1), 0);
    hb_clear(&next);
    cr_assert_eq(read_history(s, "old-a", 64), 151, "a new heartbeat follows the old ones");
    store_close(s);
    store_fixture_remove(urls[0]);
}

Test(store, reopening_applies_no_migration_twice)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-unit");
    for (int u = 0; u < n; u++) {
        store_close(store_fixture_open(urls[u]));
        store_close(store_fixture_open(urls[u]));
        store_fixture_remove(urls[u]);
    }
}

Test(store, bad_urls_say_what_is_wrong)
{
    struct store *s = NULL;
    char err[256];
    cr_assert_eq(store_open("mysql://x", &s, err, sizeof(err)), AEI_EINVAL);
    cr_assert(strstr(err, "sqlite:"), "%s", err);
    cr_assert_eq(store_open("sqlite:", &s, err, sizeof(err)), AEI_EINVAL);
    cr_assert_neq(store_open("sqlite:/nonexistent-dir/x.db", &s, err, sizeof(err)), 0);
    cr_assert(strstr(err, "/nonexistent-dir/x.db"), "%s", err);
    cr_assert_eq(store_open("postgresql://nobody@127.0.0.1:1/x", &s, err, sizeof(err)),
                 AEI_EUNAVAILABLE);
    cr_assert(strstr(err, "cannot connect to PostgreSQL"), "%s", err);
    cr_assert_null(s);
}

Test(store, agents_page_by_id_after_a_cursor)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-unit");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        char prefix[64], ids[5][96];
        unique(prefix, sizeof(prefix), "page");
        struct heartbeat hbs[5];
        struct heartbeat *ptrs[5];
        for (int i = 0; i < 5; i++) {
            snprintf(ids[i], sizeof(ids[i]), "%s-%d", prefix, i);
            hbs[i] = make(ids[i], HB_IDLE, 9000 + i, i);
            ptrs[i] = &hbs[i];
        }
        cr_assert_eq(store_put_heartbeats(s, ptrs, 5), 0);
        struct heartbeat *rows;
        size_t nrows;
        /* Two after the first of ours: the second and the third, in id order. */
        cr_assert_eq(store_list_agents(s, ids[0], 2, &rows, &nrows), 0);
        cr_assert_eq(nrows, 2, "%s", urls[u]);
        cr_assert_str_eq(rows[0].agent_id, ids[1]);
        cr_assert_str_eq(rows[1].agent_id, ids[2]);
        store_free_rows(rows, nrows);
        cr_assert_eq(store_list_agents(s, ids[4], -1, &rows, &nrows), 0);
        for (size_t i = 0; i < nrows; i++)
            cr_assert_gt(strcmp(rows[i].agent_id, ids[4]), 0, "only agents after the cursor");
        store_free_rows(rows, nrows);
        for (int i = 0; i < 5; i++)
            hb_clear(&hbs[i]);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}
