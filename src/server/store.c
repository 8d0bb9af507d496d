/* store.c - opening a store by URL, and the backend-independent wrappers */
#include "server/store.h"
#include "aei/error.h"
#include "common/json.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

const char *store_sqlite_file(const char *url)
{
    if (strncmp(url, "sqlite:", 7) != 0)
        return NULL;
    const char *path = url + 7;
    return strncmp(path, "//", 2) == 0 ? path + 2 : path;
}

/* The file a sqlite: URL names, or NULL (with err set) when it names none. */
static const char *sqlite_path(const char *url, char *err, size_t errlen)
{
    const char *path = store_sqlite_file(url);
    if (*path == '\0')
        snprintf(err, errlen, "database URL \"%s\" names no file: use sqlite:PATH", url);
    return *path ? path : NULL;
}

static bool is_sqlite(const char *url)
{
    return store_sqlite_file(url) != NULL;
}

int store_claim(const char *url, char *err, size_t errlen)
{
    if (!is_sqlite(url))
        return 0;
    const char *path = sqlite_path(url, err, errlen);
    if (!path)
        return AEI_EINVAL;
    /* flock() locks are apart from the POSIX locks SQLite takes on the same file, so this one
     * never gets in SQLite's way. The descriptor is never closed: closing any descriptor of
     * the file would drop the POSIX locks this process's SQLite connections hold on it. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT)
        return 0; /* no such directory: opening the store says so, naming it */
    if (fd < 0) {
        snprintf(err, errlen, "cannot open SQLite database %s: %s", path, strerror(errno));
        return AEI_EUNAVAILABLE;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen,
                 "SQLite database %s is in use by another aeid: a SQLite file serves one aeid "
                 "process (several aeid nodes share a PostgreSQL database instead)",
                 path);
        close(fd); /* this process holds no SQLite lock on the file yet */
        return AEI_EUNAVAILABLE;
    }
    return 0;
}

int store_open_existing(const char *url, struct store **out, char *err, size_t errlen)
{
    if (is_sqlite(url)) {
        const char *path = sqlite_path(url, err, errlen);
        if (!path)
            return AEI_EINVAL;
        if (access(path, F_OK) != 0) {
            snprintf(err, errlen,
                     "no SQLite database at %s (aeid creates it when it first starts on it): "
                     "check the path",
                     path);
            return AEI_EUNAVAILABLE;
        }
    }
    return store_open(url, out, err, errlen);
}

int store_open(const char *url, struct store **out, char *err, size_t errlen)
{
    if (is_sqlite(url)) {
        const char *path = sqlite_path(url, err, errlen);
        if (!path)
            return AEI_EINVAL;
        return store_sqlite_open(path, out, err, errlen);
    }
    if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
        return store_pg_open(url, out, err, errlen);
    snprintf(err, errlen,
             "database URL must start with sqlite:, postgres:// or postgresql:// (got \"%.40s\")",
             url);
    return AEI_EINVAL;
}

/* Fills up[0..n) for hbs[0..n), so that a batch writes each agent's row once. */
static void mark_latest(struct heartbeat *const *hbs, size_t n, struct agent_update *up);

int store_put_heartbeats(struct store *s, struct heartbeat *const *hbs, size_t n)
{
    if (n == 0)
        return 0;
    struct agent_update *up = malloc(n * sizeof(*up));
    if (!up)
        abort();
    mark_latest(hbs, n, up);
    int rc = s->ops->put_heartbeats(s, hbs, n, up);
    free(up);
    return rc;
}

int store_list_agents(struct store *s, const char *after, int limit, struct heartbeat **out,
                      size_t *n)
{
    return store_list_team_agents(s, after, limit, NULL, out, n);
}

int store_list_team_agents(struct store *s, const char *after, int limit, const char *team,
                           struct heartbeat **out, size_t *n)
{
    return s->ops->list_agents(s, after, limit, team, out, n);
}

int store_get_agent(struct store *s, const char *agent_id, struct heartbeat *out)
{
    struct heartbeat *rows;
    size_t n;
    int rc = s->ops->get_agent(s, agent_id, &rows, &n);
    if (rc)
        return rc;
    if (n == 0) {
        free(rows);
        return AEI_ENOTFOUND;
    }
    *out = rows[0];
    for (size_t i = 1; i < n; i++)
        hb_clear(&rows[i]);
    free(rows);
    return 0;
}

int store_list_heartbeats(struct store *s, const struct hb_query *q, struct heartbeat **out,
                          size_t *n)
{
    return s->ops->list_heartbeats(s, q, out, n);
}

