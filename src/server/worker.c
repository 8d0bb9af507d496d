/* worker.c - storage threads: a group-committing writer, a reader and (PostgreSQL) trace writers,
 * off the service loop */
#define _GNU_SOURCE /* pthread_setname_np */
#include "server/worker.h"
#include "aei/error.h"
#include "common/log.h"
#include "common/time.h"
#include "server/audit_api.h"
#include "server/export.h"
#include "server/health.h"
#include "server/metrics.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

/* The most heartbeats committed in one transaction. */
#define BATCH_MAX 1024
/* On PostgreSQL, decision batches are written by threads of their own, each on its own
 * connection: the store runs them side by side (a batch takes about 4 ms of server time), and
 * heartbeats never wait behind them. SQLite has one writer at a time, so there the writer
 * thread takes them too. */
#define TRACE_WRITERS 2

struct queue {
    pthread_mutex_t lock;
    pthread_cond_t ready;
    struct job *head, *tail;
    bool stopping;
};

struct worker {
    struct workers *owner;
    struct store *store;
    struct queue in;
    pthread_t thread;
    bool started;
};

struct workers {
    struct worker writer, reader;
    struct worker trace_writers[TRACE_WRITERS]; /* PostgreSQL only */
    size_t n_trace_writers;
    size_t next_trace_writer; /* round robin; loop thread only */
    struct worker retention;  /* started only when the store's writers run side by side */
    pthread_mutex_t done_lock;
    struct job *done_head, *done_tail;
    void (*notify)(void *);
    void *notify_arg;
};

static void queue_push(struct queue *q, struct job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->tail)
        q->tail->next = job;
    else
        q->head = job;
    q->tail = job;
    pthread_cond_signal(&q->ready);
    pthread_mutex_unlock(&q->lock);
}

/* Waits for work and takes up to max jobs; returns NULL once stopping and empty. */
static struct job *queue_take(struct queue *q, size_t max)
{
    pthread_mutex_lock(&q->lock);
    while (!q->head && !q->stopping)
        pthread_cond_wait(&q->ready, &q->lock);
    struct job *first = q->head, *last = q->head;
    for (size_t n = 1; last && n < max && last->next; n++)
        last = last->next;
    if (last) {
        q->head = last->next;
        if (!q->head)
            q->tail = NULL;
        last->next = NULL;
    }
    pthread_mutex_unlock(&q->lock);
    return first;
}

/* Hands a list of finished jobs back to the loop thread. */
static void complete(struct workers *w, struct job *first)
{
    struct job *last = first;
    while (last->next)
        last = last->next;
    pthread_mutex_lock(&w->done_lock);
    if (w->done_tail)
        w->done_tail->next = first;
    else
        w->done_head = first;
    w->done_tail = last;
    pthread_mutex_unlock(&w->done_lock);
    w->notify(w->notify_arg);
}

/* Reads the executions of a stored batch of decisions, each once, for the hub to publish. A
 * failed read leaves one out: the decisions are stored all the same. */
static void read_executions(struct store *store, struct job *j)
{
    j->executions = calloc(j->n_decisions, sizeof(*j->executions));
    if (!j->executions)
        abort();
    for (size_t i = 0; i < j->n_decisions; i++) {
        const char *id = j->decisions[i]->execution_id;
        bool seen = false;
        for (size_t k = 0; k < j->n_executions && !seen; k++)
            seen = strcmp(j->executions[k].execution_id, id) == 0;
        if (!seen && store_get_execution(store, id, &j->executions[j->n_executions]) == 0)
            j->n_executions++;
    }
}

/* Whether the job's caller may see an execution: one of its team, and its own when an agent. */
static bool in_scope(const struct job *j, const struct execution *e)
{
    return (!j->scope_team[0] || strcmp(j->scope_team, e->team_id) == 0) &&
           (!j->scope_agent[0] || strcmp(j->scope_agent, e->agent_id) == 0);
}

