/* store.h - the storage interface, with SQLite and PostgreSQL backends */
#ifndef AEI_SERVER_STORE_H
#define AEI_SERVER_STORE_H

#include "common/buf.h"
#include "server/audit.h"
#include "server/auth.h"
#include "server/command.h"
#include "server/heartbeat.h"
#include "server/trace.h"

#include <stddef.h>
#include <stdint.h>

/* One connection to the store. A store is used by one thread at a time; each worker thread
 * opens its own. */
struct store;

/* A page request over one agent's heartbeat history, ascending by (server_ts, id). */
struct hb_query {
    const char *agent_id;
    int64_t from, to;           /* server time, from inclusive, to exclusive */
    int64_t after_ts, after_id; /* keyset cursor: rows strictly after (after_ts, after_id) */
    int limit;
};

/* A page of executions, newest first (started descending, then execution_id descending). */
struct exec_query {
    const char *agent_id;   /* NULL for every agent */
    const char *team_id;    /* NULL for every team */
    int status;             /* an enum execution_status, or -1 for any */
    int64_t before_started; /* keyset cursor: executions strictly after (before_started, */
    const char *before_id;  /* before_id) in that order; before_id NULL for the first page */
    int limit;
};

/* A page of one execution's decisions in tree pre-order (ascending path), or of one decision's
 * children (ascending path). Decisions whose parent has not arrived are not listed, unless
 * `waiting` asks for them alone: then they come in the order they arrived (ascending store id),
 * after `after_id`, and parent_id and after_path are not used. */
struct decision_query {
    const char *execution_id;
    const char *parent_id;  /* NULL: the whole tree; else only this decision's children */
    const char *after_path; /* keyset cursor: decisions with a path strictly after it, or NULL */
    int limit;
    bool waiting;     /* list only the decisions waiting for their parent (path NULL) */
    int64_t after_id; /* with waiting: keyset cursor, decisions with a store id above it */
};

/* One request's batch of decisions, for store_put_decision_batches(), and who sends it. */
struct decision_batch {
    struct decision *const *ds;
    size_t n;
    bool *stored; /* out: which were new */
    int rc;       /* out: 0, or why this batch was not stored */
    /* The team a new execution takes while its agent is not registered (the sender's; NULL for
     * "default"): once the agent registers, its executions take its team. */
    const char *team;
    /* What the sender may add to: executions of this team (NULL: any) and of this agent (NULL:
     * any). Adding to another one fails the batch with AEI_ENOTFOUND. */
    const char *scope_team;
    const char *scope_agent;
    /* out, when rc is AEI_ENOTFOUND or AEI_ECONFLICT: the index of the decision refused and,
     * for AEI_ECONFLICT, the agent its execution belongs to. */
    long refused;
    char owner[AEI_ID_MAX + 1];
};

/* Retention works in UTC days numbered from 1970-01-01 (day 0). */
#define STORE_DAY_US 86400000000LL

/* One agent's heartbeats of one day, summed up; kept after the raw rows are deleted. */
struct rollup {
    int64_t day;
    int64_t heartbeats;
    int64_t cpu_n, mem_n; /* heartbeats that reported cpu_pct, mem_pct */
    double cpu_sum, cpu_max, mem_sum, mem_max;
    bool has_tokens_per_min;
    double tokens_per_min_max;
    double cost_added; /* the rise of the cumulative cost_usd that day (retention.c) */
};

/* A page of one agent's rollups, ascending by day. */
struct rollup_query {
    const char *agent_id;
    int64_t from_day, to_day; /* both inclusive */
    int64_t after_day;        /* keyset cursor: days strictly after it */
    int limit;
};

/* An execution that started before a retention cutoff; expired when its last activity (its last
 * decision, or its end) is before the cutoff too. */
struct old_execution {
    char execution_id[AEI_ID_MAX + 1];
    int64_t started;
    bool expired;
};

