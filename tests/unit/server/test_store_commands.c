/* test_store_commands.c - commands with their audit rows, acknowledgements, and token lookups by
 * principal, in the store, run on SQLite and (with AEI_TEST_PG_URL) PostgreSQL */
#include "aei/error.h"
#include "common/time.h"
#include "server/principal.h"
#include "server/store.h"
#include "store_fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint8_t key[AUDIT_KEY_LEN] = {9, 9, 9};

/* An id unique to this run, so that PostgreSQL runs do not see each other's rows. */
static void unique(char *out, size_t n, const char *name)
{
    static int seq;
    snprintf(out, n, "%s-%d-%lld-%d", name, (int)getpid(), (long long)(aei_now_us() % 1000000000),
             seq++);
}

/* Registers an agent of a team with one heartbeat. */
static void register_agent(struct store *s, const char *agent, const char *team)
{
    struct heartbeat hb = {.status = HB_IDLE, .server_ts = aei_now_us()};
    snprintf(hb.agent_id, sizeof(hb.agent_id), "%s", agent);
    snprintf(hb.team_id, sizeof(hb.team_id), "%s", team);
    hb.children_json = "[]";
    hb.labels_json = "{}";
    struct heartbeat *one = &hb;
    cr_assert_eq(store_put_heartbeats(s, &one, 1), 0);
}

/* Opens the store at url with a new team and one agent of it registered, named into team and
 * agent (64 bytes each). */
static struct store *open_with_agent(const char *url, char *team, char *agent)
{
    struct store *s = store_fixture_open(url);
    unique(team, 64, "team");
    unique(agent, 64, "agent");
    register_agent(s, agent, team);
    return s;
}

static struct command make(const char *id, const char *agent, const char *team,
                           enum command_action action, int64_t created)
{
    struct command c = {.action = action,
                        .status = CMD_PENDING,
                        .created = created,
                        .actor_type = AUDIT_ACTOR_USER};
    snprintf(c.command_id, sizeof(c.command_id), "%s", id);
    snprintf(c.agent_id, sizeof(c.agent_id), "%s", agent);
    snprintf(c.team_id, sizeof(c.team_id), "%s", team);
    snprintf(c.actor_id, sizeof(c.actor_id), "operator-1");
    c.params = strdup(action == CMD_EXECUTE ? "{\"prompt\":\"plan the week\"}" : "{}");
    return c;
}

/* Walks one team's chain: it must verify, and have `rows` rows. */
static void chain_ok(struct store *s, const char *team, int64_t rows)
{
    struct audit_verifier v;
    audit_verify_init(&v, key, NULL, 0);
    cr_assert_eq(store_verify_audit(s, team, &v), 0);
    cr_assert_eq(v.fault, AUDIT_FAULT_NONE, "chain of %s: %s", team, audit_fault_names[v.fault]);
    cr_assert_eq(v.checked, rows);
}

static void put_clear(struct command_put *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        command_clear(p[i].c);
        audit_row_clear(&p[i].audit);
    }
}

