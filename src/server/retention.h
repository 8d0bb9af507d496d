/* retention.h - deleting old heartbeats and traces in small steps, after rolling heartbeats up */
#ifndef AEI_SERVER_RETENTION_H
#define AEI_SERVER_RETENTION_H

#include "server/store.h"

#include <stdbool.h>
#include <stdint.h>

/* Heartbeats are rolled up once their day has been over for this long, so that a heartbeat
 * stamped just before midnight and still queued for the writer is not missed. */
#define RETENTION_ROLLUP_DELAY_US (3600 * 1000000LL)
/* Daily partitions are made up to this many days ahead. */
#define RETENTION_PARTITIONS_AHEAD 3
/* After each step, the next waits this many times the step's length: retention then takes at
 * most a third of its connection's time. */
#define RETENTION_PACE 2
/* The most rows one step deletes or rolls up, one short transaction, unless the policy says:
 * on SQLite, where heartbeats wait for a step, steps are smaller (at 1,000 rows ingest p99 beside
 * a run was 60-80 ms, at 250 rows 4-40 ms; see docs/decisions/0006-retention.md). */
#define RETENTION_BATCH_ROWS 1000
#define RETENTION_BATCH_ROWS_SHARED 250

struct retention_policy {
    int heartbeat_days; /* raw heartbeats: whole UTC days kept before today */
    int trace_days;     /* executions: kept this long after their last activity */
    int batch_rows;     /* rows per step (transaction); 0 for the store's default */
};

/* What a run did. */
struct retention_stats {
    int64_t rolled_up;          /* heartbeats added to rollups */
    int64_t heartbeats_deleted; /* rows deleted one by one (not those of dropped partitions) */
    int64_t partitions_made, partitions_dropped;
    int64_t decisions_deleted, executions_deleted;
    int steps;
};

/* One pass of retention at a given time, taken a bounded step at a time. */
struct retention_run {
    struct retention_policy policy;
    int64_t now; /* the clock retention works by (injected in tests) */
    int phase;
    struct old_execution *execs; /* the page of old executions being looked at */
    size_t n_execs, next_exec;
    int64_t after_started; /* keyset cursor over old executions */
    char after_id[AEI_ID_MAX + 1];
    struct retention_stats stats;
};

/* Starts a run (no store work yet). Caller ends it with retention_run_close(). */
void retention_run_init(struct retention_run *r, const struct retention_policy *p, int64_t now);
void retention_run_close(struct retention_run *r);
/* Does the run's next step, one short transaction on s. Returns 1 when there is more to do, 0
 * once the run is done, or a negative AEI_E* code (the run is then over; a later one resumes
 * where it stopped, as every step is idempotent). In order: makes partitions ahead (PostgreSQL),
 * rolls up heartbeats of finished days, deletes heartbeats of days older than
 * policy.heartbeat_days, then executions inactive for policy.trace_days. */
int retention_step(struct store *s, struct retention_run *r);
/* Runs a whole pass at `now` on s, step after step (tests and tools). */
int retention_run_all(struct store *s, const struct retention_policy *p, int64_t now,
                      struct retention_stats *out);

/* The cut-offs of a run at `now`: heartbeats before the first are deleted, those before the
 * second are rolled up, executions last active before the third are deleted. */
int64_t retention_heartbeat_cutoff(const struct retention_policy *p, int64_t now);
int64_t retention_rollup_cutoff(int64_t now);
int64_t retention_trace_cutoff(const struct retention_policy *p, int64_t now);

/* The UTC day of a server time, and its "YYYY-MM-DD" (out has RETENTION_DAY_LEN bytes; far
 * years take more digits). */
#define RETENTION_DAY_LEN 32
int64_t retention_day(int64_t us);
void retention_day_format(int64_t day, char *out);
/* Parses "YYYY-MM-DD" into a day number; false if it is not a valid date. */
bool retention_day_parse(const char *s, int64_t *day);

/* Renders {"agent_id": ..., "rollups": [up to limit], "next": cursor or null}; rows holds up to
 * limit + 1 rollups, the extra one telling that a next page exists. Caller frees. */
char *retention_render_rollups(const char *agent_id, const struct rollup *rows, size_t n,
                               int limit);

#endif