/* A page of audit rows, newest first (ts descending, then id descending). */
struct audit_query {
    const char *team_id;  /* NULL for every team */
    const char *actor_id; /* filters: NULL for any */
    const char *action_type;
    const char *resource_id;
    int64_t from, to;             /* server time, from inclusive, to exclusive */
    int64_t before_ts, before_id; /* keyset cursor: rows strictly before (before_ts, before_id) */
    int limit;
};

/* A token as the store keeps it: never the token itself, only its hash. */
struct token_rec {
    char token_id[AUTH_TOKEN_ID_LEN + 1];
    char hash[AUDIT_HEX_LEN + 1]; /* BLAKE3 of the token, hex */
    char kind[8];                 /* "user" or "agent" */
    char team_id[AEI_ID_MAX + 1];
    char user_id[AEI_ID_MAX + 1];  /* kind user, else "" */
    char agent_id[AEI_ID_MAX + 1]; /* kind agent, else "" */
    char role[16];                 /* the user's role (admin, operator, viewer), "" for agents */
    int64_t created, revoked;      /* revoked 0 while the token is valid */
};

/* A page of commands, newest first (created descending, then command_id descending). */
struct command_query {
    const char *agent_id;   /* NULL for every agent */
    bool open;              /* only pending and delivered ones */
    int64_t before_created; /* keyset cursor: commands strictly after (before_created, */
    const char *before_id;  /* before_id) in that order; before_id NULL for the first page */
    int limit;              /* -1 for all */
};

/* One command to record, for store_put_commands(). */
struct command_put {
    struct command *c;      /* everything but audit_id, which is set when it is stored */
    const char *reason;     /* the operator's, or NULL */
    int control_before;     /* the agent's control state before ... */
    int control_after;      /* ... and after (-1: the action does not change it) */
    struct audit_row audit; /* out: its audit row as appended */
    int rc;                 /* out: 0, or why it was not stored */
};

/* What a heartbeat of a batch does to its agent's row. Only the last heartbeat of each agent in
 * the batch writes the row (latest true, and the fields below set); for the others latest is
 * false and the rest unset. A new agent is registered as its first heartbeat in the batch says.
 * The strings are borrowed from the batch's heartbeats. */
struct agent_update {
    bool latest;
    int64_t first_ts;    /* the server time of the agent's first heartbeat in the batch */
    const char *team_id; /* a new agent's team, from that first heartbeat ("" for the default) */
    const char *name;    /* the last name the agent's heartbeats carry, or NULL to keep its own */
};