Test(store_commands, commands_commit_with_their_audit_rows_and_control_state)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-commands");
    for (int u = 0; u < n; u++) {
        char team[64], agent[64], c1[64], c2[64];
        struct store *s = open_with_agent(urls[u], team, agent);
        unique(c1, sizeof(c1), "cmd");
        unique(c2, sizeof(c2), "cmd");
        struct command cs[2] = {make(c1, agent, team, CMD_EXECUTE, 1000),
                                make(c2, agent, team, CMD_PAUSE, 1001)};
        struct command_put p[2] = {
            {.c = &cs[0], .control_before = AGENT_ACTIVE, .control_after = -1},
            {.c = &cs[1],
             .reason = "too costly",
             .control_before = AGENT_ACTIVE,
             .control_after = AGENT_PAUSED}};
        cr_assert_eq(store_put_commands(s, key, p, 2), 0, "%s", urls[u]);
        cr_assert_eq(p[0].rc, 0);
        cr_assert_eq(p[1].rc, 0);
        cr_assert_gt(cs[0].audit_id, 0);
        cr_assert_gt(cs[1].audit_id, cs[0].audit_id);
        cr_assert_eq(p[1].audit.seq, 2);
        cr_assert_str_eq(p[1].audit.action_type, "pause");
        cr_assert_str_eq(p[1].audit.resource_id, agent);
        cr_assert(strstr(p[1].audit.context, "\"after\":{\"control\":\"paused\"}"), "%s",
                  p[1].audit.context);
        cr_assert(strstr(p[1].audit.context, "\"reason\":\"too costly\""));
        cr_assert(strstr(p[1].audit.context, c2));
        put_clear(p, 2);

        struct heartbeat a;
        cr_assert_eq(store_get_agent(s, agent, &a), 0);
        cr_assert_eq(a.control, AGENT_PAUSED);
        cr_assert_str_eq(a.team_id, team);
        hb_clear(&a);

        struct command_query q = {.agent_id = agent, .limit = 10};
        struct command *rows;
        size_t nr;
        cr_assert_eq(store_list_commands(s, &q, &rows, &nr), 0);
        cr_assert_eq(nr, 2);
        cr_assert_str_eq(rows[0].command_id, c2, "newest first");
        cr_assert_eq(rows[0].action, CMD_PAUSE);
        cr_assert_eq(rows[1].status, CMD_PENDING);
        cr_assert(strstr(rows[1].params, "plan the week"));
        cr_assert_str_eq(rows[1].actor_id, "operator-1");
        store_free_commands(rows, nr);
        chain_ok(s, team, 2);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

Test(store_commands, a_command_that_cannot_be_stored_fails_alone)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-commands-bad");
    for (int u = 0; u < n; u++) {
        char team[64], agent[64], c1[64], c2[64];
        struct store *s = open_with_agent(urls[u], team, agent);
        unique(c1, sizeof(c1), "cmd");
        unique(c2, sizeof(c2), "cmd");
        /* The third reuses the first's id: the store refuses it, and only it. */
        struct command cs[3] = {make(c1, agent, team, CMD_ASSIGN, 10),
                                make(c2, agent, team, CMD_OVERRIDE, 11),
                                make(c1, agent, team, CMD_ASSIGN, 12)};
        struct command_put p[3];
        for (int i = 0; i < 3; i++)
            p[i] = (struct command_put){.c = &cs[i], .control_after = -1};
        cr_assert_eq(store_put_commands(s, key, p, 3), 0, "%s", urls[u]);
        cr_assert_eq(p[0].rc, 0);
        cr_assert_eq(p[1].rc, 0);
        cr_assert_neq(p[2].rc, 0);
        put_clear(p, 3);
        struct command_query q = {.agent_id = agent, .limit = 10};
        struct command *rows;
        size_t nr;
        cr_assert_eq(store_list_commands(s, &q, &rows, &nr), 0);
        cr_assert_eq(nr, 2);
        store_free_commands(rows, nr);
        chain_ok(s, team, 2); /* no audit row of the refused one, and no gap */
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

Test(store_commands, acknowledgements_are_audited_once)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-commands-ack");
    for (int u = 0; u < n; u++) {
        char team[64], agent[64], c1[64];
        struct store *s = open_with_agent(urls[u], team, agent);
        unique(c1, sizeof(c1), "cmd");
        struct command c = make(c1, agent, team, CMD_EXECUTE, 10);
        struct command_put p = {.c = &c, .control_after = -1};
        cr_assert_eq(store_put_commands(s, key, &p, 1), 0);
        put_clear(&p, 1);
        char ids[1][AEI_ID_MAX + 1];
        snprintf(ids[0], sizeof(ids[0]), "%s", c1);
        cr_assert_eq(store_mark_delivered(s, ids, 1, 20), 0);

        struct audit_actor_ref actor = {AUDIT_ACTOR_AGENT, agent};
        struct command out;
        bool changed;
        cr_assert_eq(store_ack_command(s, key, &actor, "someone-else", c1, CMD_SUCCEEDED, NULL, 30,
                                       &out, &changed),
                     AEI_ENOTFOUND, "another agent's command");
        command_clear(&out);
        cr_assert_eq(store_ack_command(s, key, &actor, agent, "no-such-command", CMD_SUCCEEDED,
                                       NULL, 30, &out, &changed),
                     AEI_ENOTFOUND);
        command_clear(&out);
        cr_assert_eq(store_ack_command(s, key, &actor, agent, c1, CMD_SUCCEEDED,
                                       "{\"decisions\":12}", 30, &out, &changed),
                     0);
        cr_assert(changed);
        cr_assert_eq(out.status, CMD_SUCCEEDED);
        command_clear(&out);
        cr_assert_eq(
            store_ack_command(s, key, &actor, agent, c1, CMD_SUCCEEDED, NULL, 31, &out, &changed),
            0, "the same acknowledgement again is fine");
        cr_assert_not(changed);
        command_clear(&out);
        cr_assert_eq(
            store_ack_command(s, key, &actor, agent, c1, CMD_FAILED, NULL, 32, &out, &changed),
            AEI_ECONFLICT);
        command_clear(&out);

        struct command_query q = {.agent_id = agent, .limit = 10};
        struct command *rows;
        size_t nr;
        cr_assert_eq(store_list_commands(s, &q, &rows, &nr), 0);
        cr_assert_eq(nr, 1);
        cr_assert_eq(rows[0].status, CMD_SUCCEEDED);
        cr_assert_eq(rows[0].delivered, 20);
        cr_assert_eq(rows[0].acked, 30);
        cr_assert(strstr(rows[0].result, "12"));
        store_free_commands(rows, nr);
        q.open = true;
        cr_assert_eq(store_list_commands(s, &q, &rows, &nr), 0);
        cr_assert_eq(nr, 0, "acknowledged: no longer open");
        store_free_commands(rows, nr);

        struct audit_query aq = {.team_id = team,
                                 .action_type = "command_ack",
                                 .from = INT64_MIN,
                                 .to = INT64_MAX,
                                 .before_ts = INT64_MAX,
                                 .before_id = INT64_MAX,
                                 .limit = 10};
        struct audit_row *ar;
        size_t na;
        cr_assert_eq(store_list_audit(s, &aq, &ar, &na), 0);
        cr_assert_eq(na, 1, "one audit row for the acknowledgement");
        cr_assert_eq(ar[0].actor_type, AUDIT_ACTOR_AGENT);
        cr_assert_str_eq(ar[0].actor_id, agent);
        store_free_audit(ar, na);
        chain_ok(s, team, 2);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

Test(store_commands, command_pages_follow_a_keyset_cursor)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-commands-page");
    for (int u = 0; u < n; u++) {
        char team[64], agent[64];
        struct store *s = open_with_agent(urls[u], team, agent);
        struct command cs[5];
        struct command_put p[5];
        for (int i = 0; i < 5; i++) {
            char id[96];
            snprintf(id, sizeof(id), "%s-c%d", agent, i);
            cs[i] = make(id, agent, team, CMD_OVERRIDE, 100 + i / 2); /* ties on created */
            p[i] = (struct command_put){.c = &cs[i], .control_after = -1};
        }
        cr_assert_eq(store_put_commands(s, key, p, 5), 0);
        put_clear(p, 5);
        struct command_query q = {.agent_id = agent, .limit = 2};
        char seen[5][AEI_ID_MAX + 1], after[AEI_ID_MAX + 1];
        int got = 0;
        for (;;) {
            struct command *rows;
            size_t nr;
            cr_assert_eq(store_list_commands(s, &q, &rows, &nr), 0);
            for (size_t i = 0; i < nr; i++)
                snprintf(seen[got++], sizeof(seen[0]), "%s", rows[i].command_id);
            if (nr > 0) {
                q.before_created = rows[nr - 1].created;
                snprintf(after, sizeof(after), "%s", rows[nr - 1].command_id);
                q.before_id = after;
            }
            store_free_commands(rows, nr);
            if (nr < 2)
                break;
        }
        cr_assert_eq(got, 5);
        for (int i = 0; i < 5; i++) {
            char want[96];
            snprintf(want, sizeof(want), "%s-c%d", agent, 4 - i);
            cr_assert_str_eq(seen[i], want, "page order at %d", i);
        }
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

/* Gives a token record the hash and id of a new random token of its kind; returns the token. */
static void new_token(struct token_rec *t, char *token)
{
    cr_assert_eq(auth_token_new(t->kind, token), 0);
    uint8_t h[32];
    auth_token_hash(token, strlen(token), h);
    audit_hex(h, 32, t->hash);
    auth_token_id(h, t->token_id);
}

Test(store_commands, principals_come_from_token_hashes_and_revocation_takes_effect)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-principals");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        struct principals *ps = principals_new("the-bootstrap-token", s);
        char team[64], user[64], token[AUTH_TOKEN_MAX + 1], agent_token[AUTH_TOKEN_MAX + 1],
            header[128], err[256] = "";
        unique(team, sizeof(team), "team");
        unique(user, sizeof(user), "viewer");
        struct audit_actor_ref cli = {AUDIT_ACTOR_SERVICE, "test"};
        struct token_rec t = {.kind = "user", .role = "viewer"};
        new_token(&t, token);
        snprintf(t.team_id, sizeof(t.team_id), "%s", team);
        snprintf(t.user_id, sizeof(t.user_id), "%s", user);
        cr_assert_eq(store_create_token(s, key, &cli, &t, 1, err, sizeof(err)), 0, "%s", err);
        struct token_rec ta = {.kind = "agent", .agent_id = "agent-9"};
        new_token(&ta, agent_token);
        snprintf(ta.team_id, sizeof(ta.team_id), "%s", team);
        cr_assert_eq(store_create_token(s, key, &cli, &ta, 2, err, sizeof(err)), 0, "%s", err);

        struct principal who;
        int64_t now = 1000000;
        cr_assert_eq(principals_authenticate(ps, NULL, now, &who), AUTH_MISSING);
        cr_assert_eq(principals_authenticate(ps, "Basic abc", now, &who), AUTH_MISSING);
        cr_assert_eq(principals_authenticate(ps, "Bearer the-bootstrap-token", now, &who), AUTH_OK);
        cr_assert(who.bootstrap);
        cr_assert_eq(who.role, ROLE_ADMIN);
        cr_assert_null(principal_scope(&who), "admins see every team");
        snprintf(header, sizeof(header), "Bearer %s", token);
        cr_assert_eq(principals_authenticate(ps, header, now, &who), AUTH_OK);
        cr_assert_eq(who.role, ROLE_VIEWER);
        cr_assert_str_eq(who.id, user);
        cr_assert_str_eq(principal_scope(&who), team);
        cr_assert_str_eq(who.token_id, t.token_id);
        snprintf(header, sizeof(header), "Bearer %s", agent_token);
        cr_assert_eq(principals_authenticate(ps, header, now, &who), AUTH_OK);
        cr_assert_eq(who.role, ROLE_AGENT);
        cr_assert_eq(who.type, AUDIT_ACTOR_AGENT);
        cr_assert_str_eq(who.id, "agent-9");
        /* A typo is caught by the checksum; a well-formed stranger is looked up and refused. */
        char typo[AUTH_TOKEN_MAX + 1];
        snprintf(typo, sizeof(typo), "%s", token);
        typo[12] = typo[12] == 'a' ? 'b' : 'a';
        snprintf(header, sizeof(header), "Bearer %s", typo);
        cr_assert_eq(principals_authenticate(ps, header, now, &who), AUTH_INVALID);
        char stranger[AUTH_TOKEN_MAX + 1];
        cr_assert_eq(auth_token_new("user", stranger), 0);
        snprintf(header, sizeof(header), "Bearer %s", stranger);
        cr_assert_eq(principals_authenticate(ps, header, now, &who), AUTH_INVALID);
        /* Revoked: refused once the cached answer has expired. */
        struct token_rec out;
        cr_assert_eq(store_revoke_token(s, key, &cli, t.token_id, 3, &out), 0);
        snprintf(header, sizeof(header), "Bearer %s", token);
        cr_assert_eq(principals_authenticate(ps, header, now + 1, &who), AUTH_OK, "still cached");
        cr_assert_eq(principals_authenticate(ps, header, now + PRINCIPAL_CACHE_US + 1, &who),
                     AUTH_INVALID);
        char *me = principal_render(&who);
        cr_assert_not_null(me);
        free(me);
        principals_free(ps);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}