void store_free_rows(struct heartbeat *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        hb_clear(&rows[i]);
    free(rows);
}

int store_put_decisions(struct store *s, struct decision *const *ds, size_t n, bool *stored)
{
    struct decision_batch b = {.ds = ds, .n = n, .stored = stored};
    return store_put_decision_batch(s, &b);
}

int store_put_decision_batch(struct store *s, struct decision_batch *b)
{
    b->refused = -1;
    b->owner[0] = '\0';
    if (b->n == 0)
        return b->rc = 0;
    return b->rc = s->ops->put_decisions(s, b);
}

int store_put_decision_batches(struct store *s, struct decision_batch *b, size_t nb)
{
    if (!s->ops->put_decision_batches) {
        for (size_t k = 0; k < nb; k++)
            store_put_decision_batch(s, &b[k]);
        return 0;
    }
    for (size_t k = 0; k < nb; k++) {
        b[k].refused = -1;
        b[k].owner[0] = '\0';
    }
    return s->ops->put_decision_batches(s, b, nb);
}

int store_list_executions(struct store *s, const struct exec_query *q, struct execution **out,
                          size_t *n)
{
    return s->ops->list_executions(s, q, out, n);
}

void store_free_executions(struct execution *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        execution_clear(&rows[i]);
    free(rows);
}

int store_get_execution(struct store *s, const char *execution_id, struct execution *out)
{
    return s->ops->get_execution(s, execution_id, out);
}

int store_end_execution(struct store *s, const char *execution_id, enum execution_status status,
                        int64_t ended, const char *failure_json, struct execution *out,
                        bool *changed)
{
    return s->ops->end_execution(s, execution_id, status, ended, failure_json, out, changed);
}

int store_list_decisions(struct store *s, const struct decision_query *q, struct decision **out,
                         size_t *n)
{
    return s->ops->list_decisions(s, q, out, n);
}

void store_free_decisions(struct decision *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        decision_clear(&rows[i]);
    free(rows);
}

int store_list_rollups(struct store *s, const struct rollup_query *q, struct rollup **out,
                       size_t *n)
{
    return s->ops->list_rollups(s, q, out, n);
}

int store_rollup_step(struct store *s, int64_t before, int max_rows, int *rows)
{
    return s->ops->rollup_step(s, before, max_rows, rows);
}

int store_make_partitions(struct store *s, int64_t first_day, int64_t last_day, int *made)
{
    *made = 0;
    return s->ops->make_partitions ? s->ops->make_partitions(s, first_day, last_day, made) : 0;
}

int store_expire_heartbeats(struct store *s, int64_t before, int max_rows, int64_t *deleted,
                            char *dropped, size_t dropped_len)
{
    *deleted = 0;
    dropped[0] = '\0';
    return s->ops->expire_heartbeats(s, before, max_rows, deleted, dropped, dropped_len);
}

int store_list_old_executions(struct store *s, int64_t before, int64_t after_started,
                              const char *after_id, int limit, struct old_execution **out,
                              size_t *n)
{
    return s->ops->list_old_executions(s, before, after_started, after_id, limit, out, n);
}

int store_expire_execution(struct store *s, const char *execution_id, int64_t before, int max_rows,
                           int64_t *deleted, bool *gone)
{
    *deleted = 0;
    *gone = false;
    return s->ops->expire_execution(s, execution_id, before, max_rows, deleted, gone);
}

int store_append_audit(struct store *s, const uint8_t key[AUDIT_KEY_LEN], struct audit_row *rows,
                       size_t n)
{
    if (n == 0)
        return 0;
    int rc = s->ops->begin(s);
    if (rc)
        return rc;
    rc = s->ops->append_audit(s, key, rows, n);
    if (rc == 0)
        rc = s->ops->commit(s);
    if (rc)
        s->ops->rollback(s);
    return rc;
}

int store_list_audit(struct store *s, const struct audit_query *q, struct audit_row **out,
                     size_t *n)
{
    return s->ops->list_audit(s, q, out, n);
}

void store_free_audit(struct audit_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        audit_row_clear(&rows[i]);
    free(rows);
}

int store_scan_audit(struct store *s, const char *team_id,
                     int (*each)(void *arg, const struct audit_row *r), void *arg)
{
    return s->ops->scan_audit(s, team_id, false, each, arg);
}

int store_audit_heads(struct store *s, struct audit_head **out, size_t *n)
{
    return s->ops->audit_heads(s, out, n);
}