/* Reads the execution of ids[0] into *e when the job's caller may see it, else AEI_ENOTFOUND. */
static int get_execution_in_scope(struct store *store, const struct job *j, struct execution *e)
{
    int rc = store_get_execution(store, j->ids[0], e);
    if (rc == 0 && !in_scope(j, e))
        rc = AEI_ENOTFOUND;
    return rc;
}

/* Ends one execution, or every running execution of a dead agent as abandoned. */
static int end_executions(struct store *store, struct job *j)
{
    int64_t now = aei_now_us();
    if (j->ids[0][0] && (j->scope_team[0] || j->scope_agent[0])) {
        struct execution e = {0};
        int rc = get_execution_in_scope(store, j, &e);
        execution_clear(&e);
        if (rc)
            return rc;
    }
    if (j->ids[0][0]) {
        j->executions = calloc(1, sizeof(*j->executions));
        if (!j->executions)
            abort();
        int rc = store_end_execution(store, j->ids[0], j->end.status, now, j->end.failure_json,
                                     j->executions, &j->changed);
        j->n_executions = rc == 0;
        return rc;
    }
    struct exec_query q = {.agent_id = j->agent_id, .status = EXEC_RUNNING, .limit = -1};
    struct execution *running;
    size_t n;
    int rc = store_list_executions(store, &q, &running, &n);
    if (rc)
        return rc;
    j->executions = calloc(n ? n : 1, sizeof(*j->executions));
    if (!j->executions)
        abort();
    for (size_t i = 0; i < n && rc == 0; i++) {
        bool changed;
        rc = store_end_execution(store, running[i].execution_id, EXEC_ABANDONED, now,
                                 j->end.failure_json, &j->executions[j->n_executions], &changed);
        if (rc == 0 && changed) {
            j->n_executions++;
            j->changed = true;
        } else if (rc == 0) {
            execution_clear(&j->executions[j->n_executions]);
        }
    }
    store_free_executions(running, n);
    return rc;
}

/* The batch of a JOB_PUT_DECISIONS, confined to the executions its sender may add to. */
static struct decision_batch batch_of(const struct job *j)
{
    return (struct decision_batch){.ds = j->decisions,
                                   .n = j->n_decisions,
                                   .stored = j->stored,
                                   .team = j->sender_team[0] ? j->sender_team : NULL,
                                   .scope_team = j->scope_team[0] ? j->scope_team : NULL,
                                   .scope_agent = j->scope_agent[0] ? j->scope_agent : NULL};
}

/* Takes a stored batch's outcome into its job: a refused decision's execution goes to ids[0] and
 * the agent that execution belongs to (a conflict only) to ids[1], for the answer. */
static void batch_done(struct store *store, struct job *j, const struct decision_batch *b)
{
    j->rc = b->rc;
    if (j->rc == 0) {
        read_executions(store, j);
    } else if ((j->rc == AEI_ENOTFOUND || j->rc == AEI_ECONFLICT) && b->refused >= 0 &&
               (size_t)b->refused < j->n_decisions) {
        j->refused = b->refused;
        snprintf(j->ids[0], sizeof(j->ids[0]), "%s", j->decisions[b->refused]->execution_id);
        snprintf(j->ids[1], sizeof(j->ids[1]), "%s", b->owner);
    }
}

/* Runs a write of decision traces. A request's decisions are one transaction of their own: all
 * or none. */
static void run_trace_write(struct store *store, struct job *j)
{
    if (j->kind == JOB_PUT_DECISIONS) {
        struct decision_batch b = batch_of(j);
        store_put_decision_batch(store, &b);
        batch_done(store, j, &b);
    } else if (j->kind == JOB_END_EXECUTION) {
        j->rc = end_executions(store, j);
    }
}