/* The operations each backend provides; see the wrappers below for their contracts. */
struct store_ops {
    const char *name;
    bool parallel_writers; /* writes on several connections run side by side (not SQLite's) */
    /* up[i] says what hbs[i] does to its agent's row. */
    int (*put_heartbeats)(struct store *s, struct heartbeat *const *hbs, size_t n,
                          const struct agent_update *up);
    int (*list_agents)(struct store *s, const char *after, int limit, const char *team,
                       struct heartbeat **out, size_t *n);
    int (*get_agent)(struct store *s, const char *agent_id, struct heartbeat **out, size_t *n);
    int (*list_heartbeats)(struct store *s, const struct hb_query *q, struct heartbeat **out,
                           size_t *n);
    int (*put_decisions)(struct store *s, struct decision_batch *b);
    /* Optional: NULL where a backend stores each batch on its own. */
    int (*put_decision_batches)(struct store *s, struct decision_batch *b, size_t nb);
    int (*list_executions)(struct store *s, const struct exec_query *q, struct execution **out,
                           size_t *n);
    int (*get_execution)(struct store *s, const char *execution_id, struct execution *out);
    int (*end_execution)(struct store *s, const char *execution_id, enum execution_status status,
                         int64_t ended, const char *failure_json, struct execution *out,
                         bool *changed);
    int (*list_decisions)(struct store *s, const struct decision_query *q, struct decision **out,
                          size_t *n);
    int (*list_rollups)(struct store *s, const struct rollup_query *q, struct rollup **out,
                        size_t *n);
    int (*rollup_step)(struct store *s, int64_t before, int max_rows, int *rows);
    /* NULL when the backend has no partitions. */
    int (*make_partitions)(struct store *s, int64_t first_day, int64_t last_day, int *made);
    int (*expire_heartbeats)(struct store *s, int64_t before, int max_rows, int64_t *deleted,
                             char *dropped, size_t dropped_len);
    int (*list_old_executions)(struct store *s, int64_t before, int64_t after_started,
                               const char *after_id, int limit, struct old_execution **out,
                               size_t *n);
    int (*expire_execution)(struct store *s, const char *execution_id, int64_t before, int max_rows,
                            int64_t *deleted, bool *gone);
    /* Transactions for the operations marked "in a transaction" below. */
    int (*begin)(struct store *s);
    int (*commit)(struct store *s);
    void (*rollback)(struct store *s);
    /* In a transaction: appends rows of one team, setting their id, seq, prev_hash and hash
     * (under key) from the team's chain head, which stays locked until the end. */
    int (*append_audit)(struct store *s, const uint8_t *key, struct audit_row *rows, size_t n);
    int (*list_audit)(struct store *s, const struct audit_query *q, struct audit_row **out,
                      size_t *n);
    /* Calls each(arg, row) for every audit row (of one team, or all for NULL) in (team, seq)
     * order, or in id order with by_id (row and its context are borrowed for the call); stops
     * when each returns non-zero and returns that. */
    int (*scan_audit)(struct store *s, const char *team_id, bool by_id,
                      int (*each)(void *arg, const struct audit_row *r), void *arg);
    int (*audit_heads)(struct store *s, struct audit_head **out, size_t *n);
    /* In a transaction: *created tells whether the row is new. */
    int (*ensure_team)(struct store *s, const char *team_id, int64_t now, bool *created);
    /* In a transaction: an existing user keeps its team and role, returned in team and role. */
    int (*ensure_user)(struct store *s, const char *user_id, const char *team_id, const char *role,
                       int64_t now, bool *created, char *team, char *role_out);
    int (*insert_token)(struct store *s, const struct token_rec *t);
    /* In a transaction: revokes a valid token; AEI_ENOTFOUND if none such, AEI_ECONFLICT if
     * it was revoked already. *out is the token as it was found. */
    int (*revoke_token)(struct store *s, const char *token_id, int64_t now, struct token_rec *out);
    /* Tokens of one team (all teams for NULL), by creation; only the one with this hash (hex)
     * unless hash is NULL. */
    int (*list_tokens)(struct store *s, const char *team_id, const char *hash,
                       struct token_rec **out, size_t *n);
    /* Commands; those marked "in a transaction" run inside begin/commit. */
    int (*insert_command)(struct store *s, const struct command *c);        /* in a transaction */
    int (*set_control)(struct store *s, const char *agent_id, int control); /* likewise */
    /* Reads a command (locking it, in a transaction, where the backend can), or AEI_ENOTFOUND. */
    int (*get_command)(struct store *s, const char *command_id, struct command *out);
    int (*ack_command)(struct store *s, const char *command_id, enum command_status status,
                       const char *result, int64_t now); /* in a transaction */
    int (*list_commands)(struct store *s, const struct command_query *q, struct command **out,
                         size_t *n);
    /* Marks a pending command delivered at `now`; one delivered or acknowledged is left. */
    int (*mark_delivered)(struct store *s, const char *command_id, int64_t now);
    void (*close)(struct store *s);
    /* team_id "" for unscoped; never called inside a transaction. */
    int (*set_scope)(struct store *s, const char *team_id);
    /* In a transaction: scopes it alone (NULL where the store has no row-level security). */
    int (*scope_transaction)(struct store *s, const char *team_id);
};

/* Every backend's connection starts with this header. */
struct store {
    const struct store_ops *ops;
};

/* Opens a connection for `url` ("sqlite:PATH", "postgres://…" or "postgresql://…") and applies
 * the migrations this binary knows and the store lacks (in one transaction). Returns 0 and *out, or
 * a negative AEI_E* code with a one-line reason in err. Caller closes with store_close(). */