/* Verification stops at the first fault: a non-zero answer that is not a store error. */
#define VERIFY_STOP 1

static int verify_each(void *arg, const struct audit_row *r)
{
    return audit_verify_row(arg, r) ? 0 : VERIFY_STOP;
}

/* The fast walk: rows in id order, which is file order, with one verifier per team. On a log
 * that was not tampered with, each team's rows come in seq order this way too (appends of a
 * team are serialised and ids only grow); anything else is reported by the walk in (team, seq)
 * order, whose findings are the ones documented. */
struct fast_team {
    char team_id[AEI_ID_MAX + 1];
    struct audit_verifier v;
};

struct fast_walk {
    const uint8_t *key;
    const struct audit_head *checkpoint;
    size_t n_checkpoint;
    struct fast_team **slots; /* open addressing by team id */
    size_t n_slots, n_teams;
    int64_t checked;
};

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    while (*s)
        h = (h ^ (uint8_t)*s++) * 1099511628211ULL;
    return h;
}

static void fast_grow(struct fast_walk *w);

static struct fast_team *fast_team_of(struct fast_walk *w, const char *team)
{
    if (2 * (w->n_teams + 1) > w->n_slots)
        fast_grow(w);
    size_t i = fnv1a(team) & (w->n_slots - 1);
    while (w->slots[i] && strcmp(w->slots[i]->team_id, team) != 0)
        i = (i + 1) & (w->n_slots - 1);
    if (!w->slots[i]) {
        struct fast_team *t = calloc(1, sizeof(*t));
        if (!t)
            abort();
        snprintf(t->team_id, sizeof(t->team_id), "%s", team);
        const struct audit_head *head = NULL;
        for (size_t k = 0; k < w->n_checkpoint && !head; k++)
            if (strcmp(w->checkpoint[k].team_id, team) == 0)
                head = &w->checkpoint[k];
        audit_verify_init(&t->v, w->key, head, head ? 1 : 0);
        w->slots[i] = t;
        w->n_teams++;
    }
    return w->slots[i];
}

static void fast_grow(struct fast_walk *w)
{
    struct fast_team **old = w->slots;
    size_t n = w->n_slots;
    w->n_slots = n ? 2 * n : 64;
    w->slots = calloc(w->n_slots, sizeof(*w->slots));
    if (!w->slots)
        abort();
    for (size_t i = 0; i < n; i++) {
        if (!old[i])
            continue;
        size_t k = fnv1a(old[i]->team_id) & (w->n_slots - 1);
        while (w->slots[k])
            k = (k + 1) & (w->n_slots - 1);
        w->slots[k] = old[i];
    }
    free(old);
}

static int fast_each(void *arg, const struct audit_row *r)
{
    struct fast_walk *w = arg;
    struct fast_team *t = fast_team_of(w, r->team_id);
    w->checked++;
    return audit_verify_row(&t->v, r) ? 0 : VERIFY_STOP;
}

static struct fast_team *fast_find(const struct fast_walk *w, const char *team)
{
    if (!w->n_slots)
        return NULL;
    size_t i = fnv1a(team) & (w->n_slots - 1);
    while (w->slots[i] && strcmp(w->slots[i]->team_id, team) != 0)
        i = (i + 1) & (w->n_slots - 1);
    return w->slots[i];
}

/* Returns 0 with *clean when every chain verifies in the fast walk, or a store error. */
static int fast_verify(struct store *s, const char *team_id, const struct audit_verifier *v,
                       bool *clean, int64_t *checked)
{
    struct fast_walk w = {
        .key = v->key, .checkpoint = v->checkpoint, .n_checkpoint = v->n_checkpoint};
    int rc = s->ops->scan_audit(s, team_id, true, fast_each, &w);
    *clean = rc == 0;
    /* A team the checkpoint knows must have rows. */
    for (size_t k = 0; k < v->n_checkpoint && *clean; k++)
        *clean = fast_find(&w, v->checkpoint[k].team_id) != NULL;
    for (size_t i = 0; i < w.n_slots; i++) {
        if (!w.slots[i])
            continue;
        audit_verify_finish(&w.slots[i]->v);
        *clean = *clean && w.slots[i]->v.fault == AUDIT_FAULT_NONE;
        free(w.slots[i]);
    }
    free(w.slots);
    *checked = w.checked;
    return rc == VERIFY_STOP ? 0 : rc;
}

