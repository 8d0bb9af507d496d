/* test_store_rls.c - row-level security on PostgreSQL (migration 0008): a session scoped to a
 * team with store_set_scope() reads and writes only that team's rows, through raw SQL on the
 * store's own connection and through the store's operations; unscoped sees everything. And
 * store_set_scope() on SQLite: accepted, with no effect. */
#include "aei/error.h"
#include "server/store.h"
#include "store_fixture.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint8_t key[AUDIT_KEY_LEN] = {9, 9, 9};

/* Runs SQL on conn and returns its result, failing the test unless it succeeded. */
static PGresult *must(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql,
              PQresultErrorMessage(res));
    return res;
}

static void must_run(PGconn *conn, const char *sql)
{
    PQclear(must(conn, sql));
}

/* Policies do not apply to superusers (nor to BYPASSRLS roles), and the test URL's user
 * usually is one: the store under test logs in as a new ordinary role that owns a new
 * database, migrates it, and so owns the tables, as aeid does in the simplest deployment
 * (FORCE ROW LEVEL SECURITY holds the owner to the policies). Writes that URL into out. */
static void owner_url(char *out, size_t n)
{
    const char *admin = getenv("AEI_TEST_PG_URL");
    static int seq;
    char name[64];
    snprintf(name, sizeof(name), "aei_rls_%d_%d", (int)getpid(), seq++);
    PGconn *c = PQconnectdb(admin);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    char sql[256];
    snprintf(sql, sizeof(sql), "CREATE ROLE %s LOGIN NOSUPERUSER NOBYPASSRLS", name);
    must_run(c, sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s OWNER %s", name, name);
    must_run(c, sql);
    PQfinish(c);
    /* postgresql://[user@]host:port/db[?params] -> postgresql://NAME@host:port/NAME[?params] */
    const char *auth = strstr(admin, "://");
    cr_assert(auth, "AEI_TEST_PG_URL is not a URL: %s", admin);
    auth += 3;
    const char *slash = strchr(auth, '/');
    cr_assert(slash, "AEI_TEST_PG_URL has no database: %s", admin);
    const char *at = memchr(auth, '@', (size_t)(slash - auth));
    const char *host = at ? at + 1 : auth;
    const char *query = strchr(slash, '?');
    snprintf(out, n, "postgresql://%s@%.*s/%s%s", name, (int)(slash - host), host, name,
             query ? query : "");
}

/* Two teams' rows in every scoped table, written unscoped (as the server's own work is).
 * Team A's keys contain "A" and never "B", team B's the other way round. */
static void seed(struct store *s)
{
    PGconn *c = store_pg_conn(s);
    must_run(c, "INSERT INTO teams VALUES ('team-A', 1), ('team-B', 1);"
                "INSERT INTO users VALUES ('user-A', 'team-A', 'viewer', 1), "
                "('user-B', 'team-B', 'admin', 1);"
                "INSERT INTO tokens (token_id, token_hash, kind, team_id, user_id, created) VALUES "
                "('tk_A', 'hash-A', 'user', 'team-A', 'user-A', 1), "
                "('tk_B', 'hash-B', 'user', 'team-B', 'user-B', 1);"
                "INSERT INTO agents (agent_id, status, first_seen, last_heartbeat, team_id) VALUES "
                "('agent-A1', 'idle', 1, 1, 'team-A'), ('agent-A2', 'idle', 1, 1, 'team-A'), "
                "('agent-B1', 'idle', 1, 1, 'team-B');"
                "INSERT INTO heartbeats (agent_id, server_ts, status, child_agent_ids, labels) "
                "SELECT a, 1000 + g, 'idle', '[]', '{}' FROM unnest(ARRAY['agent-A1', 'agent-A2', "
                "'agent-B1']) a, generate_series(1, 3) g;"
                "INSERT INTO rollups VALUES ('agent-A1', 1, 3, 0, 0, NULL, 0, 0, NULL, NULL, 0), "
                "('agent-B1', 1, 3, 0, 0, NULL, 0, 0, NULL, NULL, 0);"
                "INSERT INTO rollup_agents VALUES ('agent-A1', 1), ('agent-B1', 2);"
                /* The trigger of 0007 gives each execution its agent's team. */
                "INSERT INTO executions (execution_id, agent_id, started) VALUES "
                "('exec-A1', 'agent-A1', 1), ('exec-B1', 'agent-B1', 1);"
                "INSERT INTO decisions (decision_id, execution_id, agent_id, server_ts) VALUES "
                "('dec-A1', 'exec-A1', 'agent-A1', 1), ('dec-A2', 'exec-A1', 'agent-A1', 2), "
                "('dec-B1', 'exec-B1', 'agent-B1', 1);"
                "INSERT INTO commands (command_id, agent_id, team_id, action, params, actor_type, "
                "actor_id, audit_id, created) VALUES "
                "('cmd-A1', 'agent-A1', 'team-A', 'pause', '{}', 'user', 'user-A', 1, 1), "
                "('cmd-B1', 'agent-B1', 'team-B', 'pause', '{}', 'user', 'user-B', 2, 1)");
    const char *teams[] = {"team-A", "team-B"};
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < 3; i++) {
            struct audit_row r = {.ts = 1000 + i, .actor_type = AUDIT_ACTOR_USER};
            snprintf(r.team_id, sizeof(r.team_id), "%s", teams[t]);
            snprintf(r.actor_id, sizeof(r.actor_id), "user-%c", teams[t][5]);
            snprintf(r.action_type, sizeof(r.action_type), "pause");
            snprintf(r.resource_id, sizeof(r.resource_id), "agent-%c1", teams[t][5]);
            r.context = strdup("{}");
            cr_assert_eq(store_append_audit(s, key, &r, 1), 0);
            audit_row_clear(&r);
        }
}