/* Stores the decision batches among jobs with one commit (each still all or none). */
static void put_decision_jobs(struct store *store, struct job *jobs)
{
    size_t n = 0, k = 0;
    for (struct job *j = jobs; j; j = j->next)
        n += j->kind == JOB_PUT_DECISIONS;
    if (n == 0)
        return;
    struct decision_batch *b = calloc(n, sizeof(*b));
    if (!b)
        abort();
    for (struct job *j = jobs; j; j = j->next)
        if (j->kind == JOB_PUT_DECISIONS)
            b[k++] = batch_of(j);
    store_put_decision_batches(store, b, n);
    k = 0;
    for (struct job *j = jobs; j; j = j->next)
        if (j->kind == JOB_PUT_DECISIONS)
            batch_done(store, j, &b[k++]);
    free(b);
}

static void *trace_writer_main(void *arg)
{
    struct worker *self = arg;
    struct job *j;
    while ((j = queue_take(&self->in, 1))) {
        run_trace_write(self->store, j);
        complete(self->owner, j);
    }
    return NULL;
}

static void run_retention(struct store *store, struct job *j)
{
    int64_t start = aei_mono_us();
    j->rc = retention_step(store, j->retention);
    j->step_us = aei_mono_us() - start;
    metrics_observe_retention_step((double)j->step_us / 1e6);
}

/* Records the commands among jobs with one commit, each with its audit row. */
static void put_command_jobs(struct store *store, struct job *jobs)
{
    size_t n = 0, k = 0;
    for (struct job *j = jobs; j; j = j->next)
        n += j->kind == JOB_PUT_COMMAND;
    if (n == 0)
        return;
    struct command_put *p = calloc(n, sizeof(*p));
    if (!p)
        abort();
    const uint8_t *key = NULL;
    for (struct job *j = jobs; j; j = j->next) {
        if (j->kind != JOB_PUT_COMMAND)
            continue;
        struct command_job *cj = j->command;
        key = cj->key;
        p[k++] = (struct command_put){.c = &cj->c,
                                      .reason = cj->r.reason,
                                      .control_before = cj->control_before,
                                      .control_after = cj->control_after};
    }
    int rc = store_put_commands(store, key, p, n);
    k = 0;
    for (struct job *j = jobs; j; j = j->next) {
        if (j->kind != JOB_PUT_COMMAND)
            continue;
        j->rc = rc ? rc : p[k].rc;
        audit_row_clear(&p[k++].audit);
    }
    free(p);
}

/* Runs the writer's one-off command jobs: acknowledgements and deliveries. */
static void run_command_write(struct store *store, struct job *j)
{
    struct command_job *cj = j->command;
    if (j->kind == JOB_ACK_COMMAND) {
        cj->actor.id = cj->actor_id;
        j->rc = store_ack_command(store, cj->key, &cj->actor, j->agent_id, j->ids[0], cj->status,
                                  cj->result, aei_now_us(), &cj->c, &cj->changed);
    } else if (j->kind == JOB_MARK_DELIVERED) {
        j->rc = store_mark_delivered(store, cj->ids, cj->n_ids, aei_now_us());
    }
}

