/* aei/agent.h - libaei: report an AI agent to an AEI server (heartbeats, decision traces).
 *
 * The C twin of sdk/python/aei_agent.py; the right thing is the default:
 *
 *  - a background thread sends a heartbeat every `heartbeat_interval_s` seconds with the status
 *    and metrics set by aei_agent_set_status() / aei_agent_set_metric();
 *  - aei_trace_emit() only queues a decision, with a decision_id (UUID v4) made here so that a
 *    retried batch stores nothing twice (the server treats a known decision_id as a duplicate);
 *    a second background thread sends the queue in batches of up to `batch_size` to
 *    POST /api/v0/traces;
 *  - every request is retried on connection errors, timeouts, 5xx and 429 with exponential
 *    backoff and full jitter: the n-th retry (n from 0) waits a random time in
 *    [0, min(retry_cap_s, retry_base_s * 2^n)], or exactly what a numeric `Retry-After` says
 *    (at most 10 * retry_cap_s). Other 4xx answers are not retried; they are returned as
 *    AEI_EREFUSED with the server's error in a struct aei_error, or, for batches sent in the
 *    background, counted in `refused` and logged;
 *  - the queue is bounded (`queue_limit`, counting decisions being sent): when it is full a new
 *    decision is dropped, counted in aei_agent_stats().dropped and logged (at most every 5 s) -
 *    never silently;
 *  - commands found in heartbeat answers are passed to `on_command`, each once (keyed by
 *    command_id), then acknowledged with POST /api/v0/agents/{id}/commands/{command_id}/ack
 *    carrying the status and result the callback answered. The acknowledgement is retried like
 *    any request (at most max_attempts, 5 when that is 0, so that heartbeats go on); aeid hands
 *    a command out until it is acknowledged, so one whose acknowledgement was lost is
 *    acknowledged again - with the same status, which aeid accepts - and not handled again;
 *  - pause, resume and terminate are obeyed by default, before the callback sees them:
 *    aei_agent_is_paused() and aei_agent_is_terminated() say where the agent stands, and
 *    aei_agent_wait_if_paused(), called between steps of the agent's work, blocks while it is
 *    paused.
 *
 * Thread safety: every function may be called from any thread, except that aei_agent_free()
 * must be the last call on an agent. Callbacks run on libaei's threads (or on the thread that
 * called aei_agent_start()); they must not call aei_agent_stop() or aei_agent_free().
 *
 *     struct aei_agent_config cfg = aei_agent_config_default();
 *     cfg.server = "127.0.0.1:3000"; cfg.token = token; cfg.agent_id = "researcher-1";
 *     struct aei_error err;
 *     struct aei_agent *a = aei_agent_new(&cfg, &err);
 *     if (!a || aei_agent_start(a, &err) != AEI_OK) { fprintf(stderr, "%s\n", err.message); ... }
 *     aei_agent_set_status(a, "processing");
 *     aei_agent_set_metric(a, "cpu_pct", 42.5);
 *     char id[AEI_ID_LEN];
 *     struct aei_decision d = AEI_DECISION_INIT; // unknown numbers unset: sent as absent, not 0
 *     d.execution_id = "run-42";
 *     d.reasoning = "the index is fresher";
 *     d.outcome = "search the index";
 *     d.confidence = 82;
 *     aei_trace_emit(a, &d, id);
 *     aei_execution_end(a, "run-42", "completed", NULL, &err);
 *     aei_agent_stop(a, 10);   // sends what is queued, for up to 10 s
 *     aei_agent_free(a);
 *
 * Link with `pkg-config --cflags --libs libaei`. The wire protocol is docs/api/openapi.yaml.
 */
#ifndef AEI_AGENT_H
#define AEI_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes: 0 is success, negative values say what went wrong. */
enum aei_result {
    AEI_OK = 0,
    AEI_EINVAL = -1,       /* a bad argument; struct aei_error.message names it */
    AEI_EREFUSED = -2,     /* the server answered 4xx (not 429): not retried */
    AEI_EUNREACHABLE = -3, /* retries gave up (max_attempts, or stopping) */
    AEI_ENOMEM = -4,
    AEI_ETIMEOUT = -5, /* flush or stop ran out of time with decisions unsent */
    AEI_EFULL = -6,    /* the queue was full: the decision was dropped (and counted) */
};

/* What went wrong, filled by the functions that take one (it may be NULL). */
struct aei_error {
    int http_status;   /* 0 when no answer was received */
    char code[64];     /* the server's error.code, or a libaei code ("invalid_argument", ...) */
    char field[64];    /* the member at fault when the server names one, else "" */
    char message[512]; /* for humans */
};