/* Each scoped table with the column whose value names the row's team by letter. */
static const struct {
    const char *table, *column;
    long a, b; /* rows of team A, of team B */
} tables[] = {
    {"agents", "agent_id", 2, 1},         {"heartbeats", "agent_id", 6, 3},
    {"executions", "execution_id", 1, 1}, {"decisions", "decision_id", 2, 1},
    {"commands", "command_id", 1, 1},     {"audit_logs", "team_id", 3, 3},
    {"tokens", "token_id", 1, 1},         {"users", "user_id", 1, 1},
    {"rollups", "agent_id", 1, 1},        {"rollup_agents", "agent_id", 1, 1},
};
#define N_TABLES (sizeof(tables) / sizeof(tables[0]))

/* Counts the rows of `SELECT *` on the table that belong to team A and to team B. */
static void count_rows(PGconn *c, size_t t, long *a, long *b)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT * FROM %s", tables[t].table);
    PGresult *res = must(c, sql);
    int col = PQfnumber(res, tables[t].column);
    cr_assert_geq(col, 0);
    *a = *b = 0;
    for (int r = 0; r < PQntuples(res); r++) {
        const char *v = PQgetvalue(res, r, col);
        *a += strchr(v, 'A') != NULL;
        *b += strchr(v, 'B') != NULL;
    }
    PQclear(res);
}

static void expect_rows(PGconn *c, const char *scope, bool see_a, bool see_b)
{
    for (size_t t = 0; t < N_TABLES; t++) {
        long a, b;
        count_rows(c, t, &a, &b);
        cr_expect_eq(a, see_a ? tables[t].a : 0, "scope %s, %s: %ld rows of team A", scope,
                     tables[t].table, a);
        cr_expect_eq(b, see_b ? tables[t].b : 0, "scope %s, %s: %ld rows of team B", scope,
                     tables[t].table, b);
    }
}

/* Opens a store on a fresh database owned by an ordinary role, with both teams' rows. */
static struct store *open_seeded(void)
{
    if (!getenv("AEI_TEST_PG_URL") || !*getenv("AEI_TEST_PG_URL"))
        cr_skip_test("AEI_TEST_PG_URL is not set");
    char url[512];
    owner_url(url, sizeof(url));
    struct store *s = store_fixture_open(url);
    cr_assert_not_null(store_pg_conn(s));
    seed(s);
    return s;
}

