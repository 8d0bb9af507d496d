/* trace.h - decision traces: the schema of a decision and an execution, and their validation */
#ifndef AEI_SERVER_TRACE_H
#define AEI_SERVER_TRACE_H

#include "common/json.h"
#include "server/heartbeat.h"

#include <stdbool.h>
#include <stdint.h>

/* The most decisions in one POST /api/v0/traces. */
#define TRACE_BATCH_MAX 1000
/* reasoning_context, as compact JSON text, at most this many bytes. */
#define TRACE_CONTEXT_MAX 16384
#define TRACE_ALTERNATIVES_MAX 64
#define TRACE_TEXT_MAX 4096 /* option, reason_rejected, selected_outcome: characters */
#define TRACE_KIND_MAX 64
/* The deepest a decision may sit in its execution's tree (a root is at depth 0). */
#define TRACE_DEPTH_MAX 255
/* A decision's key in its tree path: its store id as this many hex digits. */
#define TRACE_KEY_LEN 16

enum execution_status {
    EXEC_RUNNING,
    EXEC_COMPLETED,
    EXEC_FAILED,
    EXEC_ABANDONED,
    EXEC_STATUS_COUNT
};
extern const char *const execution_status_names[EXEC_STATUS_COUNT];

/* One decision as received, or as stored. Strings are owned; ids use the agent id alphabet
 * (id_is_valid()), so a UUID fits. */
struct decision {
    int64_t id; /* store row id, 0 before storing */
    char decision_id[AEI_ID_MAX + 1];
    char execution_id[AEI_ID_MAX + 1];
    char agent_id[AEI_ID_MAX + 1];
    char parent_id[AEI_ID_MAX + 1]; /* parent_decision_id, "" for a root */
    int64_t server_ts;              /* server clock, microseconds */
    int64_t agent_ts;               /* the agent's clock, if has_agent_ts */
    bool has_agent_ts;
    char *context_json; /* reasoning_context as compact JSON (a string or an object), or NULL */
    double confidence;  /* confidence_score, 0-100, if has_confidence */
    bool has_confidence;
    char *alternatives_json; /* compact JSON array of {option, reason_rejected[, score]}, "[]" */
    char *outcome;           /* selected_outcome, or NULL */
    char *kind;              /* e.g. "llm_call", or NULL */
    char *labels_json;       /* compact JSON object of string to string, "{}" when none */
    double duration_ms, tokens, cost_usd;
    bool has_duration, has_tokens, has_cost;
    /* Set by reads: where it sits in the tree. path is the keys (TRACE_KEY_LEN hex digits each)
     * from its root down to it, NULL while its parent has not arrived; depth is 0 for a root and
     * -1 while the parent has not arrived. Pre-order is ascending path. */
    char *path;
    int depth;
};

/* An execution: the decisions of one run of an agent, with figures kept as decisions arrive. */
struct execution {
    char execution_id[AEI_ID_MAX + 1];
    char agent_id[AEI_ID_MAX + 1]; /* the agent of its first decision */
    enum execution_status status;
    int64_t started, ended; /* server times of its first decision, and of its end (0 if none) */
    int64_t decisions;      /* decisions stored */
    int64_t confidence_n;   /* of which with a confidence_score ... */
    double confidence_sum;  /* ... adding up to this */
    double cost_usd;        /* the decisions' cost_usd added up */
    int64_t pending;        /* decisions whose parent has not arrived */
    char *failure_json;     /* why it failed or was abandoned (compact JSON), or NULL; owned */
    char team_id[AEI_ID_MAX + 1]; /* its agent's team */
};

/* Validates one decision of a request (index `i` of a batch, or -1 for a lone one) and fills
 * *d; server_ts is left 0 for the caller to stamp, and a missing decision_id is left "" for the
 * caller to assign. Returns 0, or AEI_EINVAL with *pb naming the field ("[3].confidence_score").
 * On success the caller releases d with decision_clear(). */
int decision_from_json(const json_t *v, long i, struct decision *d, struct problem *pb);

/* The fast path of a POST /api/v0/traces body (trace_fast.c): parses one decision object or an
 * array of 1 to TRACE_BATCH_MAX of them, all valid, into *out (n of them, each as
 * decision_from_json() would fill it). Returns AEI_EINVAL, nothing allocated, for anything else:
 * then decision_from_json() on the parsed body decides and words the errors. The caller frees
 * each decision with decision_clear() and free(), and the array with free(). */
int decisions_parse_fast(const char *body, size_t len, struct decision ***out, size_t *n);

/* Appends the JSON of a stored decision: its depth when it has a place in the tree, else
 * "depth": null when null_depth, else no depth. */
void decision_write(struct buf *out, const struct decision *d, bool null_depth);
/* Returns the JSON of an execution's summary. Caller releases with json_decref(). */
json_t *execution_to_json(const struct execution *e);

/* The body of PATCH /api/v0/executions/{id}: how an execution ended. */
struct execution_end {
    enum execution_status status; /* completed, failed or abandoned */
    char *failure_json;           /* the "failure" member as compact JSON, or NULL; owned */
};
/* Validates the body of PATCH /api/v0/executions/{id} into *end: {"status": "completed" |
 * "failed" | "abandoned", "failure": a string or an object (optional)}. Returns 0, or AEI_EINVAL
 * with *pb naming the field. On success the caller frees end->failure_json. */
int execution_end_from_json(const json_t *v, struct execution_end *end, struct problem *pb);

/* Answer bodies, built by the reader thread. Each returns a string the caller frees with
 * free(). `n` rows were read for a page of `limit` (n > limit means there is a next page). */
char *trace_render_executions(const struct execution *rows, size_t n, int limit);
char *trace_render_execution(const struct execution *e);
char *trace_render_decisions(const struct decision *rows, size_t n, int limit);

/* Frees the strings d owns and zeroes it; safe on a zeroed struct. */
void decision_clear(struct decision *d);
/* Frees what e owns and zeroes it; safe on a zeroed struct. */
void execution_clear(struct execution *e);

#endif