int store_open(const char *url, struct store **out, char *err, size_t errlen);

/* The file path of a "sqlite:PATH" (or "sqlite://PATH") URL, pointing into url; NULL for a URL
 * of another store. */
const char *store_sqlite_file(const char *url);

/* store_open() for tools that work on a store aeid made: a SQLite file that does not exist is
 * an error (a mistyped path), not a new database. */
int store_open_existing(const char *url, struct store **out, char *err, size_t errlen);

/* Claims a SQLite store for this process until it exits, so that a second aeid on the same file
 * is refused (two would each keep their own live state of one database). Other stores are
 * shared by design and always claimed. Returns 0 or a negative AEI_E* code with err set. */
int store_claim(const char *url, char *err, size_t errlen);

/* The SQL of an audit page on each backend (parameters: SQLite ?1 team, ?2 actor, ?3 action,
 * ?4 resource, ?5 from, ?6 to, ?7 and ?8 the cursor, ?9 limit; PostgreSQL $1 from, $2 to, $3
 * and $4 the cursor, $5 limit, then the filters present in that order), for EXPLAIN in the
 * benchmark. */
void store_sqlite_audit_sql(const struct audit_query *q, struct buf *sql);
void store_pg_audit_sql(const struct audit_query *q, struct buf *sql);
/* The libpq connection (PGconn) of a PostgreSQL store, for tests and tools that need SQL no
 * store operation runs; NULL for another backend. Borrowed: store_close() closes it. */
struct pg_conn *store_pg_conn(struct store *s);
/* Backend constructors used by store_open(). */
int store_sqlite_open(const char *path, struct store **out, char *err, size_t errlen);
int store_pg_open(const char *url, struct store **out, char *err, size_t errlen);

/* Stores the heartbeats and the agents' latest states in one transaction: all or none. */
int store_put_heartbeats(struct store *s, struct heartbeat *const *hbs, size_t n);
/* Returns agents' latest states ordered by agent_id: those after `after` ("" for the first), at
 * most `limit` of them (-1 for all). Caller frees with store_free_rows(). */
int store_list_agents(struct store *s, const char *after, int limit, struct heartbeat **out,
                      size_t *n);
/* The same, of one team's agents (every team's for NULL). */
int store_list_team_agents(struct store *s, const char *after, int limit, const char *team,
                           struct heartbeat **out, size_t *n);
/* Reads one agent's latest state into *out (caller hb_clear()s it), or AEI_ENOTFOUND. */
int store_get_agent(struct store *s, const char *agent_id, struct heartbeat *out);
/* Returns up to q->limit heartbeats of one agent. Caller frees with store_free_rows(). */
int store_list_heartbeats(struct store *s, const struct hb_query *q, struct heartbeat **out,
                          size_t *n);
/* Frees rows returned by a list call. */
void store_free_rows(struct heartbeat *rows, size_t n);

/* Stores decisions in one transaction, all or none, idempotently: a decision whose decision_id
 * is already stored is left as it is and gets stored[i] = false (a retried batch stores nothing
 * twice); the others get stored[i] = true. Each new decision takes its place in its execution's
 * tree (created, status running, on its first decision; its figures updated); a decision whose
 * parent has not arrived waits (path NULL, counted in the execution's pending) and takes its
 * place, with its own waiting descendants, when the parent lands. A decision that would sit
 * deeper than TRACE_DEPTH_MAX fails the batch with AEI_EINVAL. An execution belongs to the agent
 * of its first decision: a decision naming another agent for it (stored already, or earlier in
 * the batch) fails the batch with AEI_ECONFLICT. Unscoped: the sender may add to any execution,
 * and a new one whose agent is not registered takes team "default". */
int store_put_decisions(struct store *s, struct decision *const *ds, size_t n, bool *stored);
/* Stores one batch as store_put_decisions() does, for the sender that b describes: an execution
 * out of its scope fails the batch with AEI_ENOTFOUND (checked before AEI_ECONFLICT, so that the
 * owner of such an execution does not show), b->refused and b->owner telling which. */