Test(store_rls, raw_selects_see_only_the_scoped_team)
{
    struct store *s = open_seeded();
    PGconn *c = store_pg_conn(s);
    expect_rows(c, "unscoped", true, true);
    cr_assert_eq(store_set_scope(s, "team-A"), 0);
    expect_rows(c, "team-A", true, false);
    cr_assert_eq(store_set_scope(s, "team-B"), 0);
    expect_rows(c, "team-B", false, true);
    cr_assert_eq(store_set_scope(s, "team-nobody"), 0);
    expect_rows(c, "team-nobody", false, false);
    cr_assert_eq(store_set_scope(s, ""), 0);
    expect_rows(c, "\"\"", true, true);
    cr_assert_eq(store_set_scope(s, "team-A"), 0);
    cr_assert_eq(store_set_scope(s, NULL), 0);
    expect_rows(c, "NULL", true, true);
    store_close(s);
}

/* Statements that write a team B row, each refused in scope team-A. */
static const char *const writes_of_b[] = {
    "INSERT INTO agents (agent_id, status, first_seen, last_heartbeat, team_id) "
    "VALUES ('agent-B9', 'idle', 1, 1, 'team-B')",
    "INSERT INTO heartbeats (agent_id, server_ts, status, child_agent_ids, labels) "
    "VALUES ('agent-B1', 5000, 'idle', '[]', '{}')",
    "INSERT INTO executions (execution_id, agent_id, started, team_id) "
    "VALUES ('exec-B9', 'agent-B1', 1, 'team-B')",
    "INSERT INTO decisions (decision_id, execution_id, agent_id, server_ts) "
    "VALUES ('dec-B9', 'exec-B1', 'agent-B1', 9)",
    "INSERT INTO commands (command_id, agent_id, team_id, action, params, actor_type, actor_id, "
    "audit_id, created) VALUES ('cmd-B9', 'agent-B1', 'team-B', 'resume', '{}', 'user', "
    "'user-B', 9, 9)",
    "INSERT INTO audit_logs (team_id, seq, ts, actor_type, actor_id, action_type, resource_id, "
    "context, prev_hash, immutable_hash) VALUES ('team-B', 99, 1, 'user', 'user-B', 'pause', "
    "'agent-B1', '{}', '', '')",
    "INSERT INTO tokens (token_id, token_hash, kind, team_id, user_id, created) "
    "VALUES ('tk_B9', 'hash-B9', 'user', 'team-B', 'user-B', 1)",
    "INSERT INTO users VALUES ('user-B9', 'team-B', 'admin', 1)",
    "INSERT INTO rollups VALUES ('agent-B1', 2, 1, 0, 0, NULL, 0, 0, NULL, NULL, 0)",
    /* Moving a team A row into team B is a write of a team B row too. */
    "UPDATE agents SET team_id = 'team-B' WHERE agent_id = 'agent-A1'",
    "UPDATE users SET team_id = 'team-B' WHERE user_id = 'user-A'",
};

