/* worker.h - storage threads: a group-committing writer and a reader, off the service loop */
#ifndef AEI_SERVER_WORKER_H
#define AEI_SERVER_WORKER_H

#include "server/retention.h"
#include "server/store.h"

enum job_kind {
    JOB_PUT_HEARTBEAT,
    JOB_PUT_DECISIONS,
    JOB_END_EXECUTION,
    JOB_LIST_AGENTS,
    JOB_GET_AGENT,
    JOB_LIST_HEARTBEATS,
    JOB_LIST_EXECUTIONS,
    JOB_GET_EXECUTION,
    JOB_LIST_DECISIONS,
    JOB_EXPORT_PAGE,
    JOB_LIST_ROLLUPS,
    JOB_RETENTION,
    JOB_LIST_AUDIT,       /* GET /api/v0/audit */
    JOB_VERIFY_AUDIT,     /* GET /api/v0/audit/verify */
    JOB_AUDIT_CHECKPOINT, /* the server's own: the chain heads to the checkpoint file */
    JOB_HEALTH,           /* GET /api/v0/debug/health: a store probe and the newest audit rows */
    JOB_PUT_COMMAND,      /* POST /api/v0/agents/{id}/{action} */
    JOB_ACK_COMMAND,      /* POST /api/v0/agents/{id}/commands/{command_id}/ack */
    JOB_LIST_COMMANDS,    /* GET /api/v0/agents/{id}/commands */
    JOB_MARK_DELIVERED,   /* the server's own: commands handed out */
};

struct export;
struct audit_job;

/* The inputs and outputs of the command jobs. */
struct command_job {
    struct command c;         /* the command (JOB_PUT_COMMAND), or as acknowledged */
    struct command_request r; /* JOB_PUT_COMMAND: what was asked */
    int control_before, control_after;
    enum command_status status;   /* JOB_ACK_COMMAND: how the agent says it went ... */
    char *result;                 /* ... with its result (compact JSON), or NULL; owned */
    struct audit_actor_ref actor; /* JOB_ACK_COMMAND (id points into actor_id) */
    char actor_id[AEI_ID_MAX + 1];
    struct command_query q;      /* JOB_LIST_COMMANDS (strings point into the job's arrays) */
    char (*ids)[AEI_ID_MAX + 1]; /* JOB_MARK_DELIVERED: the commands handed out (owned) */
    size_t n_ids;
    bool changed;       /* JOB_ACK_COMMAND: whether it was not acknowledged before */
    const uint8_t *key; /* the audit key (the server's) */
};

/* A unit of storage work. The loop thread fills the inputs and submits it; a worker runs it and
 * hands it back through the completion queue with the outputs set. */
struct job {
    struct job *next;
    enum job_kind kind;
    void *owner;                   /* the request waiting for this job; workers never touch it */
    struct heartbeat hb;           /* JOB_PUT_HEARTBEAT: the heartbeat to store */
    int64_t received_mono;         /* JOB_PUT_HEARTBEAT: when it arrived, for the latency metric */
    struct hb_query query;         /* JOB_LIST_HEARTBEATS (query.agent_id points into agent_id) */
    char agent_id[AEI_ID_MAX + 1]; /* JOB_GET_AGENT, JOB_LIST_HEARTBEATS */
    int rc;                        /* 0 or a negative AEI_E* code */
    int limit;                     /* JOB_LIST_AGENTS: page size or -1 for all; agent_id: after */
    char *body;                    /* read jobs: the JSON answer, built by the reader */
    struct decision **decisions;   /* JOB_PUT_DECISIONS: the decisions to store (owned) ... */
    size_t n_decisions;
    bool *stored;                 /* ... and, once done, which were new */
    struct exec_query exec_query; /* JOB_LIST_EXECUTIONS (its strings point into ids below) */
    struct decision_query decision_query; /* JOB_LIST_DECISIONS (likewise) */
    char ids[2][AEI_ID_MAX + 1];          /* agent_id / execution_id / parent filters */
    char cursor[TRACE_DEPTH_MAX * TRACE_KEY_LEN + TRACE_KEY_LEN + 1]; /* a page cursor */
    /* JOB_END_EXECUTION: ends execution ids[0] as `end` says; or, with ids[0] "", every running
     * execution of agent_id (which has died). */
    struct execution_end end;
    bool changed;                 /* ... and, once done, whether any was running */
    struct execution *executions; /* JOB_PUT_DECISIONS, JOB_END_EXECUTION: the executions */
    size_t n_executions;          /* touched, as they are after the commit, for the hub */
    struct export *export;        /* JOB_EXPORT_PAGE: the request's export (borrowed), next page */
    struct rollup_query rollup_query; /* JOB_LIST_ROLLUPS (agent_id points into agent_id) */
    struct retention_run *retention;  /* JOB_RETENTION: the run to step (not owned); rc is
                                         retention_step()'s */
    int64_t step_us;                  /* JOB_RETENTION: how long the step took */
    struct audit_job *audit;          /* the audit jobs' inputs (owned) */
    struct command_job *command;      /* the command jobs' (owned) */
    /* Whose request it is: the caller's team ("" for every team) and, for an agent, its id:
     * executions of other teams or agents are as good as absent (AEI_ENOTFOUND). */
    char scope_team[AEI_ID_MAX + 1];
    char scope_agent[AEI_ID_MAX + 1];
    /* JOB_PUT_DECISIONS: the sender's team, which a new execution takes while its agent is not
     * registered; and, once refused with AEI_ENOTFOUND or AEI_ECONFLICT, the index of the
     * decision refused (its execution in ids[0], the agent that execution belongs to in ids[1]). */
    char sender_team[AEI_ID_MAX + 1];
    long refused;
};

struct workers;

/* Opens one store connection per thread and starts the writer and reader, and on a store whose
 * connections write side by side (PostgreSQL) a retention thread; on SQLite retention steps go
 * to the writer, between heartbeat batches. `notify(arg)` is
 * called from a worker thread whenever jobs complete (it must be thread-safe, such as
 * lws_cancel_service()). Returns NULL with a reason in err. */
struct workers *workers_start(const char *db_url, void (*notify)(void *), void *arg, char *err,
                              size_t errlen);
/* Queues a job; never blocks on storage. Takes ownership of job until it comes back. */
void workers_submit(struct workers *w, struct job *job);
/* Returns the completed jobs (a list through ->next, in completion order) and empties the
 * completion queue. Caller owns them and frees each with job_free(). */
struct job *workers_take_done(struct workers *w);
/* Finishes every queued job, stops the threads, closes the stores and frees w. Returns the
 * completed jobs not yet taken, as workers_take_done() would. NULL is a no-op. */
struct job *workers_stop(struct workers *w);
/* Frees a job and what it holds; NULL is a no-op. */
void job_free(struct job *job);

#endif