int store_put_decision_batch(struct store *s, struct decision_batch *b);
/* Stores several batches as store_put_decision_batch() would store each, with one commit where the
 * backend can: b[k].rc tells each batch's fate (one may fail while the others are stored).
 * Returns 0, or the error that failed them all (the commit, the store going away). */
int store_put_decision_batches(struct store *s, struct decision_batch *b, size_t nb);
/* Returns up to q->limit executions. Caller frees with store_free_executions(). */
int store_list_executions(struct store *s, const struct exec_query *q, struct execution **out,
                          size_t *n);
void store_free_executions(struct execution *rows, size_t n);
/* Reads one execution into *out (caller execution_clear()s it), or AEI_ENOTFOUND. */
int store_get_execution(struct store *s, const char *execution_id, struct execution *out);
/* Ends a running execution: its status (not running), the time it ended and why it failed
 * (compact JSON, or NULL). One that has ended already keeps how it ended: *changed tells which
 * happened. Either way *out is the execution as it now is (caller execution_clear()s it).
 * AEI_ENOTFOUND when no decision of it has been stored. */
int store_end_execution(struct store *s, const char *execution_id, enum execution_status status,
                        int64_t ended, const char *failure_json, struct execution *out,
                        bool *changed);
/* Returns up to q->limit decisions with path and depth set. Caller frees with
 * store_free_decisions(). */
int store_list_decisions(struct store *s, const struct decision_query *q, struct decision **out,
                         size_t *n);
void store_free_decisions(struct decision *rows, size_t n);

/* Retention, in short transactions that retention.c strings together. `before` is a server
 * time; nothing at or after it is touched. */

/* Returns up to q->limit rollups of one agent. Caller frees with free(). */
int store_list_rollups(struct store *s, const struct rollup_query *q, struct rollup **out,
                       size_t *n);
/* Adds the next heartbeats not yet rolled up, at most max_rows of them, all older than `before`,
 * to their agents' daily rollups, in (server_ts, id) order, in one transaction; *rows says how
 * many (fewer than max_rows: none are left). Each heartbeat is counted once however often this
 * runs. */
int store_rollup_step(struct store *s, int64_t before, int max_rows, int *rows);
/* Makes the daily heartbeat partitions of days first_day..last_day that do not exist (*made
 * counts them); a no-op with *made = 0 on a store without partitions. */
int store_make_partitions(struct store *s, int64_t first_day, int64_t last_day, int *made);
/* Deletes rolled-up heartbeats older than `before` in one short transaction: either drops one
 * whole daily partition (its name in dropped, PostgreSQL) or deletes at most max_rows rows
 * (*deleted; dropped ""). Nothing deleted and nothing dropped: none are left. */
int store_expire_heartbeats(struct store *s, int64_t before, int max_rows, int64_t *deleted,
                            char *dropped, size_t dropped_len);
/* Returns up to `limit` executions started before `before`, ascending by (started,
 * execution_id) after the cursor (after_id "" for the first), each marked expired when its last
 * activity is before `before` too. Caller frees with free(). */
int store_list_old_executions(struct store *s, int64_t before, int64_t after_started,
                              const char *after_id, int limit, struct old_execution **out,
                              size_t *n);
/* If the execution's last activity is before `before`, deletes at most max_rows of its
 * decisions (*deleted) and, once none are left, the execution (*gone), in one transaction. */
int store_expire_execution(struct store *s, const char *execution_id, int64_t before, int max_rows,
                           int64_t *deleted, bool *gone);
/* Appends audit rows of one team (rows[i].team_id all equal; context canonical) in one
 * transaction; on success each row has its id, seq, prev_hash and hash. Concurrent appenders,
 * in this process or others, make one contiguous chain per team. */
int store_append_audit(struct store *s, const uint8_t key[AUDIT_KEY_LEN], struct audit_row *rows,
                       size_t n);