Test(store_rls, a_scoped_session_cannot_write_another_teams_rows)
{
    struct store *s = open_seeded();
    PGconn *c = store_pg_conn(s);
    cr_assert_eq(store_set_scope(s, "team-A"), 0);
    for (size_t i = 0; i < sizeof(writes_of_b) / sizeof(writes_of_b[0]); i++) {
        PGresult *res = PQexec(c, writes_of_b[i]);
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        cr_expect_eq(PQresultStatus(res), PGRES_FATAL_ERROR, "not refused: %s", writes_of_b[i]);
        cr_expect_str_eq(state ? state : "", "42501", "%s: %s", writes_of_b[i],
                         PQresultErrorMessage(res));
        cr_expect(strstr(PQresultErrorMessage(res), "row-level security"), "%s: %s", writes_of_b[i],
                  PQresultErrorMessage(res));
        PQclear(res);
    }
    /* Team B's rows are out of sight: changing or deleting them changes nothing. */
    const char *hidden[] = {"UPDATE agents SET control = 'paused' WHERE agent_id = 'agent-B1'",
                            "DELETE FROM commands WHERE command_id = 'cmd-B1'",
                            "UPDATE executions SET status = 'failed' WHERE execution_id = "
                            "'exec-B1'",
                            "DELETE FROM decisions WHERE decision_id = 'dec-B1'"};
    for (size_t i = 0; i < sizeof(hidden) / sizeof(hidden[0]); i++) {
        PGresult *res = must(c, hidden[i]);
        cr_expect_str_eq(PQcmdTuples(res), "0", "%s", hidden[i]);
        PQclear(res);
    }
    /* The store's own write of a team B audit row is refused as well; team A's goes in. */
    struct audit_row r = {.ts = 2000, .actor_type = AUDIT_ACTOR_USER};
    snprintf(r.team_id, sizeof(r.team_id), "team-B");
    snprintf(r.actor_id, sizeof(r.actor_id), "user-B");
    snprintf(r.action_type, sizeof(r.action_type), "resume");
    snprintf(r.resource_id, sizeof(r.resource_id), "agent-B1");
    r.context = strdup("{}");
    cr_expect_neq(store_append_audit(s, key, &r, 1), 0);
    snprintf(r.team_id, sizeof(r.team_id), "team-A");
    cr_expect_eq(store_append_audit(s, key, &r, 1), 0);
    cr_expect_eq(r.seq, 4);
    audit_row_clear(&r);
    /* Unscoped, everything team B had is there as it was. */
    cr_assert_eq(store_set_scope(s, NULL), 0);
    PGresult *res = must(c, "SELECT (SELECT control FROM agents WHERE agent_id = 'agent-B1'), "
                            "(SELECT count(*) FROM commands WHERE command_id = 'cmd-B1'), "
                            "(SELECT status FROM executions WHERE execution_id = 'exec-B1'), "
                            "(SELECT count(*) FROM decisions WHERE decision_id = 'dec-B1'), "
                            "(SELECT team_id FROM agents WHERE agent_id = 'agent-A1')");
    cr_expect_str_eq(PQgetvalue(res, 0, 0), "active");
    cr_expect_str_eq(PQgetvalue(res, 0, 1), "1");
    cr_expect_str_eq(PQgetvalue(res, 0, 2), "running");
    cr_expect_str_eq(PQgetvalue(res, 0, 3), "1");
    cr_expect_str_eq(PQgetvalue(res, 0, 4), "team-A");
    PQclear(res);
    store_close(s);
}

Test(store_rls, the_stores_reads_follow_the_scope)
{
    struct store *s = open_seeded();
    cr_assert_eq(store_set_scope(s, "team-A"), 0);
    struct heartbeat *agents;
    size_t n;
    cr_assert_eq(store_list_agents(s, "", -1, &agents, &n), 0);
    cr_expect_eq(n, 2);
    for (size_t i = 0; i < n; i++)
        cr_expect(strchr(agents[i].agent_id, 'A'), "%s", agents[i].agent_id);
    store_free_rows(agents, n);
    struct heartbeat hb;
    cr_expect_eq(store_get_agent(s, "agent-B1", &hb), AEI_ENOTFOUND);
    struct execution ex;
    cr_expect_eq(store_get_execution(s, "exec-B1", &ex), AEI_ENOTFOUND);
    cr_assert_eq(store_get_execution(s, "exec-A1", &ex), 0);
    execution_clear(&ex);
    struct token_rec *tokens;
    cr_assert_eq(store_list_tokens(s, NULL, &tokens, &n), 0);
    cr_expect_eq(n, 1);
    cr_expect_str_eq(n ? tokens[0].token_id : "", "tk_A");
    free(tokens);
    /* A walk of every chain sees team A's alone, and finds it whole. */
    struct audit_verifier v;
    audit_verify_init(&v, key, NULL, 0);
    cr_assert_eq(store_verify_audit(s, NULL, &v), 0);
    cr_expect_eq(v.fault, AUDIT_FAULT_NONE, "%s", v.why);
    cr_expect_eq(v.checked, 3);
    cr_assert_eq(store_set_scope(s, ""), 0);
    audit_verify_init(&v, key, NULL, 0);
    cr_assert_eq(store_verify_audit(s, NULL, &v), 0);
    cr_expect_eq(v.checked, 6);
    cr_assert_eq(store_get_agent(s, "agent-B1", &hb), 0);
    hb_clear(&hb);
    store_close(s);
}

