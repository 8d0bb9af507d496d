/* test_store_audit.c - the audit log, teams, users and tokens in the store, run on SQLite and
 * (with AEI_TEST_PG_URL) PostgreSQL: chains, concurrent appenders, the refusal of UPDATE and
 * DELETE, tampering detected with the right reason, pages, tokens */
#include "aei/error.h"
#include "common/time.h"
#include "server/store.h"
#include "store_fixture.h"

#include <blake3.h>
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint8_t key[AUDIT_KEY_LEN] = {7, 7, 7};

/* A team name unique to this run, so that PostgreSQL runs do not see each other's rows. */
static void unique(char *out, size_t n, const char *name)
{
    static int seq;
    snprintf(out, n, "%s-%d-%lld-%d", name, (int)getpid(), (long long)(aei_now_us() % 1000000000),
             seq++);
}

static struct audit_row make(const char *team, const char *actor, const char *action,
                             const char *resource, int64_t ts)
{
    struct audit_row r = {.ts = ts, .actor_type = AUDIT_ACTOR_USER};
    snprintf(r.team_id, sizeof(r.team_id), "%s", team);
    snprintf(r.actor_id, sizeof(r.actor_id), "%s", actor);
    snprintf(r.action_type, sizeof(r.action_type), "%s", action);
    snprintf(r.resource_id, sizeof(r.resource_id), "%s", resource);
    r.context = strdup("{\"reason\":\"test\"}");
    return r;
}

/* Appends n rows to team, one transaction each. */
static void fill(struct store *s, const char *team, int n)
{
    for (int i = 0; i < n; i++) {
        char res[32];
        snprintf(res, sizeof(res), "agent-%d", i);
        struct audit_row r = make(team, "alice", "pause", res, 1000 + i);
        cr_assert_eq(store_append_audit(s, key, &r, 1), 0);
        cr_assert_gt(r.id, 0);
        audit_row_clear(&r);
    }
}

/* Verifies one team against an optional checkpoint head. */
static struct audit_verifier verify(struct store *s, const char *team, const struct audit_head *cp)
{
    struct audit_verifier v;
    audit_verify_init(&v, key, cp, cp ? 1 : 0);
    cr_assert_eq(store_verify_audit(s, team, &v), 0);
    return v;
}

/* The head of one team. */
static struct audit_head head_of(struct store *s, const char *team)
{
    struct audit_head *heads, h = {0};
    size_t n;
    cr_assert_eq(store_audit_heads(s, &heads, &n), 0);
    for (size_t i = 0; i < n; i++)
        if (strcmp(heads[i].team_id, team) == 0)
            h = heads[i];
    free(heads);
    cr_assert_gt(h.seq, 0, "no head for %s", team);
    return h;
}

/* Runs SQL on the store behind the application's back: with bypass, past the triggers (SQLite:
 * they are dropped from the test's file; PostgreSQL: session_replication_role = replica,
 * which skips ordinary triggers for this session alone). Returns true if it succeeded, else
 * false with the database's message in err. */
