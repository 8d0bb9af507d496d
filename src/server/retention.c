/* retention.c - deleting old heartbeats and traces in small steps, after rolling heartbeats up
 *
 * Rollups. Each agent's heartbeats of a UTC day are summed up into one row: how many, the mean
 * and largest cpu_pct and mem_pct (over the heartbeats that reported them), the largest
 * tokens_per_min, and the cost added that day. Heartbeats carry a cumulative cost_usd, so a
 * heartbeat adds the rise from the agent's previous heartbeat that reported a cost, whatever
 * day that was: the step from the previous day's last value counts on the day it shows. A cost
 * lower than the previous one means the agent's counter started again (a restart), so that
 * heartbeat adds its whole cost, as it has spent that much since the reset. An agent's first
 * cost report adds its whole value, spent since the agent started. Heartbeats without a cost add
 * nothing and leave the previous value in place. Rollups advance through the heartbeats in
 * (server_ts, id) order from a position kept in the store, in batches, so that each heartbeat
 * is counted exactly once however often retention runs; only days that ended at least
 * RETENTION_ROLLUP_DELAY_US ago are rolled up, and raw rows are deleted only once rolled up.
 *
 * Traces. An execution is deleted, its decisions and then itself, once its last activity (its
 * last decision, or its end if that is later) is older than the trace retention: an execution
 * that is still receiving decisions is kept whole however long ago it started. */
#include "server/retention.h"
#include "aei/error.h"
#include "common/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Old executions looked at per page. */
#define EXECS_PAGE 100

enum phase { PH_PARTITIONS, PH_ROLLUP, PH_HEARTBEATS, PH_EXECUTIONS, PH_DONE };

/* Floor division, so that days before 1970 are numbered right too. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int64_t retention_day(int64_t us)
{
    return floor_div(us, STORE_DAY_US);
}

int64_t retention_heartbeat_cutoff(const struct retention_policy *p, int64_t now)
{
    return (retention_day(now) - p->heartbeat_days) * STORE_DAY_US;
}

int64_t retention_rollup_cutoff(int64_t now)
{
    return retention_day(now - RETENTION_ROLLUP_DELAY_US) * STORE_DAY_US;
}

int64_t retention_trace_cutoff(const struct retention_policy *p, int64_t now)
{
    return now - p->trace_days * STORE_DAY_US;
}

/* Days from 1970-01-01 to a date of the proleptic Gregorian calendar, and back (the era
 * arithmetic of the civil calendar: 400-year eras of 146097 days, years from March). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void retention_day_format(int64_t day, char *out)
{
    int64_t z = day + 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1);
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    int64_t y = yoe + era * 400 + (m <= 2);
    snprintf(out, RETENTION_DAY_LEN, "%04lld-%02d-%02d", (long long)y, m, d);
}

bool retention_day_parse(const char *s, int64_t *day)
{
    for (int i = 0; i < 10; i++)
        if (i == 4 || i == 7 ? s[i] != '-' : (s[i] < '0' || s[i] > '9'))
            return false;
    if (s[10] != '\0')
        return false;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1] + (m == 2 && leap))
        return false;
    *day = days_from_civil(y, m, d);
    return true;
}

void retention_run_init(struct retention_run *r, const struct retention_policy *p, int64_t now)
{
    memset(r, 0, sizeof(*r));
    r->policy = *p;
    r->now = now;
    r->phase = PH_PARTITIONS;
    r->after_started = INT64_MIN;
}

void retention_run_close(struct retention_run *r)
{
    free(r->execs);
    r->execs = NULL;
    r->n_execs = r->next_exec = 0;
}

/* Moves the executions cursor past the one being looked at. */
static void pass_execution(struct retention_run *r)
{
    const struct old_execution *e = &r->execs[r->next_exec++];
    r->after_started = e->started;
    snprintf(r->after_id, sizeof(r->after_id), "%s", e->execution_id);
}

/* One step of the executions phase: deletes a batch of one expired execution's decisions, or
 * reads the next page of old executions. */
static int executions_step(struct store *s, struct retention_run *r)
{
    int64_t cutoff = retention_trace_cutoff(&r->policy, r->now);
    while (r->next_exec < r->n_execs && !r->execs[r->next_exec].expired)
        pass_execution(r);
    if (r->next_exec == r->n_execs) {
        retention_run_close(r);
        int rc = store_list_old_executions(s, cutoff, r->after_started, r->after_id, EXECS_PAGE,
                                           &r->execs, &r->n_execs);
        if (rc)
            return rc;
        if (r->n_execs == 0)
            r->phase = PH_DONE;
        return 0;
    }
    int64_t deleted;
    bool gone;
    int rc = store_expire_execution(s, r->execs[r->next_exec].execution_id, cutoff,
                                    r->policy.batch_rows, &deleted, &gone);
    if (rc)
        return rc;
    r->stats.decisions_deleted += deleted;
    r->stats.executions_deleted += gone;
    /* Done with it when it is gone, or when it turned out active (nothing deleted). */
    if (gone || deleted == 0)
        pass_execution(r);
    return 0;
}