int store_verify_audit(struct store *s, const char *team_id, struct audit_verifier *v)
{
    bool clean;
    int64_t checked;
    int rc = fast_verify(s, team_id, v, &clean, &checked);
    if (rc)
        return rc;
    if (clean) {
        v->checked = checked;
        v->n_checkpoint = 0; /* each team was held to its head in the fast walk */
        audit_verify_finish(v);
        return 0;
    }
    rc = s->ops->scan_audit(s, team_id, false, verify_each, v);
    if (rc == VERIFY_STOP)
        rc = 0;
    audit_verify_finish(v);
    return rc;
}

/* Fills an audit row of an administrative action; context is a JSON object built by the caller
 * (its reference is taken). */
static void admin_row(struct audit_row *r, const struct audit_actor_ref *actor, const char *team_id,
                      const char *action, const char *resource, int64_t now, json_t *context)
{
    memset(r, 0, sizeof(*r));
    r->ts = now;
    snprintf(r->team_id, sizeof(r->team_id), "%s", team_id);
    r->actor_type = actor->type;
    snprintf(r->actor_id, sizeof(r->actor_id), "%s", actor->id);
    snprintf(r->action_type, sizeof(r->action_type), "%s", action);
    snprintf(r->resource_id, sizeof(r->resource_id), "%s", resource);
    char err[128];
    r->context = audit_canonical_value(context, err, sizeof(err));
    if (!r->context)
        abort(); /* built here from ids and roles: always canonical */
    json_decref(context);
}

/* Ensures the team exists inside a transaction, adding its audit row to rows when it is new. */
static int ensure_team(struct store *s, const struct audit_actor_ref *actor, const char *team_id,
                       int64_t now, struct audit_row *rows, size_t *n)
{
    bool created;
    int rc = s->ops->ensure_team(s, team_id, now, &created);
    if (rc == 0 && created)
        admin_row(&rows[(*n)++], actor, team_id, "team_create", team_id, now,
                  json_pack("{s:{s:s}}", "after", "team_id", team_id));
    return rc;
}

/* Appends rows, commits, and frees the rows; rolls back on any failure (rc non-zero). */
static int finish(struct store *s, const uint8_t *key, int rc, struct audit_row *rows, size_t n)
{
    if (rc == 0)
        rc = s->ops->append_audit(s, key, rows, n);
    if (rc == 0)
        rc = s->ops->commit(s);
    if (rc)
        s->ops->rollback(s);
    for (size_t i = 0; i < n; i++)
        audit_row_clear(&rows[i]);
    return rc;
}

int store_create_user(struct store *s, const uint8_t key[AUDIT_KEY_LEN],
                      const struct audit_actor_ref *actor, const char *team_id, const char *user_id,
                      const char *role, int64_t now)
{
    struct audit_row rows[2];
    size_t n = 0;
    int rc = s->ops->begin(s);
    if (rc)
        return rc;
    rc = ensure_team(s, actor, team_id, now, rows, &n);
    bool created = false;
    char team[AEI_ID_MAX + 1], had_role[16];
    if (rc == 0)
        rc = s->ops->ensure_user(s, user_id, team_id, role, now, &created, team, had_role);
    if (rc == 0 && !created)
        rc = AEI_ECONFLICT;
    if (rc == 0)
        admin_row(&rows[n++], actor, team_id, "user_create", user_id, now,
                  json_pack("{s:{s:s,s:s,s:s}}", "after", "user_id", user_id, "team_id", team_id,
                            "role", role));
    return finish(s, key, rc, rows, n);
}

int store_create_token(struct store *s, const uint8_t key[AUDIT_KEY_LEN],
                       const struct audit_actor_ref *actor, struct token_rec *t, int64_t now,
                       char *err, size_t errlen)
{
    struct audit_row rows[3];
    size_t n = 0;
    bool user = strcmp(t->kind, "user") == 0;
    t->created = now;
    t->revoked = 0;
    int rc = s->ops->begin(s);
    if (rc)
        return rc;
    rc = ensure_team(s, actor, t->team_id, now, rows, &n);
    if (rc == 0 && user) {
        bool created;
        char team[AEI_ID_MAX + 1], role[16];
        rc = s->ops->ensure_user(s, t->user_id, t->team_id, t->role, now, &created, team, role);
        if (rc == 0 && !created && (strcmp(team, t->team_id) || strcmp(role, t->role))) {
            snprintf(err, errlen, "user %s exists in team %s with role %s", t->user_id, team, role);
            rc = AEI_ECONFLICT;
        } else if (rc == 0 && created) {
            admin_row(&rows[n++], actor, t->team_id, "user_create", t->user_id, now,
                      json_pack("{s:{s:s,s:s,s:s}}", "after", "user_id", t->user_id, "team_id",
                                t->team_id, "role", t->role));
        }
    }
    if (rc == 0)
        rc = s->ops->insert_token(s, t);
    if (rc == 0) {
        json_t *after = json_pack("{s:s,s:s,s:s}", "token_id", t->token_id, "kind", t->kind,
                                  "team_id", t->team_id);
        json_object_set_new(after, user ? "user_id" : "agent_id",
                            json_string(user ? t->user_id : t->agent_id));
        if (user)
            json_object_set_new(after, "role", json_string(t->role));
        admin_row(&rows[n++], actor, t->team_id, "token_create", t->token_id, now,
                  json_pack("{s:o}", "after", after));
    }
    return finish(s, key, rc, rows, n);
}