/* Returns a page of audit rows. Caller frees with store_free_audit(). */
int store_list_audit(struct store *s, const struct audit_query *q, struct audit_row **out,
                     size_t *n);
void store_free_audit(struct audit_row *rows, size_t n);
/* Calls each() for every audit row in (team, seq) order; see store_ops.scan_audit. */
int store_scan_audit(struct store *s, const char *team_id,
                     int (*each)(void *arg, const struct audit_row *r), void *arg);
/* The head (last seq and hash) of every team's chain. Caller frees *out with free(). */
int store_audit_heads(struct store *s, struct audit_head **out, size_t *n);
/* Walks every chain (or one team's) with v (audit_verify_init() done by the caller, with the
 * checkpoint heads of that team alone when one team is walked; this ends the walk with
 * audit_verify_finish()). Returns 0, a fault included, or a store error. */
int store_verify_audit(struct store *s, const char *team_id, struct audit_verifier *v);

/* Who performs an audited action. */
struct audit_actor_ref {
    enum audit_actor type;
    const char *id;
};

/* Creates a user of a team (the team too if new) with a role, audited (team_create,
 * user_create) in the same transaction. AEI_ECONFLICT if the user exists. */
int store_create_user(struct store *s, const uint8_t key[AUDIT_KEY_LEN],
                      const struct audit_actor_ref *actor, const char *team_id, const char *user_id,
                      const char *role, int64_t now);
/* Stores a new token (t: its id, hash, kind, team and user or agent; role for a user), creating
 * its team and user when new, audited (team_create, user_create, token_create) in one
 * transaction. A user that exists in another team or with another role is AEI_ECONFLICT, with a
 * reason in err. */
int store_create_token(struct store *s, const uint8_t key[AUDIT_KEY_LEN],
                       const struct audit_actor_ref *actor, struct token_rec *t, int64_t now,
                       char *err, size_t errlen);
/* Revokes a token, audited (token_revoke) in the same transaction; *out is the token. */
int store_revoke_token(struct store *s, const uint8_t key[AUDIT_KEY_LEN],
                       const struct audit_actor_ref *actor, const char *token_id, int64_t now,
                       struct token_rec *out);
/* Lists tokens (of one team, or all for NULL). Caller frees *out with free(). */
int store_list_tokens(struct store *s, const char *team_id, struct token_rec **out, size_t *n);
/* Reads the token whose BLAKE3 hash is given (revoked or not), or AEI_ENOTFOUND. */
int store_find_token(struct store *s, const uint8_t hash[32], struct token_rec *out);

/* Records commands, each with its audit row (action_type the action, resource the agent) and
 * the agent's new control state, in one transaction: p[k].rc tells each one's fate (when one
 * fails for what it holds, the others are stored one by one). Returns 0, or the error that
 * failed them all (the commit, the store going away): then nothing is stored. */
int store_put_commands(struct store *s, const uint8_t key[AUDIT_KEY_LEN], struct command_put *p,
                       size_t n);
/* Records an agent's acknowledgement of one of its commands with its audit row (command_ack,
 * by actor) in one transaction. AEI_ENOTFOUND if the agent has no such command; one
 * acknowledged already with the same status is left (*changed false), with another status it
 * is AEI_ECONFLICT. *out is the command as it now is (caller command_clear()s it). */
int store_ack_command(struct store *s, const uint8_t key[AUDIT_KEY_LEN],
                      const struct audit_actor_ref *actor, const char *agent_id,
                      const char *command_id, enum command_status status, const char *result,
                      int64_t now, struct command *out, bool *changed);
/* Returns up to q->limit commands. Caller frees with store_free_commands(). */
int store_list_commands(struct store *s, const struct command_query *q, struct command **out,
                        size_t *n);
void store_free_commands(struct command *rows, size_t n);
/* Marks commands delivered (those still pending) at `now`. */
int store_mark_delivered(struct store *s, char (*ids)[AEI_ID_MAX + 1], size_t n, int64_t now);