/* Group commit: whatever queued while the last transaction ran goes into the next one. */
static void *writer_main(void *arg)
{
    struct worker *self = arg;
    struct heartbeat *hbs[BATCH_MAX];
    struct job *batch;
    while ((batch = queue_take(&self->in, BATCH_MAX))) {
        size_t n = 0;
        for (struct job *j = batch; j; j = j->next)
            if (j->kind == JOB_PUT_HEARTBEAT)
                hbs[n++] = &j->hb;
        int rc = n ? store_put_heartbeats(self->store, hbs, n) : 0;
        for (struct job *j = batch; j; j = j->next)
            if (j->kind == JOB_PUT_HEARTBEAT)
                j->rc = rc;
        /* A batch refused for what is in it (not for the store being away) is tried again one
         * heartbeat at a time, so that one bad row fails only its own request. */
        if (rc == AEI_EIO && n > 1)
            for (struct job *j = batch; j; j = j->next)
                if (j->kind == JOB_PUT_HEARTBEAT)
                    j->rc = store_put_heartbeats(self->store, (struct heartbeat *[]){&j->hb}, 1);
        put_decision_jobs(self->store, batch);
        for (struct job *j = batch; j; j = j->next)
            if (j->kind == JOB_END_EXECUTION)
                run_trace_write(self->store, j);
        put_command_jobs(self->store, batch);
        for (struct job *j = batch; j; j = j->next)
            if (j->kind == JOB_ACK_COMMAND || j->kind == JOB_MARK_DELIVERED)
                run_command_write(self->store, j);
        /* Retention goes one short step at a time, after the batch's heartbeats, so that
         * ingest never waits for more than one step. */
        for (struct job *j = batch; j; j = j->next)
            if (j->kind == JOB_RETENTION)
                run_retention(self->store, j);
        int64_t now = aei_mono_us();
        for (struct job *j = batch; j; j = j->next)
            if (j->rc == 0 && j->kind == JOB_PUT_HEARTBEAT)
                metrics_observe_commit((double)(now - j->received_mono) / 1e6);
        if (n)
            metrics_observe_batch(n, rc == 0);
        complete(self->owner, batch);
    }
    return NULL;
}

/* Runs a query and builds its JSON answer here, so that the loop thread only sends it. */
static void run_read(struct store *store, struct job *j)
{
    struct heartbeat agent, *rows;
    size_t n;
    switch (j->kind) {
    case JOB_LIST_AGENTS:
        /* One row more than the page tells whether there is a next page. */
        j->rc = store_list_team_agents(store, j->agent_id, j->limit < 0 ? -1 : j->limit + 1,
                                       j->scope_team[0] ? j->scope_team : NULL, &rows, &n);
        if (j->rc == 0) {
            j->body = hb_render_agents(rows, n, j->limit);
            store_free_rows(rows, n);
        }
        break;
    case JOB_GET_AGENT:
        j->rc = store_get_agent(store, j->agent_id, &agent);
        if (j->rc == 0) {
            j->body = hb_render_agent(&agent);
            hb_clear(&agent);
        }
        break;
    case JOB_LIST_HEARTBEATS:
        /* The agent must exist for its history to be asked for. */
        j->query.agent_id = j->agent_id;
        j->rc = store_get_agent(store, j->agent_id, &agent);
        if (j->rc == 0) {
            hb_clear(&agent);
            j->query.limit++;
            j->rc = store_list_heartbeats(store, &j->query, &rows, &n);
            j->query.limit--;
        }
        if (j->rc == 0) {
            j->body = hb_render_history(rows, n, j->query.limit);
            store_free_rows(rows, n);
        }
        break;
    case JOB_LIST_EXECUTIONS: {
        struct execution *ex;
        j->exec_query.limit++;
        j->rc = store_list_executions(store, &j->exec_query, &ex, &n);
        j->exec_query.limit--;
        if (j->rc == 0) {
            j->body = trace_render_executions(ex, n, j->exec_query.limit);
            store_free_executions(ex, n);
        }
        break;
    }
    case JOB_GET_EXECUTION: {
        struct execution e = {0};
        j->rc = get_execution_in_scope(store, j, &e);
        if (j->rc == 0)
            j->body = trace_render_execution(&e);
        execution_clear(&e);
        break;
    }
    case JOB_LIST_DECISIONS: {
        /* The execution must exist for its decisions to be asked for. */
        struct execution e = {0};
        struct decision *ds;
        j->rc = get_execution_in_scope(store, j, &e);
        execution_clear(&e);
        if (j->rc == 0) {
            j->decision_query.limit++;
            j->rc = store_list_decisions(store, &j->decision_query, &ds, &n);
            j->decision_query.limit--;
        }
        if (j->rc == 0) {
            j->body = trace_render_decisions(ds, n, j->decision_query.limit);
            store_free_decisions(ds, n);
        }
        break;
    }
    case JOB_LIST_ROLLUPS: {
        /* The agent must exist for its rollups to be asked for. */
        struct rollup *ru;
        j->rollup_query.agent_id = j->agent_id;
        j->rc = store_get_agent(store, j->agent_id, &agent);
        if (j->rc == 0) {
            hb_clear(&agent);
            j->rollup_query.limit++;
            j->rc = store_list_rollups(store, &j->rollup_query, &ru, &n);
            j->rollup_query.limit--;
        }
        if (j->rc == 0) {
            j->body = retention_render_rollups(j->agent_id, ru, n, j->rollup_query.limit);
            free(ru);
        }
        break;
    }
    case JOB_EXPORT_PAGE:
        j->rc = export_next_page(store, j->export);
        break;
    case JOB_LIST_AUDIT:
        j->rc = audit_api_page(store, j->audit, &j->body);
        break;
    case JOB_VERIFY_AUDIT:
        j->rc = audit_api_verify(store, j->audit, &j->body);
        break;
    case JOB_AUDIT_CHECKPOINT:
        j->rc = audit_api_checkpoint(store, j->audit->state);
        break;
    case JOB_HEALTH:
        j->rc = health_probe(store, j->audit, &j->body);
        break;
    case JOB_LIST_COMMANDS: {
        struct command *cs;
        struct command_query *q = &j->command->q;
        q->limit++;
        j->rc = store_list_commands(store, q, &cs, &n);
        q->limit--;
        if (j->rc == 0) {
            j->body = command_render_page(cs, n, q->limit);
            store_free_commands(cs, n);
        }
        break;
    }
    case JOB_PUT_HEARTBEAT:
    case JOB_PUT_DECISIONS:
    case JOB_END_EXECUTION:
    case JOB_RETENTION:
    case JOB_PUT_COMMAND:
    case JOB_ACK_COMMAND:
    case JOB_MARK_DELIVERED:
        break; /* the writer's, never queued here */
    }
}

