/* token.c - `aei token create|list|revoke`: users' and agents' tokens, straight in the store,
 * each creation and revocation audited */
#include "aei/error.h"
#include "cli/cli.h"
#include "common/json.h"
#include "common/log.h"
#include "common/time.h"
#include "server/store.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void token_help(FILE *out)
{
    fputs("Usage: aei token create --db URL --team T (--user U --role R | --agent A)\n"
          "       aei token list --db URL [--team T]\n"
          "       aei token revoke --db URL TOKEN_ID|TOKEN\n"
          "\n"
          "create  makes a token for a user of team T (created with role R, one of admin,\n"
          "        operator, viewer, if new) or for agent A, and prints it as the last line:\n"
          "        aei_user_... or aei_agent_... It is shown once; only its hash is stored.\n"
          "list    shows tokens: id, kind, team, user or agent, role, created, revoked.\n"
          "revoke  revokes a token by its id (tk_...) or by the token itself.\n"
          "The team, the user, the token and its revocation are audit rows (actor: service\n"
          "cli:$USER), appended with the audit key aeid uses.\n"
          "\n"
          "Options:\n"
          "  --db URL           sqlite:PATH or postgres://... (default: $AEI_DATABASE_URL)\n"
          "  --key FILE         the audit key (default: $AEI_AUDIT_KEY_FILE, else\n"
          "                     PATH.audit-key next to a SQLite file, else the state directory;\n"
          "                     created, mode 0600, if missing)\n"
          "  --checkpoint FILE  append the team's new chain head to this checkpoint file\n"
          "                     (default: $AEI_AUDIT_CHECKPOINT)\n"
          "  --team T, --user U, --role R, --agent A   as above\n"
          "  -h, --help         show this help\n"
          "\n"
          "Exit status: 0 on success, 1 when the store refused (such as a user that exists with\n"
          "another role, or a token already revoked), 2 on a bad command line.\n",
          out);
}

struct args {
    const char *db, *key, *checkpoint, *team, *user, *role, *agent;
    int first; /* index of the first operand */
};