/* A lost session comes back in the scope it had, never unscoped. */
Test(store_rls, a_reconnected_session_keeps_its_scope)
{
    struct store *s = open_seeded();
    cr_assert_eq(store_set_scope(s, "team-A"), 0);
    PGconn *admin = PQconnectdb(getenv("AEI_TEST_PG_URL"));
    cr_assert_eq(PQstatus(admin), CONNECTION_OK);
    char sql[64];
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", PQbackendPID(store_pg_conn(s)));
    must_run(admin, sql);
    PQfinish(admin);
    /* The first statement finds the connection gone; a later one reconnects. */
    struct heartbeat *agents = NULL;
    size_t n = 0;
    int rc = AEI_EUNAVAILABLE;
    for (int tries = 0; tries < 3 && rc == AEI_EUNAVAILABLE; tries++) {
        rc = store_list_agents(s, "", -1, &agents, &n);
        if (rc)
            usleep(100000);
    }
    cr_assert_eq(rc, 0);
    cr_expect_eq(n, 2, "%zu agents after reconnecting: the scope was lost", n);
    store_free_rows(agents, n);
    expect_rows(store_pg_conn(s), "team-A after reconnecting", true, false);
    store_close(s);
}

Test(store_rls, the_scope_is_refused_inside_a_transaction_and_checked)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-rls-tx");
    char long_id[AEI_ID_MAX + 2];
    memset(long_id, 'x', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        cr_expect_eq(store_set_scope(s, "team-A"), 0, "%s", urls[u]);
        cr_expect_eq(store_set_scope(s, "team-A"), 0, "%s", urls[u]);
        cr_expect_eq(store_set_scope(s, long_id), AEI_EINVAL, "%s", urls[u]);
        cr_assert_eq(s->ops->begin(s), 0);
        cr_expect_eq(store_set_scope(s, "team-B"), AEI_EINVAL, "%s", urls[u]);
        s->ops->rollback(s);
        cr_expect_eq(store_set_scope(s, NULL), 0, "%s", urls[u]);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

/* The server's reads: a transaction scoped to one team, and nothing of it left afterwards. */
Test(store_rls, a_scoped_read_transaction_sees_one_team_and_leaves_no_scope)
{
    struct store *s = open_seeded();
    struct heartbeat *agents;
    size_t n;
    cr_assert_eq(store_begin_scoped(s, "team-B"), 0);
    cr_assert_eq(store_list_agents(s, "", -1, &agents, &n), 0);
    cr_expect_eq(n, 1);
    for (size_t i = 0; i < n; i++)
        cr_expect(strchr(agents[i].agent_id, 'B'), "%s", agents[i].agent_id);
    store_free_rows(agents, n);
    struct execution ex;
    cr_expect_eq(store_get_execution(s, "exec-A1", &ex), AEI_ENOTFOUND);
    store_end_scoped(s, "team-B");
    cr_assert_eq(store_list_agents(s, "", -1, &agents, &n), 0);
    cr_expect_eq(n, 3, "unscoped again once the transaction is over");
    store_free_rows(agents, n);
    cr_expect_eq(store_begin_scoped(s, NULL), 0, "no team: no transaction");
    cr_expect_eq(store_begin_scoped(s, ""), 0);
    store_close(s);
}