static void *reader_main(void *arg)
{
    struct worker *self = arg;
    struct job *j;
    while ((j = queue_take(&self->in, 1))) {
        int64_t start = aei_mono_us();
        /* A caller confined to one team reads under row-level security too (PostgreSQL). */
        j->rc = store_begin_scoped(self->store, j->scope_team);
        if (j->rc == 0) {
            run_read(self->store, j);
            store_end_scoped(self->store, j->scope_team);
        }
        double seconds = (double)(aei_mono_us() - start) / 1e6;
        if (j->kind == JOB_LIST_EXECUTIONS)
            metrics_observe_trace_query(TRACE_QUERY_EXECUTIONS, seconds);
        else if (j->kind == JOB_GET_EXECUTION)
            metrics_observe_trace_query(TRACE_QUERY_EXECUTION, seconds);
        else if (j->kind == JOB_LIST_DECISIONS)
            metrics_observe_trace_query(TRACE_QUERY_DECISIONS, seconds);
        complete(self->owner, j);
    }
    return NULL;
}

/* Retention on its own connection: on PostgreSQL, ingest then never waits for a step. */
static void *retention_main(void *arg)
{
    struct worker *self = arg;
    struct job *j;
    while ((j = queue_take(&self->in, 1))) {
        run_retention(self->store, j);
        complete(self->owner, j);
    }
    return NULL;
}

/* Starts a worker thread named `name` (as top -H and perf show it) on its own store connection. */
static int worker_start(struct worker *wk, struct workers *w, const char *url, void *(*fn)(void *),
                        const char *name, char *err, size_t errlen)
{
    wk->owner = w;
    pthread_mutex_init(&wk->in.lock, NULL);
    pthread_cond_init(&wk->in.ready, NULL);
    if (store_open(url, &wk->store, err, errlen) != 0)
        return -1;
    if (pthread_create(&wk->thread, NULL, fn, wk) != 0) {
        snprintf(err, errlen, "cannot start a storage thread");
        return -1;
    }
    pthread_setname_np(wk->thread, name);
    wk->started = true;
    return 0;
}