/* Does the work of the current phase once, or moves to the next phase. */
static int phase_step(struct store *s, struct retention_run *r)
{
    int rc = 0, n;
    int64_t deleted;
    char dropped[64];
    switch (r->phase) {
    case PH_PARTITIONS: {
        int64_t today = retention_day(r->now);
        rc = store_make_partitions(s, today - 1, today + RETENTION_PARTITIONS_AHEAD, &n);
        if (rc == 0) {
            r->stats.partitions_made += n;
            r->phase = PH_ROLLUP;
        }
        return rc;
    }
    case PH_ROLLUP:
        rc = store_rollup_step(s, retention_rollup_cutoff(r->now), r->policy.batch_rows, &n);
        if (rc == 0) {
            r->stats.rolled_up += n;
            if (n < r->policy.batch_rows)
                r->phase = PH_HEARTBEATS;
        }
        return rc;
    case PH_HEARTBEATS:
        rc = store_expire_heartbeats(s, retention_heartbeat_cutoff(&r->policy, r->now),
                                     r->policy.batch_rows, &deleted, dropped, sizeof(dropped));
        if (rc == 0) {
            r->stats.heartbeats_deleted += deleted;
            r->stats.partitions_dropped += dropped[0] != '\0';
            if (!dropped[0] && deleted < r->policy.batch_rows)
                r->phase = PH_EXECUTIONS;
        }
        return rc;
    case PH_EXECUTIONS:
        return executions_step(s, r);
    default:
        return 0;
    }
}

int retention_step(struct store *s, struct retention_run *r)
{
    if (r->phase == PH_DONE)
        return 0;
    if (r->policy.batch_rows < 1)
        r->policy.batch_rows =
            s->ops->parallel_writers ? RETENTION_BATCH_ROWS : RETENTION_BATCH_ROWS_SHARED;
    int rc = phase_step(s, r);
    r->stats.steps++;
    if (rc) {
        r->phase = PH_DONE;
        return rc;
    }
    return r->phase != PH_DONE;
}

int retention_run_all(struct store *s, const struct retention_policy *p, int64_t now,
                      struct retention_stats *out)
{
    struct retention_run r;
    retention_run_init(&r, p, now);
    int rc;
    while ((rc = retention_step(s, &r)) > 0)
        ;
    retention_run_close(&r);
    if (out)
        *out = r.stats;
    return rc;
}

/* {"mean": sum / n, "max": max}, or null when no heartbeat of the day reported the metric. */
static json_t *mean_max(int64_t n, double sum, double max)
{
    if (n == 0)
        return json_null();
    return json_pack("{s:f, s:f}", "mean", sum / (double)n, "max", max);
}

static json_t *rollup_json(const struct rollup *r)
{
    char day[RETENTION_DAY_LEN];
    retention_day_format(r->day, day);
    return json_pack("{s:s, s:I, s:o, s:o, s:o, s:f}", "day", day, "heartbeats",
                     (json_int_t)r->heartbeats, "cpu_pct",
                     mean_max(r->cpu_n, r->cpu_sum, r->cpu_max), "mem_pct",
                     mean_max(r->mem_n, r->mem_sum, r->mem_max), "tokens_per_min_max",
                     r->has_tokens_per_min ? json_real(r->tokens_per_min_max) : json_null(),
                     "cost_usd_added", r->cost_added);
}

char *retention_render_rollups(const char *agent_id, const struct rollup *rows, size_t n, int limit)
{
    size_t shown = limit >= 0 && n > (size_t)limit ? (size_t)limit : n;
    json_t *list = json_array();
    for (size_t i = 0; i < shown; i++)
        json_array_append_new(list, rollup_json(&rows[i]));
    json_t *next = json_null();
    if (shown < n && shown > 0) {
        char day[RETENTION_DAY_LEN];
        retention_day_format(rows[shown - 1].day, day);
        next = json_string(day);
    }
    return json_render(
        json_pack("{s:s, s:o, s:o}", "agent_id", agent_id, "rollups", list, "next", next));
}