int store_revoke_token(struct store *s, const uint8_t key[AUDIT_KEY_LEN],
                       const struct audit_actor_ref *actor, const char *token_id, int64_t now,
                       struct token_rec *out)
{
    struct audit_row row;
    size_t n = 0;
    int rc = s->ops->begin(s);
    if (rc)
        return rc;
    rc = s->ops->revoke_token(s, token_id, now, out);
    if (rc == 0) {
        admin_row(&row, actor, out->team_id, "token_revoke", token_id, now,
                  json_pack("{s:{s:n},s:{s:I}}", "before", "revoked", "after", "revoked",
                            (json_int_t)now));
        n = 1;
    }
    return finish(s, key, rc, &row, n);
}

int store_list_tokens(struct store *s, const char *team_id, struct token_rec **out, size_t *n)
{
    return s->ops->list_tokens(s, team_id, NULL, out, n);
}

int store_find_token(struct store *s, const uint8_t hash[32], struct token_rec *out)
{
    char hex[AUDIT_HEX_LEN + 1];
    audit_hex(hash, 32, hex);
    struct token_rec *rows;
    size_t n;
    int rc = s->ops->list_tokens(s, NULL, hex, &rows, &n);
    if (rc)
        return rc;
    if (n > 0)
        *out = rows[0];
    free(rows);
    return n > 0 ? 0 : AEI_ENOTFOUND;
}

/* Stores one command and its audit row inside the transaction. */
static int put_command(struct store *s, const uint8_t *key, struct command_put *p)
{
    struct command *c = p->c;
    json_t *context = json_pack("{s:s, s:o}", "command_id", c->command_id, "params",
                                json_loads(c->params, 0, NULL));
    if (p->reason)
        json_object_set_new(context, "reason", json_string(p->reason));
    if (p->control_after >= 0) {
        json_object_set_new(context, "before",
                            json_pack("{s:s}", "control", agent_control_names[p->control_before]));
        json_object_set_new(context, "after",
                            json_pack("{s:s}", "control", agent_control_names[p->control_after]));
    }
    struct audit_actor_ref actor = {c->actor_type, c->actor_id};
    admin_row(&p->audit, &actor, c->team_id, command_action_names[c->action], c->agent_id,
              c->created, context);
    int rc = s->ops->append_audit(s, key, &p->audit, 1);
    c->audit_id = p->audit.id;
    if (rc == 0)
        rc = s->ops->insert_command(s, c);
    if (rc == 0 && p->control_after >= 0)
        rc = s->ops->set_control(s, c->agent_id, p->control_after);
    return rc;
}

/* Stores commands first..first+n in one transaction: all or none. */
static int put_commands_tx(struct store *s, const uint8_t *key, struct command_put *p, size_t n)
{
    int rc = s->ops->begin(s);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = p[i].rc = put_command(s, key, &p[i]);
    if (rc == 0)
        rc = s->ops->commit(s);
    if (rc)
        s->ops->rollback(s);
    for (size_t i = 0; i < n; i++)
        p[i].rc = rc;
    return rc;
}

int store_put_commands(struct store *s, const uint8_t key[AUDIT_KEY_LEN], struct command_put *p,
                       size_t n)
{
    int rc = put_commands_tx(s, key, p, n);
    /* Refused for what one of them holds (not for the store being away): each on its own. */
    if (rc && rc != AEI_EUNAVAILABLE && n > 1) {
        rc = 0;
        for (size_t i = 0; i < n; i++) {
            audit_row_clear(&p[i].audit);
            put_commands_tx(s, key, &p[i], 1);
        }
    }
    return rc;
}