enum aei_log_level { AEI_LOG_DEBUG, AEI_LOG_INFO, AEI_LOG_WARNING, AEI_LOG_ERROR };

/* How a command went, as acknowledged to the server: carried out, tried and failed, or refused
 * (an execute the agent cannot take, say). */
enum aei_command_status { AEI_COMMAND_SUCCEEDED, AEI_COMMAND_FAILED, AEI_COMMAND_REJECTED };

/* The size of the buffer on_command may write its result into: the largest result aeid keeps
 * (16 KiB of JSON) and the NUL. */
#define AEI_RESULT_MAX 16385

struct aei_agent_config {
    const char *server;          /* "HOST:PORT" or "http://HOST:PORT" (required) */
    const char *token;           /* the bearer token (required) */
    const char *agent_id;        /* required */
    const char *name;            /* the display name, or NULL */
    const char *parent_agent_id; /* or NULL */

    double heartbeat_interval_s; /* default 5 */
    size_t batch_size;           /* decisions per POST /api/v0/traces, 1..1000, default 100 */
    double flush_interval_s;     /* the longest a decision waits for a fuller batch, default 0.2 */
    size_t queue_limit;          /* decisions held at most, default 10000 */
    double timeout_s;            /* per request, default 5 */
    double retry_base_s;         /* default 0.1 */
    double retry_cap_s;          /* default 10 */
    /* Per request, 0 (default) for no limit. Background batches that give up stay queued and
     * are tried again; but with no limit, aei_execution_end() and aei_agent_heartbeat() wait
     * for as long as the server is away, so an agent that must not block sets one. */
    int max_attempts;

    /* Called with each command's JSON object ({"command_id","action","params","created"}),
     * once per command_id, on the heartbeat's thread, after libaei took note of pause, resume
     * and terminate. Returns how the command went; it may write the acknowledgement's result,
     * a JSON value such as {"execution_id":"run-42"}, into result_json (result_size is
     * AEI_RESULT_MAX; it holds "" for no result). aeid keeps no real numbers in a result: write
     * fractions as strings. A result that is not JSON is left out (and logged). NULL
     * acknowledges every command as succeeded with no result. */
    enum aei_command_status (*on_command)(const char *command_json, char *result_json,
                                          size_t result_size, void *user);
    /* Called for what libaei has to say (retries, drops, refusals); NULL logs warnings and
     * errors to stderr. */
    void (*on_log)(enum aei_log_level level, const char *message, void *user);
    /* Called when the server refuses something sent in the background (a 4xx batch or
     * heartbeat). */
    void (*on_error)(const struct aei_error *error, void *user);

    /* Injectable for tests: a monotonic clock in seconds, a sleep used between retries, and a
     * uniform random number in [0, 1) for the jitter. NULL uses the real ones. */
    double (*now)(void *user);
    void (*sleep)(double seconds, void *user);
    double (*random)(void *user);

    void *user; /* passed to every callback */
};

/* The defaults above, with no server, token or agent. */
struct aei_agent_config aei_agent_config_default(void);

struct aei_agent;

/* Checks the configuration and copies it (strings included); no network yet. NULL on a bad
 * configuration (err says which member) or no memory. */
struct aei_agent *aei_agent_new(const struct aei_agent_config *config, struct aei_error *err);

/* Sends a first heartbeat at once and starts the two background threads. A refused heartbeat
 * (a bad token: 401 invalid_token) returns AEI_EREFUSED and starts nothing; a server that
 * cannot be reached is only logged, and the heartbeat thread keeps trying. */
int aei_agent_start(struct aei_agent *agent, struct aei_error *err);

/* Stops the threads after sending what is queued, giving up after timeout_s seconds.
 * AEI_OK when nothing was left unsent, else AEI_ETIMEOUT (the rest is logged). */
int aei_agent_stop(struct aei_agent *agent, double timeout_s);

/* Stops the agent if needed (with a 10 s timeout) and frees it. */
void aei_agent_free(struct aei_agent *agent);

/* idle, processing, waiting, error or complete; AEI_EINVAL otherwise. */
int aei_agent_set_status(struct aei_agent *agent, const char *status);

/* cpu_pct, mem_pct, confidence (0-100), tokens_per_min, cost_usd (cumulative); AEI_EINVAL for
 * another name. Sent with every heartbeat from now on. */
int aei_agent_set_metric(struct aei_agent *agent, const char *name, double value);

/* Sends one heartbeat now, on the calling thread, retried like any request. */
int aei_agent_heartbeat(struct aei_agent *agent, struct aei_error *err);

#define AEI_ID_LEN 37    /* a UUID's 36 characters and the NUL */
#define AEI_UNSET (-1.0) /* for an optional number in struct aei_decision */