/* Closes the connection; store_close(NULL) is a no-op. */
void store_close(struct store *s);

/* Scopes the connection's later statements to one team's rows (team_id NULL or "": unscoped,
 * every row; the server's own work and admins). On PostgreSQL this is the session's row-level
 * security scope (migration 0008, docs/auth.md): a scoped statement sees and writes only that
 * team's agents, heartbeats, executions, decisions, commands, audit rows, tokens and users. It
 * is a second line behind the application's checks, not a replacement: SQLite has no such thing
 * and ignores it. Call it outside a transaction; a repeated scope costs nothing. AEI_EINVAL for
 * a team id longer than AEI_ID_MAX or a call inside a transaction. */
int store_set_scope(struct store *s, const char *team_id);
/* Runs what follows, until store_end_scoped(), in a read transaction scoped to one team, the
 * scope local to the transaction: a pooler in transaction mode (pgbouncer) keeps it with the
 * reads it governs and never hands it to another client's statements, as a session setting
 * could. A no-op (0) for team NULL or "" and on a store without row-level security. */
int store_begin_scoped(struct store *s, const char *team_id);
void store_end_scoped(struct store *s, const char *team_id);

/* SQL that both backends share. The columns every read returns, in this order, so that one row
 * reader serves all queries: agent_id, name, status, the five metrics, parent_agent_id,
 * child_agent_ids, labels, agent_ts, server time, first_seen, id, team_id, control. */
#define STORE_AGENT_COLUMNS                                                                        \
    "agent_id, name, status, cpu_pct, mem_pct, tokens_per_min, cost_usd, confidence, "             \
    "parent_agent_id, child_agent_ids, labels, agent_ts"
#define STORE_SELECT_AGENTS                                                                        \
    "SELECT " STORE_AGENT_COLUMNS ", last_heartbeat, first_seen, 0, team_id, control FROM agents "
#define STORE_SELECT_HEARTBEATS                                                                    \
    "SELECT " STORE_AGENT_COLUMNS ", server_ts, 0, id, '', 'active' FROM heartbeats "
/* The audit columns every audit read returns, in this order. */
#define STORE_AUDIT_COLUMNS                                                                        \
    "id, team_id, seq, ts, actor_type, actor_id, action_type, resource_id, context, prev_hash, "   \
    "immutable_hash"
/* Tokens with their user's role: token_id, hash, kind, team, user, agent, role, created,
 * revoked (0 while valid). */
#define STORE_SELECT_TOKENS                                                                        \
    "SELECT t.token_id, t.token_hash, t.kind, t.team_id, coalesce(t.user_id, ''), "                \
    "coalesce(t.agent_id, ''), coalesce(u.role, ''), t.created, coalesce(t.revoked, 0) "           \
    "FROM tokens t LEFT JOIN users u ON u.user_id = t.user_id "

/* Commands as every command read returns them: command_id, agent_id, team_id, action, params,
 * status, actor_type, actor_id, audit_id, created, delivered, acked (0 for not yet), result. */
#define STORE_SELECT_COMMANDS                                                                      \
    "SELECT command_id, agent_id, team_id, action, params, status, actor_type, actor_id, "         \
    "audit_id, created, coalesce(delivered, 0), coalesce(acked, 0), result FROM commands "
#define STORE_INSERT_COMMAND                                                                       \
    "INSERT INTO commands (command_id, agent_id, team_id, action, params, status, actor_type, "    \
    "actor_id, audit_id, created) "
/* Open commands are pending or delivered. */
#define STORE_COMMANDS_OPEN "status IN ('pending', 'delivered')"

/* A migration: a version number, a name, and the SQL that applies it. */
struct migration {
    int version;
    const char *name;
    const char *sql;
};

/* The migrations of each backend, ordered by version, ended by a zero entry (migrations.c is
 * generated from src/server/migrations/<backend>/NNNN_name.sql). */
extern const struct migration store_sqlite_migrations[];
extern const struct migration store_pg_migrations[];

#endif
