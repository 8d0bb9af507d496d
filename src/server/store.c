/* store.c - opening a store by URL, and the backend-independent wrappers */
#include "server/store.h"
#include "aei/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int store_open(const char *url, struct store **out, char *err, size_t errlen)
{
    if (strncmp(url, "sqlite:", 7) == 0) {
        const char *path = url + 7;
        if (strncmp(path, "//", 2) == 0)
            path += 2;
        if (*path == '\0') {
            snprintf(err, errlen, "database URL \"%s\" names no file: use sqlite:PATH", url);
            return AEI_EINVAL;
        }
        return store_sqlite_open(path, out, err, errlen);
    }
    if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
        return store_pg_open(url, out, err, errlen);
    snprintf(err, errlen,
             "database URL must start with sqlite:, postgres:// or postgresql:// (got \"%.40s\")",
             url);
    return AEI_EINVAL;
}

/* Marks the last heartbeat of each agent in hbs[0..n) and, for it, the time of the agent's first
 * heartbeat in the batch, so that a batch updates each agent once. */
static void mark_latest(struct heartbeat *const *hbs, size_t n, bool *latest, int64_t *first_ts);

int store_put_heartbeats(struct store *s, struct heartbeat *const *hbs, size_t n)
{
    if (n == 0)
        return 0;
    bool *latest = malloc(n * sizeof(*latest));
    int64_t *first_ts = malloc(n * sizeof(*first_ts));
    if (!latest || !first_ts)
        abort();
    mark_latest(hbs, n, latest, first_ts);
    int rc = s->ops->put_heartbeats(s, hbs, n, latest, first_ts);
    free(latest);
    free(first_ts);
    return rc;
}

int store_list_agents(struct store *s, const char *after, int limit, struct heartbeat **out,
                      size_t *n)
{
    return s->ops->list_agents(s, after, limit, out, n);
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
    if (n == 0)
        return 0;
    return s->ops->put_decisions(s, ds, n, stored);
}

int store_put_decision_batches(struct store *s, struct decision_batch *b, size_t nb)
{
    if (s->ops->put_decision_batches)
        return s->ops->put_decision_batches(s, b, nb);
    for (size_t k = 0; k < nb; k++)
        b[k].rc = store_put_decisions(s, b[k].ds, b[k].n, b[k].stored);
    return 0;
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

void store_close(struct store *s)
{
    if (s)
        s->ops->close(s);
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

static void mark_latest(struct heartbeat *const *hbs, size_t n, bool *latest, int64_t *first_ts)
{
    struct order *o = malloc(n * sizeof(*o));
    if (!o)
        abort();
    for (size_t i = 0; i < n; i++) {
        o[i] = (struct order){hbs[i]->agent_id, i};
        latest[i] = false;
        first_ts[i] = 0;
    }
    qsort(o, n, sizeof(*o), by_agent_then_index);
    int64_t first = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || strcmp(o[i].agent_id, o[i - 1].agent_id) != 0)
            first = hbs[o[i].index]->server_ts;
        if (i + 1 == n || strcmp(o[i].agent_id, o[i + 1].agent_id) != 0) {
            latest[o[i].index] = true;
            first_ts[o[i].index] = first;
        }
    }
    free(o);
}