struct aei_alternative {
    const char *option;
    const char *reason_rejected;
    double score; /* AEI_UNSET (or any negative value) for none */
};

/* One decision. Strings may be NULL (left out); numbers below 0 are left out, so set the ones
 * you do not have to AEI_UNSET (zero is sent as 0). */
struct aei_decision {
    const char *execution_id;       /* required */
    const char *parent_decision_id; /* NULL for a root */
    const char *reasoning;          /* reasoning_context, as text */
    const char *reasoning_json;     /* or as a JSON value (wins over reasoning when valid) */
    double confidence;              /* confidence_score, 0-100 */
    const struct aei_alternative *alternatives;
    size_t n_alternatives;
    const char *outcome; /* selected_outcome */
    const char *kind;
    double duration_ms, tokens, cost_usd;
    const char *decision_id; /* NULL to have one made here */
};

/* A decision with no execution_id yet and every optional number AEI_UNSET: start from it and
 * set what you know (`struct aei_decision d = AEI_DECISION_INIT; d.execution_id = ...;`). A
 * designated initializer of your own zero-fills the numbers it does not name, and a zero is
 * stored as a real 0, not as unknown. */
#define AEI_DECISION_INIT                                                                          \
    {                                                                                              \
        .confidence = AEI_UNSET, .duration_ms = AEI_UNSET, .tokens = AEI_UNSET,                    \
        .cost_usd = AEI_UNSET                                                                      \
    }

/* Queues one decision and writes its decision_id to id_out (AEI_ID_LEN bytes; may be NULL).
 * Never blocks on the network. AEI_EFULL when the queue is full (the decision is dropped,
 * counted and logged). AEI_EINVAL, logged naming the member, for a decision the server would
 * refuse: ids (execution_id, decision_id of at most AEI_ID_LEN - 1 characters,
 * parent_decision_id) of characters from A-Z a-z 0-9 . _ : -, confidence above 100, amounts
 * above 1e15, NaN, a kind, outcome, reasoning or alternatives beyond aeid's limits. Such a
 * decision is not queued, as the server refuses a batch whole and it would take the others
 * sent with it down too. */
int aei_trace_emit(struct aei_agent *agent, const struct aei_decision *decision, char *id_out);

/* Waits until every queued decision is acknowledged: AEI_OK, or AEI_ETIMEOUT after timeout_s. */
int aei_agent_flush(struct aei_agent *agent, double timeout_s);

/* Ends an execution (status completed, failed or abandoned; failure_json a JSON value or NULL)
 * after sending its queued decisions, via PATCH /api/v0/executions/{id}. Retried like any
 * request; AEI_EREFUSED with err filled for 4xx (404 for an unknown execution). */
int aei_execution_end(struct aei_agent *agent, const char *execution_id, const char *status,
                      const char *failure_json, struct aei_error *err);

struct aei_stats {
    uint64_t heartbeats;         /* heartbeats the server accepted */
    uint64_t heartbeat_failures; /* background heartbeats that failed (refused or gave up) */
    uint64_t decisions_sent;     /* decisions the server stored */
    uint64_t duplicates;         /* decisions the server already had (a retried batch) */
    uint64_t batches;            /* batches accepted */
    uint64_t retries;            /* requests retried (waits taken) */
    uint64_t dropped;            /* decisions dropped because the queue was full */
    uint64_t refused;            /* decisions in batches the server refused (4xx) */
    uint64_t queued;             /* decisions waiting or being sent now */
    uint64_t commands;           /* commands passed to on_command */
    uint64_t acks;               /* acknowledgements the server accepted */
    uint64_t ack_failures;       /* acknowledgements refused or given up (sent again when the
                                    server hands the command out again) */
};

void aei_agent_stats(struct aei_agent *agent, struct aei_stats *out);

/* Whether a pause command arrived and no resume or terminate since. */
bool aei_agent_is_paused(struct aei_agent *agent);

/* Whether a terminate command arrived and no resume since: the agent should end its work. */
bool aei_agent_is_terminated(struct aei_agent *agent);

/* Blocks while the agent is paused, for up to timeout_s seconds (a negative timeout: no
 * limit). Returns false when the agent is terminated or stopping - its work should end - and
 * true otherwise (also when the time ran out while still paused: check aei_agent_is_paused()). */
bool aei_agent_wait_if_paused(struct aei_agent *agent, double timeout_s);

/* A UUID v4 from the system's random source (getrandom), AEI_ID_LEN bytes with the NUL. */
void aei_uuid4(char out[AEI_ID_LEN]);

#ifdef __cplusplus
}
#endif
#endif