static bool raw_sql(const char *url, const char *sql, bool bypass, char *err, size_t errlen)
{
    if (strncmp(url, "sqlite:", 7) == 0) {
        sqlite3 *db;
        cr_assert_eq(sqlite3_open(url + 7, &db), SQLITE_OK);
        sqlite3_busy_timeout(db, 5000);
        char *msg = NULL;
        if (bypass)
            cr_assert_eq(sqlite3_exec(db,
                                      "DROP TRIGGER IF EXISTS audit_logs_no_update; "
                                      "DROP TRIGGER IF EXISTS audit_logs_no_delete",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        bool ok = sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK;
        snprintf(err, errlen, "%s", msg ? msg : "");
        sqlite3_free(msg);
        sqlite3_close(db);
        return ok;
    }
    PGconn *c = PQconnectdb(url);
    cr_assert_eq(PQstatus(c), CONNECTION_OK);
    if (bypass)
        PQclear(PQexec(c, "SET session_replication_role = replica"));
    PGresult *res = PQexec(c, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
    snprintf(err, errlen, "%s", PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(c);
    return ok;
}

/* Runs sql past the triggers with every "%s" in it replaced by team. */
static void tamper(const char *url, const char *sql, const char *team)
{
    struct buf b = {0};
    for (const char *p = sql; *p;) {
        const char *at = strstr(p, "%s");
        size_t n = at ? (size_t)(at - p) : strlen(p);
        buf_append(&b, p, n);
        p += n;
        if (at) {
            buf_puts(&b, team);
            p += 2;
        }
    }
    char err[512];
    cr_assert(raw_sql(url, b.data, true, err, sizeof(err)), "%s: %s", b.data, err);
    buf_free(&b);
}

/* Removes a tampered team's rows, so that a shared PostgreSQL database keeps clean chains. */
static void forget(const char *url, const char *team)
{
    tamper(url, "DELETE FROM audit_logs WHERE team_id = '%s'", team);
}

Test(store_audit, appends_make_one_chain_per_team)
{
    char urls[2][512];
    /* A database of its own: the walk over every team below would also meet the teams that the
     * tampering tests change, when they run at the same time. */
    int n = store_fixture_fresh_urls(urls, "aei-audit-chain");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        char a[64], b[64];
        unique(a, sizeof(a), "team-a");
        unique(b, sizeof(b), "team-b");
        struct audit_row rows[3] = {make(a, "alice", "pause", "agent-1", 10),
                                    make(a, "alice", "resume", "agent-1", 11),
                                    make(a, "bob", "terminate", "agent-2", 12)};
        cr_assert_eq(store_append_audit(s, key, rows, 3), 0, "%s", urls[u]);
        cr_assert_eq(rows[0].seq, 1);
        cr_assert_eq(rows[2].seq, 3);
        cr_assert(rows[0].id > 0 && rows[1].id > rows[0].id && rows[2].id > rows[1].id);
        cr_assert_eq(memcmp(rows[1].prev_hash, rows[0].hash, AUDIT_HASH_LEN), 0);
        uint8_t zero[AUDIT_HASH_LEN] = {0};
        cr_assert_eq(memcmp(rows[0].prev_hash, zero, AUDIT_HASH_LEN), 0);
        for (int i = 0; i < 3; i++)
            audit_row_clear(&rows[i]);
        fill(s, b, 2);
        fill(s, a, 2);
        struct audit_verifier v = verify(s, a, NULL);
        cr_assert_eq(v.fault, AUDIT_FAULT_NONE, "%s: %s", urls[u], v.why);
        cr_assert_eq(v.checked, 5);
        v = verify(s, b, NULL);
        cr_assert_eq(v.fault, AUDIT_FAULT_NONE, "%s", v.why);
        cr_assert_eq(v.checked, 2);
        struct audit_head h = head_of(s, a);
        cr_assert_eq(h.seq, 5);
        /* Every team at once, as aei audit verify walks them. */
        audit_verify_init(&v, key, NULL, 0);
        cr_assert_eq(store_verify_audit(s, NULL, &v), 0);
        cr_assert_eq(v.fault, AUDIT_FAULT_NONE, "%s", v.why);
        cr_assert_geq(v.checked, 7);
        /* A bad context is refused by the store's caller, not stored: canonical_value. */
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

struct appender {
    const char *url;
    const char *team;
    int rows;
    pthread_barrier_t *start;
    int failures;
};

static void *append_thread(void *arg)
{
    struct appender *a = arg;
    struct store *s = NULL;
    char err[256];
    if (store_open(a->url, &s, err, sizeof(err)) != 0) {
        a->failures = a->rows;
        pthread_barrier_wait(a->start);
        return NULL;
    }
    pthread_barrier_wait(a->start);
    for (int i = 0; i < a->rows; i++) {
        struct audit_row r = make(a->team, "op", "execute", "agent", aei_now_us());
        if (store_append_audit(s, key, &r, 1) != 0)
            a->failures++;
        audit_row_clear(&r);
    }
    store_close(s);
    return NULL;
}

Test(store_audit, fifty_concurrent_appenders_make_contiguous_chains, .timeout = 120)
{
    enum { THREADS = 50, ROWS = 4 };
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-audit-concurrent");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]); /* migrates before the threads start */
        char teams[2][64];
        unique(teams[0], sizeof(teams[0]), "conc-a");
        unique(teams[1], sizeof(teams[1]), "conc-b");
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, THREADS);
        pthread_t th[THREADS];
        struct appender ap[THREADS];
        for (int i = 0; i < THREADS; i++) {
            ap[i] = (struct appender){urls[u], teams[i % 2], ROWS, &start, 0};
            pthread_create(&th[i], NULL, append_thread, &ap[i]);
        }
        int failures = 0;
        for (int i = 0; i < THREADS; i++) {
            pthread_join(th[i], NULL);
            failures += ap[i].failures;
        }
        pthread_barrier_destroy(&start);
        cr_assert_eq(failures, 0, "%s: %d appends failed", urls[u], failures);
        for (int t = 0; t < 2; t++) {
            struct audit_verifier v = verify(s, teams[t], NULL);
            cr_assert_eq(v.fault, AUDIT_FAULT_NONE, "%s: %s", urls[u], v.why);
            cr_assert_eq(v.checked, THREADS / 2 * ROWS);
            cr_assert_eq(head_of(s, teams[t]).seq, THREADS / 2 * ROWS);
        }
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

Test(store_audit, the_store_refuses_update_and_delete)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-audit-refuse");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        char team[64], sql[256], err[512];
        unique(team, sizeof(team), "refuse");
        fill(s, team, 2);
        snprintf(sql, sizeof(sql), "UPDATE audit_logs SET context = '{}' WHERE team_id = '%s'",
                 team);
        cr_assert_not(raw_sql(urls[u], sql, false, err, sizeof(err)), "UPDATE was allowed");
        cr_assert(strstr(err, "immutable: UPDATE refused"), "%s", err);
        snprintf(sql, sizeof(sql), "DELETE FROM audit_logs WHERE team_id = '%s'", team);
        cr_assert_not(raw_sql(urls[u], sql, false, err, sizeof(err)), "DELETE was allowed");
        cr_assert(strstr(err, "immutable: DELETE refused"), "%s", err);
        /* SQLite has no TRUNCATE; DELETE without WHERE is its form of it. */
        bool pg = strncmp(urls[u], "sqlite:", 7) != 0;
        cr_assert_not(raw_sql(urls[u], pg ? "TRUNCATE audit_logs" : "DELETE FROM audit_logs", false,
                              err, sizeof(err)));
        cr_assert(strstr(err, pg ? "TRUNCATE refused" : "DELETE refused"), "%s", err);
        struct audit_verifier v = verify(s, team, NULL);
        cr_assert_eq(v.fault, AUDIT_FAULT_NONE, "%s", v.why);
        cr_assert_eq(v.checked, 2);
        if (pg) {
            /* The application role may read and append, nothing more. */
            cr_assert(raw_sql(urls[u],
                              "DO $$ BEGIN IF has_table_privilege('aei_app', 'audit_logs', "
                              "'UPDATE') OR has_table_privilege('aei_app', 'audit_logs', "
                              "'DELETE') OR has_table_privilege('aei_app', 'audit_logs', "
                              "'TRUNCATE') OR NOT has_table_privilege('aei_app', 'audit_logs', "
                              "'INSERT') OR NOT has_table_privilege('aei_app', 'audit_logs', "
                              "'SELECT') THEN RAISE EXCEPTION 'wrong grants'; END IF; END $$",
                              false, err, sizeof(err)),
                      "%s", err);
            snprintf(sql, sizeof(sql),
                     "SET ROLE aei_app; UPDATE audit_logs SET context = '{}' WHERE team_id = "
                     "'%s'",
                     team);
            cr_assert_not(raw_sql(urls[u], sql, true, err, sizeof(err)));
            cr_assert(strstr(err, "permission denied"), "%s", err);
        }
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

/* One tampering scenario: a fresh team of five rows, checkpointed at its head, then changed by
 * sql (with %s for the team), then verified. */
struct scenario {
    const char *name;
    const char *sql;
    enum audit_fault want;
    int64_t bad_seq; /* the seq of the row reported (its id is checked against it) */
    bool rehash;     /* also re-hash row 3 without the key (done in C) */
};

static void rehash_without_key(const char *url, struct store *s, const char *team)
{
    /* The forger changes row 3 and hashes it as well as one can without the key: BLAKE3 of the
     * same encoding, unkeyed. */
    struct audit_row found = {0};
    struct audit_row *page;
    size_t n;
    struct audit_query q = {.team_id = team,
                            .from = INT64_MIN,
                            .to = INT64_MAX,
                            .before_ts = INT64_MAX,
                            .before_id = INT64_MAX,
                            .limit = 10};
    cr_assert_eq(store_list_audit(s, &q, &page, &n), 0);
    for (size_t i = 0; i < n; i++)
        if (page[i].seq == 3) {
            found = page[i];
            found.context = strdup("{\"reason\":\"forged\"}");
        }
    store_free_audit(page, n);
    struct buf b = {0};
    audit_encode(&found, &b);
    uint8_t h[AUDIT_HASH_LEN];
    blake3_hasher hs;
    blake3_hasher_init(&hs);
    blake3_hasher_update(&hs, b.data, b.len);
    blake3_hasher_finalize(&hs, h, AUDIT_HASH_LEN);
    char hex[AUDIT_HEX_LEN + 1], sql[512], err[512];
    audit_hex(h, AUDIT_HASH_LEN, hex);
    snprintf(sql, sizeof(sql),
             "UPDATE audit_logs SET context = '%s', immutable_hash = '%s' WHERE team_id = '%s' "
             "AND seq = 3",
             found.context, hex, team);
    cr_assert(raw_sql(url, sql, true, err, sizeof(err)), "%s", err);
    buf_free(&b);
    audit_row_clear(&found);
}

static int64_t id_of(struct store *s, const char *team, int64_t seq)
{
    struct audit_row *page;
    size_t n;
    struct audit_query q = {.team_id = team,
                            .from = INT64_MIN,
                            .to = INT64_MAX,
                            .before_ts = INT64_MAX,
                            .before_id = INT64_MAX,
                            .limit = 100};
    cr_assert_eq(store_list_audit(s, &q, &page, &n), 0);
    int64_t id = 0;
    for (size_t i = 0; i < n; i++)
        if (page[i].seq == seq)
            id = page[i].id;
    store_free_audit(page, n);
    return id;
}

Test(store_audit, tampering_is_detected_with_the_right_reason, .timeout = 120)
{
    static const struct scenario scenarios[] = {
        {"a changed context",
         "UPDATE audit_logs SET context = '{\"reason\":\"forged\"}' WHERE team_id = '%s' AND "
         "seq = 3",
         AUDIT_FAULT_HASH, 3, false},
        {"a row re-hashed without the key", NULL, AUDIT_FAULT_HASH, 3, true},
        {"a deleted middle row", "DELETE FROM audit_logs WHERE team_id = '%s' AND seq = 3",
         AUDIT_FAULT_GAP, 4, false},
        {"deleted last rows", "DELETE FROM audit_logs WHERE team_id = '%s' AND seq >= 4",
         AUDIT_FAULT_SHORT, 3, false},
        {"two rows swapped",
         "UPDATE audit_logs SET seq = -2 WHERE team_id = '%s' AND seq = 2; "
         "UPDATE audit_logs SET seq = 2 WHERE team_id = '%s' AND seq = 3; "
         "UPDATE audit_logs SET seq = 3 WHERE team_id = '%s' AND seq = -2",
         AUDIT_FAULT_LINK, 2, false},
        /* Rows 3..5 move up one; the forgery takes seq 3 with a link to row 2 and a made-up
         * hash (an attacker without the key can do no better). */
        {"a forged row inserted",
         "UPDATE audit_logs SET seq = -(seq + 1) WHERE team_id = '%s' AND seq >= 3; "
         "UPDATE audit_logs SET seq = -seq WHERE team_id = '%s' AND seq < 0; "
         "INSERT INTO audit_logs (team_id, seq, ts, actor_type, actor_id, action_type, "
         "resource_id, context, prev_hash, immutable_hash) SELECT team_id, 3, ts + 1, 'user', "
         "'mallory', 'override', 'agent-9', '{}', immutable_hash, "
         "'00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff' FROM audit_logs "
         "WHERE team_id = '%s' AND seq = 2",
         AUDIT_FAULT_HASH, 3, false},
    };
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-audit-tamper");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        for (size_t k = 0; k < sizeof(scenarios) / sizeof(scenarios[0]); k++) {
            const struct scenario *sc = &scenarios[k];
            char team[64];
            unique(team, sizeof(team), "tamper");
            fill(s, team, 5);
            struct audit_head cp = head_of(s, team);
            struct audit_verifier v = verify(s, team, &cp);
            cr_assert_eq(v.fault, AUDIT_FAULT_NONE, "%s before: %s", sc->name, v.why);
            if (sc->rehash)
                rehash_without_key(urls[u], s, team);
            else
                tamper(urls[u], sc->sql, team);
            /* The row that now holds bad_seq: the forged one, the one moved up, ... */
            int64_t want_id = id_of(s, team, sc->bad_seq);
            v = verify(s, team, &cp);
            cr_assert_eq(v.fault, sc->want, "%s on %s: got %s (%s)", sc->name, urls[u],
                         audit_fault_names[v.fault], v.why);
            cr_assert_eq(v.bad_id, want_id, "%s: bad row %lld, expected %lld", sc->name,
                         (long long)v.bad_id, (long long)want_id);
            cr_assert_str_eq(v.bad_team, team);
            if (sc->want == AUDIT_FAULT_SHORT) {
                /* Without the checkpoint a truncated tail looks whole: why it exists. */
                v = verify(s, team, NULL);
                cr_assert_eq(v.fault, AUDIT_FAULT_NONE, "%s", v.why);
                cr_assert_eq(v.checked, 3);
            }
            forget(urls[u], team);
        }
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

/* A log longer than a scan page (PostgreSQL reads 10,000 rows a page and asks for the next
 * before hashing the last): every row is checked once, and a walk that stops on an early page
 * leaves the connection fit for the next statement. */
Test(store_audit, a_walk_spans_pages_and_stops_early_cleanly, .timeout = 240)
{
    enum { ROWS = 25000, PER_TX = 500 };
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-audit-pages");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        char team[64];
        unique(team, sizeof(team), "long");
        struct audit_row *rows = calloc(PER_TX, sizeof(*rows));
        cr_assert(rows);
        for (int done = 0; done < ROWS; done += PER_TX) {
            for (int i = 0; i < PER_TX; i++)
                rows[i] = make(team, "alice", "pause", "agent-1", 1000 + done + i);
            cr_assert_eq(store_append_audit(s, key, rows, PER_TX), 0);
            for (int i = 0; i < PER_TX; i++)
                audit_row_clear(&rows[i]);
        }
        free(rows);
        struct audit_head cp = head_of(s, team);
        struct audit_verifier v = verify(s, team, &cp);
        cr_assert_eq(v.fault, AUDIT_FAULT_NONE, "%s", v.why);
        cr_assert_eq(v.checked, ROWS);
        tamper(urls[u],
               "UPDATE audit_logs SET context = '{\"reason\":\"forged\"}' WHERE team_id = '%s' "
               "AND seq = 5",
               team);
        /* Row seq 5 has ts 1004; id_of() looks at the newest rows only. */
        struct audit_row *page;
        size_t np;
        struct audit_query q = {.team_id = team,
                                .from = 1004,
                                .to = 1005,
                                .before_ts = INT64_MAX,
                                .before_id = INT64_MAX,
                                .limit = 10};
        cr_assert_eq(store_list_audit(s, &q, &page, &np), 0);
        cr_assert_eq(np, 1);
        cr_assert_eq(page[0].seq, 5);
        int64_t want_id = page[0].id;
        store_free_audit(page, np);
        for (int again = 0; again < 2; again++) {
            v = verify(s, team, &cp);
            cr_assert_eq(v.fault, AUDIT_FAULT_HASH, "on %s: got %s (%s)", urls[u],
                         audit_fault_names[v.fault], v.why);
            cr_assert_eq(v.bad_id, want_id);
            cr_assert_eq(v.checked, 5);
        }
        struct audit_head h = head_of(s, team);
        cr_assert_eq(h.seq, ROWS);
        forget(urls[u], team);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

Test(store_audit, pages_with_filters_and_a_keyset_cursor)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-audit-pages");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        char team[64];
        unique(team, sizeof(team), "pages");
        /* 12 rows: actors alice/bob alternate, actions cycle pause/resume/execute, two rows
         * share each time stamp so that the cursor must break ties by id. */
        const char *actions[] = {"pause", "resume", "execute"};
        for (int i = 0; i < 12; i++) {
            char res[32];
            snprintf(res, sizeof(res), "agent-%d", i % 4);
            struct audit_row r =
                make(team, i % 2 ? "bob" : "alice", actions[i % 3], res, 5000 + i / 2);
            cr_assert_eq(store_append_audit(s, key, &r, 1), 0);
            audit_row_clear(&r);
        }
        struct audit_query q = {.team_id = team,
                                .from = INT64_MIN,
                                .to = INT64_MAX,
                                .before_ts = INT64_MAX,
                                .before_id = INT64_MAX,
                                .limit = 5};
        struct audit_row *page;
        size_t got, total = 0;
        int64_t last_ts = INT64_MAX, last_id = INT64_MAX;
        do {
            cr_assert_eq(store_list_audit(s, &q, &page, &got), 0);
            for (size_t i = 0; i < got; i++) {
                cr_assert(page[i].ts < last_ts || (page[i].ts == last_ts && page[i].id < last_id),
                          "rows out of order");
                last_ts = page[i].ts;
                last_id = page[i].id;
                cr_assert(audit_row_is_verified(key, &page[i]));
            }
            total += got;
            q.before_ts = last_ts;
            q.before_id = last_id;
            store_free_audit(page, got);
        } while (got == 5);
        cr_assert_eq(total, 12);
        struct audit_query f = {.team_id = team,
                                .actor_id = "bob",
                                .from = INT64_MIN,
                                .to = INT64_MAX,
                                .before_ts = INT64_MAX,
                                .before_id = INT64_MAX,
                                .limit = 100};
        cr_assert_eq(store_list_audit(s, &f, &page, &got), 0);
        cr_assert_eq(got, 6);
        for (size_t i = 0; i < got; i++)
            cr_assert_str_eq(page[i].actor_id, "bob");
        store_free_audit(page, got);
        f.actor_id = NULL;
        f.action_type = "pause";
        f.resource_id = "agent-0"; /* i = 0 and 6 are pause on agent-0 and agent-2... */
        cr_assert_eq(store_list_audit(s, &f, &page, &got), 0);
        cr_assert_eq(got, 1); /* only i = 0 (i % 3 == 0 and i % 4 == 0: 0) */
        cr_assert_eq(page[0].seq, 1);
        store_free_audit(page, got);
        f.action_type = NULL;
        f.resource_id = NULL;
        f.from = 5001;
        f.to = 5003; /* i = 2..5 */
        cr_assert_eq(store_list_audit(s, &f, &page, &got), 0);
        cr_assert_eq(got, 4);
        cr_assert_eq(page[0].seq, 6);
        cr_assert_eq(page[3].seq, 3);
        store_free_audit(page, got);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

/* Gives a token record the hash and id of a new random token of its kind. */
static void new_identity(struct token_rec *t)
{
    char token[AUTH_TOKEN_MAX + 1];
    cr_assert_eq(auth_token_new(t->kind, token), 0);
    uint8_t h[32];
    auth_token_hash(token, strlen(token), h);
    audit_hex(h, 32, t->hash);
    auth_token_id(h, t->token_id);
}

Test(store_audit, tokens_users_and_teams_are_audited)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-audit-tokens");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        char team[64], user[64], err[256] = "";
        unique(team, sizeof(team), "tok");
        unique(user, sizeof(user), "carol");
        struct audit_actor_ref admin = {AUDIT_ACTOR_SERVICE, "aei-cli"};
        struct token_rec t = {.kind = "user", .role = "operator"};
        new_identity(&t);
        snprintf(t.team_id, sizeof(t.team_id), "%s", team);
        snprintf(t.user_id, sizeof(t.user_id), "%s", user);
        cr_assert_eq(store_create_token(s, key, &admin, &t, 100, err, sizeof(err)), 0, "%s", err);
        /* A second token for the same user, then one that disagrees about the role. */
        struct token_rec t2 = t;
        new_identity(&t2);
        cr_assert_eq(store_create_token(s, key, &admin, &t2, 101, err, sizeof(err)), 0, "%s", err);
        struct token_rec t3 = t2;
        new_identity(&t3);
        snprintf(t3.role, sizeof(t3.role), "admin");
        cr_assert_eq(store_create_token(s, key, &admin, &t3, 102, err, sizeof(err)), AEI_ECONFLICT);
        cr_assert(strstr(err, "with role operator"), "%s", err);
        /* An agent token. */
        struct token_rec ta = {.kind = "agent", .agent_id = "agent-7"};
        snprintf(ta.team_id, sizeof(ta.team_id), "%s", team);
        new_identity(&ta);
        cr_assert_eq(store_create_token(s, key, &admin, &ta, 103, err, sizeof(err)), 0, "%s", err);
        struct token_rec *list;
        size_t nt;
        cr_assert_eq(store_list_tokens(s, team, &list, &nt), 0);
        cr_assert_eq(nt, 3);
        cr_assert_str_eq(list[0].token_id, t.token_id);
        cr_assert_str_eq(list[0].hash, t.hash);
        cr_assert_str_eq(list[0].role, "operator");
        cr_assert_str_eq(list[2].agent_id, "agent-7");
        cr_assert_str_eq(list[2].role, "");
        cr_assert_eq(list[0].revoked, 0);
        free(list);
        struct token_rec out;
        cr_assert_eq(store_revoke_token(s, key, &admin, t.token_id, 200, &out), 0);
        cr_assert_eq(out.revoked, 200);
        cr_assert_eq(store_revoke_token(s, key, &admin, t.token_id, 201, &out), AEI_ECONFLICT);
        cr_assert_eq(store_revoke_token(s, key, &admin, "tk_ffffffffffff", 201, &out),
                     AEI_ENOTFOUND);
        cr_assert_eq(store_create_user(s, key, &admin, team, user, "viewer", 300), AEI_ECONFLICT);
        char dave[64];
        unique(dave, sizeof(dave), "dave");
        cr_assert_eq(store_create_user(s, key, &admin, team, dave, "viewer", 301), 0);
        /* The log: team_create, user_create, token_create, token_create, token_create (agent),
         * token_revoke, user_create; the refused ones left nothing. */
        struct audit_query q = {.team_id = team,
                                .from = INT64_MIN,
                                .to = INT64_MAX,
                                .before_ts = INT64_MAX,
                                .before_id = INT64_MAX,
                                .limit = 100};
        struct audit_row *rows;
        size_t nr;
        cr_assert_eq(store_list_audit(s, &q, &rows, &nr), 0);
        const char *want[] = {"user_create",  "token_revoke", "token_create", "token_create",
                              "token_create", "user_create",  "team_create"};
        cr_assert_eq(nr, 7);
        for (size_t i = 0; i < nr; i++) {
            cr_assert_str_eq(rows[i].action_type, want[i], "row %zu", i);
            cr_assert_str_eq(rows[i].actor_id, "aei-cli");
            cr_assert_eq(rows[i].actor_type, AUDIT_ACTOR_SERVICE);
        }
        cr_assert_str_eq(rows[1].resource_id, t.token_id);
        cr_assert_str_eq(rows[1].context, "{\"after\":{\"revoked\":200},\"before\":{\"revoked\":"
                                          "null}}");
        char want_ctx[512];
        snprintf(want_ctx, sizeof(want_ctx),
                 "{\"after\":{\"kind\":\"user\",\"role\":\"operator\",\"team_id\":\"%s\","
                 "\"token_id\":\"%s\",\"user_id\":\"%s\"}}",
                 team, t.token_id, user);
        cr_assert_str_eq(rows[4].context, want_ctx);
        store_free_audit(rows, nr);
        struct audit_verifier v = verify(s, team, NULL);
        cr_assert_eq(v.fault, AUDIT_FAULT_NONE, "%s", v.why);
        cr_assert_eq(v.checked, 7);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

/* A key made for a store that already holds audit rows would sign new rows that the real key
 * rejects, and audit rows cannot be deleted: audit_key_open() makes a key only for a store
 * without rows. */
Test(store_audit, a_missing_key_is_made_only_while_the_store_has_no_rows)
{
    char urls[2][512];
    int n = store_fixture_fresh_urls(urls, "aei-audit-key");
    for (int u = 0; u < n; u++) {
        char dir[128], first[160], typo[160], err[512] = "";
        snprintf(dir, sizeof(dir), "/tmp/aei-key-open-%d-%d", (int)getpid(), u);
        cr_assert_eq(mkdir(dir, 0700), 0);
        snprintf(first, sizeof(first), "%s/first.key", dir);
        snprintf(typo, sizeof(typo), "%s/typo.key", dir);
        struct store *s = store_fixture_open(urls[u]);
        struct audit_key k, again;
        cr_assert_eq(audit_key_open(s, urls[u], first, "--audit-key", false, &k, err, sizeof(err)),
                     AEI_ENOTFOUND, "%s", urls[u]);
        cr_assert_eq(audit_key_open(s, urls[u], first, "--audit-key", true, &k, err, sizeof(err)),
                     0, "%s: %s", urls[u], err);
        cr_assert(k.created);
        cr_assert_str_eq(k.path, first);
        char team[64];
        unique(team, sizeof(team), "team-key");
        struct audit_row rows[2] = {make(team, "alice", "pause", "agent-1", 10),
                                    make(team, "alice", "resume", "agent-1", 11)};
        cr_assert_eq(store_append_audit(s, k.bytes, rows, 2), 0, "%s", urls[u]);
        audit_row_clear(&rows[0]);
        audit_row_clear(&rows[1]);
        cr_assert_eq(audit_key_open(s, urls[u], typo, "--key", true, &again, err, sizeof(err)),
                     AEI_ECONFLICT, "%s", urls[u]);
        cr_assert(strstr(err, typo) && strstr(err, "already has 2 audit rows signed with another "
                                                   "key: point --key at the key file"),
                  "%s", err);
        cr_assert_null(strchr(err, '\n'), "%s", err);
        struct stat st;
        cr_assert_neq(stat(typo, &st), 0, "a key was made for a store with rows");
        cr_assert_eq(audit_key_open(s, urls[u], first, "--key", true, &again, err, sizeof(err)), 0,
                     "%s", err);
        cr_assert_not(again.created);
        cr_assert_eq(memcmp(again.bytes, k.bytes, AUDIT_KEY_LEN), 0);
        store_close(s);
        store_fixture_remove(urls[u]);
        unlink(first);
        rmdir(dir);
    }
}

/* The PostgreSQL default key lives in AEI's state directory, which is made with the key; any
 * other directory must exist. */
Test(store_audit, the_state_directory_is_made_for_the_default_key)
{
    char urls[2][512];
    int n = store_fixture_fresh_urls(urls, "aei-audit-statedir");
    for (int u = 0; u < n; u++) {
        char dir[128], path[200], err[512] = "";
        snprintf(dir, sizeof(dir), "/tmp/aei-state-%d-%d", (int)getpid(), u);
        struct store *s = store_fixture_open(urls[u]);
        struct audit_key k;
        if (strncmp(urls[u], "sqlite:", 7) == 0) {
            /* Next to the database, whose directory exists once the store is open. */
            cr_assert_eq(audit_key_open(s, urls[u], NULL, "--key", true, &k, err, sizeof(err)), 0,
                         "%s", err);
            snprintf(path, sizeof(path), "%s.audit-key", urls[u] + 7);
            cr_assert_str_eq(k.path, path);
            unlink(path);
        } else {
            snprintf(path, sizeof(path), "%s/deeper", dir);
            setenv("AEI_STATE_DIR", path, 1);
            cr_assert_eq(audit_key_open(s, urls[u], NULL, "--key", true, &k, err, sizeof(err)), 0,
                         "%s", err);
            unsetenv("AEI_STATE_DIR");
            cr_assert(k.created);
            snprintf(path, sizeof(path), "%s/deeper/audit.key", dir);
            cr_assert_str_eq(k.path, path);
            unlink(path);
            snprintf(path, sizeof(path), "%s/deeper", dir);
            rmdir(path);
            rmdir(dir);
        }
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}