int store_ack_command(struct store *s, const uint8_t key[AUDIT_KEY_LEN],
                      const struct audit_actor_ref *actor, const char *agent_id,
                      const char *command_id, enum command_status status, const char *result,
                      int64_t now, struct command *out, bool *changed)
{
    *changed = false;
    memset(out, 0, sizeof(*out));
    int rc = s->ops->begin(s);
    if (rc)
        return rc;
    rc = s->ops->get_command(s, command_id, out);
    if (rc == 0 && strcmp(out->agent_id, agent_id) != 0)
        rc = AEI_ENOTFOUND;
    if (rc == 0 && out->status >= CMD_SUCCEEDED) {
        rc = out->status == status ? 0 : AEI_ECONFLICT;
        s->ops->rollback(s);
        return rc;
    }
    struct audit_row row;
    size_t n = 0;
    if (rc == 0)
        rc = s->ops->ack_command(s, command_id, status, result, now);
    if (rc == 0) {
        json_t *context =
            json_pack("{s:s, s:s, s:s}", "command_id", command_id, "action",
                      command_action_names[out->action], "status", command_status_names[status]);
        if (result)
            json_object_set_new(context, "result", json_loads(result, JSON_DECODE_ANY, NULL));
        admin_row(&row, actor, out->team_id, "command_ack", agent_id, now, context);
        n = 1;
        *changed = true;
        out->status = status;
        out->acked = now;
        free(out->result);
        out->result = result ? strdup(result) : NULL;
    }
    return finish(s, key, rc, &row, n);
}

int store_list_commands(struct store *s, const struct command_query *q, struct command **out,
                        size_t *n)
{
    return s->ops->list_commands(s, q, out, n);
}

void store_free_commands(struct command *rows, size_t n)
{
    for (size_t i = 0; rows && i < n; i++)
        command_clear(&rows[i]);
    free(rows);
}

int store_mark_delivered(struct store *s, char (*ids)[AEI_ID_MAX + 1], size_t n, int64_t now)
{
    int rc = s->ops->begin(s);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = s->ops->mark_delivered(s, ids[i], now);
    if (rc == 0)
        rc = s->ops->commit(s);
    if (rc)
        s->ops->rollback(s);
    return rc;
}

void store_close(struct store *s)
{
    if (s)
        s->ops->close(s);
}

int store_set_scope(struct store *s, const char *team_id)
{
    if (!team_id)
        team_id = "";
    if (strlen(team_id) > AEI_ID_MAX)
        return AEI_EINVAL;
    return s->ops->set_scope(s, team_id);
}

static bool scopes(const struct store *s, const char *team_id)
{
    return team_id && team_id[0] && s->ops->scope_transaction;
}

int store_begin_scoped(struct store *s, const char *team_id)
{
    if (!scopes(s, team_id))
        return 0;
    if (strlen(team_id) > AEI_ID_MAX)
        return AEI_EINVAL;
    int rc = s->ops->begin(s);
    if (rc == 0 && (rc = s->ops->scope_transaction(s, team_id)) != 0)
        s->ops->rollback(s);
    return rc;
}

void store_end_scoped(struct store *s, const char *team_id)
{
    if (scopes(s, team_id))
        s->ops->rollback(s); /* it only read */
}

struct order {
    const char *agent_id;
    size_t index;
};

static int by_agent_then_index(const void *a, const void *b)
{
    const struct order *x = a, *y = b;
    int c = strcmp(x->agent_id, y->agent_id);
    if (c)
        return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

static void mark_latest(struct heartbeat *const *hbs, size_t n, struct agent_update *up)
{
    struct order *o = malloc(n * sizeof(*o));
    if (!o)
        abort();
    for (size_t i = 0; i < n; i++) {
        o[i] = (struct order){hbs[i]->agent_id, i};
        up[i] = (struct agent_update){.latest = false};
    }
    qsort(o, n, sizeof(*o), by_agent_then_index);
    struct agent_update agent = {.latest = true};
    for (size_t i = 0; i < n; i++) {
        const struct heartbeat *hb = hbs[o[i].index];
        if (i == 0 || strcmp(o[i].agent_id, o[i - 1].agent_id) != 0)
            agent = (struct agent_update){
                .latest = true, .first_ts = hb->server_ts, .team_id = hb->team_id};
        if (hb->name)
            agent.name = hb->name;
        if (i + 1 == n || strcmp(o[i].agent_id, o[i + 1].agent_id) != 0)
            up[o[i].index] = agent;
    }
    free(o);
}
