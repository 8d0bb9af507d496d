/* heartbeat.h - the heartbeat schema: validation, and the JSON forms of heartbeats and agents */
#ifndef AEI_SERVER_HEARTBEAT_H
#define AEI_SERVER_HEARTBEAT_H

#include "common/json.h"

#include <stdbool.h>
#include <stdint.h>

#define AEI_ID_MAX 128
#define HB_NAME_MAX 256
#define HB_CHILDREN_MAX 1000
#define HB_LABELS_MAX 64
#define HB_LABEL_KEY_MAX 64
#define HB_LABEL_VALUE_MAX 256
/* The largest token count or rate, cost or duration a client may send. Nothing real comes near
 * it, and every number stored then prints back finite in 15 significant digits: the largest
 * doubles would print as 1.79769313486232e+308, which no JSON reader takes for a number. */
#define AEI_AMOUNT_MAX 1e15
#define AEI_AMOUNT_EXPECTED "a number from 0 to 1e15" /* what errors say of one */

enum hb_status { HB_IDLE, HB_PROCESSING, HB_WAITING, HB_ERROR, HB_COMPLETE, HB_STATUS_COUNT };
enum hb_metric { HB_CPU, HB_MEM, HB_TPM, HB_COST, HB_CONFIDENCE, HB_METRIC_COUNT };
/* Whether an agent still sends heartbeats: a field of its own beside the reported status. */
enum hb_liveness { HB_ONLINE, HB_STALE, HB_DEAD, HB_LIVENESS_COUNT };
/* What operators last asked of an agent (pause, resume, terminate). */
enum agent_control { AGENT_ACTIVE, AGENT_PAUSED, AGENT_TERMINATED, AGENT_CONTROL_COUNT };

/* One heartbeat as received, or an agent's latest state as stored. Strings are owned. */
struct heartbeat {
    int64_t id; /* store row id (history pages), 0 before storing */
    char agent_id[AEI_ID_MAX + 1];
    enum hb_status status;
    double metric[HB_METRIC_COUNT];
    bool has_metric[HB_METRIC_COUNT];
    char *parent_agent_id; /* NULL when none */
    char *children_json;   /* compact JSON array of agent ids */
    char *name;            /* NULL when none */
    char *labels_json;     /* compact JSON object of string to string */
    int64_t server_ts;     /* server clock, microseconds */
    int64_t agent_ts;      /* the agent's clock, microseconds, if has_agent_ts */
    bool has_agent_ts;
    int64_t first_seen; /* agents only: server time of the first heartbeat */
    /* The team the agent belongs to: set by the server, never by a heartbeat body; a stored
     * heartbeat row has "". */
    char team_id[AEI_ID_MAX + 1];
    enum agent_control control; /* agents only */
};

extern const char *const hb_status_names[HB_STATUS_COUNT];
extern const char *const hb_metric_names[HB_METRIC_COUNT];
extern const char *const hb_liveness_names[HB_LIVENESS_COUNT];
extern const char *const agent_control_names[AGENT_CONTROL_COUNT];

/* Sets after how long without a heartbeat an agent is stale, and dead (microseconds; defaults
 * 30 s and 120 s). Call once at start, before other threads use this module. */
void hb_set_liveness_after(int64_t stale_us, int64_t dead_us);
int64_t hb_stale_after(void);
/* Returns the liveness at now_us of an agent last heard from at last_us. */
enum hb_liveness hb_liveness_at(int64_t last_us, int64_t now_us);

/* Whether x is a value metric i may take (at least 0; at most 100 for percentages). */
bool hb_metric_in_range(enum hb_metric i, double x);

/* Returns the status named `s`, or -1. */
int hb_status_parse(const char *s);
/* Returns the control state named `s`, or -1. */
int agent_control_parse(const char *s);

/* Validates a heartbeat body and fills *hb (server_ts is left 0 for the caller to stamp).
 * Returns 0, or AEI_EINVAL with *pb naming the field at fault. On success the caller releases
 * hb with hb_clear(). */
int hb_from_json(const json_t *body, struct heartbeat *hb, struct problem *pb);

/* The fast path of a POST /api/v0/heartbeats body (heartbeat_fast.c): parses a valid heartbeat
 * in one streaming pass into *hb, as hb_from_json() would fill it. Returns AEI_EINVAL, *hb
 * zeroed, for anything else: then hb_from_json() on the parsed body decides and words the
 * error. On success the caller releases hb with hb_clear(). */
int hb_parse_fast(const char *body, size_t len, struct heartbeat *hb);

/* Validates a "labels" member (null, or at most HB_LABELS_MAX string labels) and on success
 * replaces *out with its compact JSON, keys sorted. field_name names it in errors. Returns 0 or
 * AEI_EINVAL with *pb filled in. */
int labels_from_json(const json_t *v, const char *field_name, char **out, struct problem *pb);

/* Returns the JSON of a stored heartbeat (history form). Caller releases with json_decref(). */
json_t *hb_to_json(const struct heartbeat *hb);
/* Returns the JSON of an agent's latest state, with its liveness now. Caller releases with
 * json_decref(). */
json_t *hb_agent_to_json(const struct heartbeat *hb);

/* Answer bodies, built by the reader thread so that the loop only sends them. Each returns a
 * string the caller frees with free(). `n` rows were read for a page of `limit` (n > limit
 * means there is a next page; limit < 0 means no paging). */
char *hb_render_agents(const struct heartbeat *rows, size_t n, int limit);
char *hb_render_agent(const struct heartbeat *row);
char *hb_render_history(const struct heartbeat *rows, size_t n, int limit);

/* Makes dst a deep copy of src. Caller releases dst with hb_clear(). */
void hb_copy(struct heartbeat *dst, const struct heartbeat *src);
/* Frees the strings hb owns and zeroes it; safe on a zeroed struct. */
void hb_clear(struct heartbeat *hb);

#endif