static void worker_stop(struct worker *wk)
{
    if (!wk->owner)
        return; /* never started (the retention thread on SQLite) */
    if (wk->started) {
        pthread_mutex_lock(&wk->in.lock);
        wk->in.stopping = true;
        pthread_cond_broadcast(&wk->in.ready);
        pthread_mutex_unlock(&wk->in.lock);
        pthread_join(wk->thread, NULL);
    }
    store_close(wk->store);
    pthread_mutex_destroy(&wk->in.lock);
    pthread_cond_destroy(&wk->in.ready);
}

struct workers *workers_start(const char *db_url, void (*notify)(void *), void *arg, char *err,
                              size_t errlen)
{
    struct workers *w = calloc(1, sizeof(*w));
    if (!w)
        abort();
    w->notify = notify;
    w->notify_arg = arg;
    pthread_mutex_init(&w->done_lock, NULL);
    if (worker_start(&w->writer, w, db_url, writer_main, "aeid-writer", err, errlen) != 0 ||
        worker_start(&w->reader, w, db_url, reader_main, "aeid-reader", err, errlen) != 0)
        goto err_stop;
    if (w->writer.store->ops->parallel_writers) {
        if (worker_start(&w->retention, w, db_url, retention_main, "aeid-retention", err, errlen) !=
            0)
            goto err_stop;
        for (; w->n_trace_writers < TRACE_WRITERS; w->n_trace_writers++)
            if (worker_start(&w->trace_writers[w->n_trace_writers], w, db_url, trace_writer_main,
                             "aeid-traces", err, errlen) != 0) {
                w->n_trace_writers++; /* stopped with the others */
                goto err_stop;
            }
    }
    return w;

err_stop:
    workers_stop(w); /* no job was submitted, so none comes back */
    return NULL;
}

void workers_submit(struct workers *w, struct job *job)
{
    bool traces = job->kind == JOB_PUT_DECISIONS || job->kind == JOB_END_EXECUTION;
    if (traces && w->n_trace_writers) {
        struct worker *wk = &w->trace_writers[w->next_trace_writer++ % w->n_trace_writers];
        queue_push(&wk->in, job);
    } else if (job->kind == JOB_RETENTION && w->retention.started) {
        queue_push(&w->retention.in, job);
    } else if (job->kind == JOB_PUT_HEARTBEAT || traces || job->kind == JOB_RETENTION ||
               job->kind == JOB_PUT_COMMAND || job->kind == JOB_ACK_COMMAND ||
               job->kind == JOB_MARK_DELIVERED) {
        queue_push(&w->writer.in, job);
    } else {
        queue_push(&w->reader.in, job);
    }
}

struct job *workers_take_done(struct workers *w)
{
    pthread_mutex_lock(&w->done_lock);
    struct job *list = w->done_head;
    w->done_head = w->done_tail = NULL;
    pthread_mutex_unlock(&w->done_lock);
    return list;
}

struct job *workers_stop(struct workers *w)
{
    if (!w)
        return NULL;
    worker_stop(&w->writer);
    worker_stop(&w->reader);
    for (size_t i = 0; i < w->n_trace_writers; i++)
        worker_stop(&w->trace_writers[i]);
    worker_stop(&w->retention);
    struct job *left = workers_take_done(w);
    pthread_mutex_destroy(&w->done_lock);
    free(w);
    return left;
}

void job_free(struct job *job)
{
    if (!job)
        return;
    hb_clear(&job->hb);
    free(job->body);
    for (size_t i = 0; i < job->n_decisions; i++) {
        decision_clear(job->decisions[i]);
        free(job->decisions[i]);
    }
    free(job->decisions);
    free(job->stored);
    free(job->end.failure_json);
    store_free_executions(job->executions, job->n_executions);
    free(job->audit);
    if (job->command) {
        command_clear(&job->command->c);
        command_request_clear(&job->command->r);
        free(job->command->result);
        free(job->command->ids);
        free(job->command);
    }
    free(job);
}