static int parse(const char *cmd, int argc, char **argv, struct args *a)
{
    memset(a, 0, sizeof(*a));
    a->db = getenv("AEI_DATABASE_URL");
    a->key = getenv("AEI_AUDIT_KEY_FILE");
    a->checkpoint = getenv("AEI_AUDIT_CHECKPOINT");
    static const struct option longopts[] = {{"db", required_argument, NULL, 'd'},
                                             {"key", required_argument, NULL, 'k'},
                                             {"checkpoint", required_argument, NULL, 'c'},
                                             {"team", required_argument, NULL, 't'},
                                             {"user", required_argument, NULL, 'u'},
                                             {"role", required_argument, NULL, 'r'},
                                             {"agent", required_argument, NULL, 'a'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        const char **slot[] = {
            ['d'] = &a->db,   ['k'] = &a->key,  ['c'] = &a->checkpoint, ['t'] = &a->team,
            ['u'] = &a->user, ['r'] = &a->role, ['a'] = &a->agent};
        if (c == 'h') {
            token_help(stdout);
            return -1;
        }
        if (c < 0 || c >= (int)(sizeof(slot) / sizeof(slot[0])) || !slot[c]) {
            fprintf(stderr, "%s: run 'aei token --help' for usage\n", cmd);
            return CLI_EXIT_USAGE;
        }
        *slot[c] = optarg;
    }
    a->first = optind;
    const char *ids[][2] = {{"--team", a->team}, {"--user", a->user}, {"--agent", a->agent}};
    for (int i = 0; i < 3; i++) {
        if (ids[i][1] && !id_is_valid(ids[i][1])) {
            fprintf(stderr, "%s: %s '%s': use 1-128 characters of A-Z a-z 0-9 . _ : -\n", cmd,
                    ids[i][0], ids[i][1]);
            return CLI_EXIT_USAGE;
        }
    }
    return 0;
}

/* The CLI acts as the service "cli:<login>". */
static void actor_of(char *out, size_t n)
{
    const char *user = getenv("USER");
    snprintf(out, n, "cli:%s", user && id_is_valid(user) ? user : "unknown");
}

/* Appends the team's new head to the checkpoint file, when one is named. */
static int checkpoint(const char *cmd, const char *path, struct store *s, const char *team)
{
    if (!path || !*path)
        return 0;
    struct audit_head *heads;
    size_t n;
    char err[512];
    if (store_audit_heads(s, &heads, &n) != 0) {
        fprintf(stderr, "%s: could not read the chain heads for %s\n", cmd, path);
        return CLI_EXIT_FAIL;
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(heads[i].team_id, team) == 0 &&
            audit_checkpoint_append(path, &heads[i], 1, aei_now_us(), err, sizeof(err)) != 0) {
            fprintf(stderr, "%s: %s\n", cmd, err);
            rc = CLI_EXIT_FAIL;
        }
    free(heads);
    return rc;
}

static int create_main(int argc, char **argv)
{
    const char *cmd = "aei token create";
    struct args a;
    int rc = parse(cmd, argc, argv, &a);
    if (rc)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (a.first < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", cmd, argv[a.first]);
        return CLI_EXIT_USAGE;
    }
    if (!a.team || (!a.user == !a.agent) || (a.user && !a.role) || (a.agent && a.role)) {
        fprintf(stderr, "%s: give --team T and either --user U --role R or --agent A\n", cmd);
        return CLI_EXIT_USAGE;
    }
    if (a.role && strcmp(a.role, "admin") && strcmp(a.role, "operator") &&
        strcmp(a.role, "viewer")) {
        fprintf(stderr, "%s: --role '%s': use admin, operator or viewer\n", cmd, a.role);
        return CLI_EXIT_USAGE;
    }
    struct token_rec t = {0};
    snprintf(t.kind, sizeof(t.kind), "%s", a.user ? "user" : "agent");
    snprintf(t.team_id, sizeof(t.team_id), "%s", a.team);
    snprintf(t.user_id, sizeof(t.user_id), "%s", a.user ? a.user : "");
    snprintf(t.agent_id, sizeof(t.agent_id), "%s", a.agent ? a.agent : "");
    snprintf(t.role, sizeof(t.role), "%s", a.role ? a.role : "");
    char token[AUTH_TOKEN_MAX + 1];
    if (auth_token_new(t.kind, token) != 0) {
        fprintf(stderr, "%s: the system gave no randomness for a token\n", cmd);
        return CLI_EXIT_FAIL;
    }
    uint8_t h[32];
    auth_token_hash(token, strlen(token), h);
    audit_hex(h, sizeof(h), t.hash);
    auth_token_id(h, t.token_id);
    struct store *s;
    uint8_t key[AUDIT_KEY_LEN];
    rc = cli_open_audit(cmd, a.db, a.key, true, &s, key);
    if (rc)
        return rc;
    char actor_id[AEI_ID_MAX + 1], err[256] = "";
    actor_of(actor_id, sizeof(actor_id));
    struct audit_actor_ref actor = {AUDIT_ACTOR_SERVICE, actor_id};
    int src = store_create_token(s, key, &actor, &t, aei_now_us(), err, sizeof(err));
    if (src) {
        fprintf(stderr, "%s: %s\n", cmd, err[0] ? err : aei_strerror(src));
        store_close(s);
        return CLI_EXIT_FAIL;
    }
    rc = checkpoint(cmd, a.checkpoint, s, t.team_id);
    store_close(s);
    printf("token_id: %s\nkind: %s\nteam: %s\n%s: %s\n", t.token_id, t.kind, t.team_id,
           a.user ? "user" : "agent", a.user ? a.user : a.agent);
    if (a.user)
        printf("role: %s\n", t.role);
    printf("%s\n", token);
    return rc;
}

static int list_main(int argc, char **argv)
{
    const char *cmd = "aei token list";
    struct args a;
    int rc = parse(cmd, argc, argv, &a);
    if (rc)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (a.first < argc || a.user || a.agent || a.role) {
        fprintf(stderr, "%s: only --db and --team are taken\n", cmd);
        return CLI_EXIT_USAGE;
    }
    struct store *s;
    if (!a.db || !*a.db) {
        fprintf(stderr, "%s: no store: give --db URL or set AEI_DATABASE_URL\n", cmd);
        return CLI_EXIT_USAGE;
    }
    char err[512];
    if (store_open_existing(a.db, &s, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", cmd, err);
        return CLI_EXIT_FAIL;
    }
    struct token_rec *rows;
    size_t n;
    rc = store_list_tokens(s, a.team, &rows, &n);
    store_close(s);
    if (rc) {
        fprintf(stderr, "%s: %s\n", cmd, aei_strerror(rc));
        return CLI_EXIT_FAIL;
    }
    printf("%-15s %-5s %-20s %-24s %-8s %-27s %s\n", "TOKEN_ID", "KIND", "TEAM", "USER/AGENT",
           "ROLE", "CREATED", "REVOKED");
    for (size_t i = 0; i < n; i++) {
        char created[AEI_TIME_LEN], revoked[AEI_TIME_LEN] = "-";
        aei_time_format(rows[i].created, created);
        if (rows[i].revoked)
            aei_time_format(rows[i].revoked, revoked);
        /* An agent token has no role of its own: it acts as its agent. */
        const char *role = rows[i].role[0]                      ? rows[i].role
                           : strcmp(rows[i].kind, "agent") == 0 ? "agent"
                                                                : "-";
        printf("%-15s %-5s %-20s %-24s %-8s %-27s %s\n", rows[i].token_id, rows[i].kind,
               rows[i].team_id, rows[i].user_id[0] ? rows[i].user_id : rows[i].agent_id, role,
               created, revoked);
    }
    free(rows);
    return CLI_EXIT_OK;
}

static int revoke_main(int argc, char **argv)
{
    const char *cmd = "aei token revoke";
    struct args a;
    int rc = parse(cmd, argc, argv, &a);
    if (rc)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (a.first + 1 != argc || a.team || a.user || a.agent || a.role) {
        fprintf(stderr, "%s: give exactly one TOKEN_ID (tk_...) or token, and --db\n", cmd);
        return CLI_EXIT_USAGE;
    }
    const char *what = argv[a.first];
    char id[AUTH_TOKEN_ID_LEN + 1], why[160];
    if (strncmp(what, "aei_", 4) == 0) {
        /* A whole token: its checksum catches a typo before the store is asked. */
        if (!auth_token_is_wellformed(what, why, sizeof(why))) {
            fprintf(stderr, "%s: %s\n", cmd, why);
            return CLI_EXIT_USAGE;
        }
        uint8_t h[32];
        auth_token_hash(what, strlen(what), h);
        auth_token_id(h, id);
    } else if (strlen(what) == AUTH_TOKEN_ID_LEN && strncmp(what, "tk_", 3) == 0 &&
               strspn(what + 3, "0123456789abcdef") == AUTH_TOKEN_ID_LEN - 3) {
        snprintf(id, sizeof(id), "%s", what);
    } else {
        fprintf(stderr, "%s: '%s' is neither a token id (tk_ and 12 hex digits) nor a token\n", cmd,
                what);
        return CLI_EXIT_USAGE;
    }
    struct store *s;
    uint8_t key[AUDIT_KEY_LEN];
    rc = cli_open_audit(cmd, a.db, a.key, true, &s, key);
    if (rc)
        return rc;
    char actor_id[AEI_ID_MAX + 1];
    actor_of(actor_id, sizeof(actor_id));
    struct audit_actor_ref actor = {AUDIT_ACTOR_SERVICE, actor_id};
    struct token_rec t;
    int src = store_revoke_token(s, key, &actor, id, aei_now_us(), &t);
    if (src == 0)
        rc = checkpoint(cmd, a.checkpoint, s, t.team_id);
    store_close(s);
    if (src == AEI_ENOTFOUND) {
        fprintf(stderr, "%s: no token %s\n", cmd, id);
        return CLI_EXIT_FAIL;
    }
    if (src == AEI_ECONFLICT) {
        fprintf(stderr, "%s: token %s was revoked already\n", cmd, id);
        return CLI_EXIT_FAIL;
    }
    if (src) {
        fprintf(stderr, "%s: %s\n", cmd, aei_strerror(src));
        return CLI_EXIT_FAIL;
    }
    printf("revoked %s (%s %s of team %s)\n", id, t.kind, t.user_id[0] ? t.user_id : t.agent_id,
           t.team_id);
    return rc;
}

int token_main(int argc, char **argv)
{
    log_set_level(LOG_WARN);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        token_help(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "create") == 0)
        return create_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "list") == 0)
        return list_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "revoke") == 0)
        return revoke_main(argc - 1, argv + 1);
    fprintf(stderr, "aei token: unknown subcommand '%s'; run 'aei token --help'\n", argv[1]);
    return CLI_EXIT_USAGE;
}
