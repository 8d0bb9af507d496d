/* hub.h - the live agent registry: full states, deltas, sequence numbers, health and totals */
#ifndef AEI_SERVER_HUB_H
#define AEI_SERVER_HUB_H

#include "common/buf.h"
#include "server/heartbeat.h"

#include <jansson.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The last updates kept in memory for resuming subscribers: overall, and per agent. */
#define HUB_RING_SIZE 65536
#define HUB_AGENT_RING_SIZE 100
#define HUB_EPOCH_LEN 16

struct hub_agent;

/* One message of the update stream (a delta or an event), rendered once and shared by the
 * replay buffers. Read-only outside hub.c. */
struct hub_update {
    uint64_t seq;
    uint64_t offset;         /* bytes of all updates before this one: measures a backlog */
    int64_t received_mono;   /* when its heartbeat arrived (deltas), or 0 */
    struct hub_agent *agent; /* the agent it is about (agents live as long as the hub) ... */
    const char *topic; /* ... or, when agent is NULL, its topic: execution:<id>, commands:<id> */
    const char *team;  /* the team whose members may see it (in this block, or the agent's) */
    int refs;
    size_t len;
    char text[]; /* the message's JSON */
};

struct hub_settings {
    double price_per_1k_tokens; /* for estimating the cost of agents that report none */
    /* Called (with hub_new's arg) when an agent is found dead, or NULL. */
    void (*died)(void *arg, const char *agent_id, int64_t last_heartbeat);
};

/* Called for each new update, after it has its sequence number and is in the buffers. */
typedef void (*hub_publish_fn)(void *arg, const struct hub_update *u);

struct hub;

/* Returns a new hub with a random epoch. `publish(arg, u)` learns of every update; it may be
 * NULL. Caller frees with hub_free(). Loop thread only, like every function below. */
struct hub *hub_new(const struct hub_settings *settings, hub_publish_fn publish, void *arg);
void hub_free(struct hub *h);

/* Loads an agent's stored latest state at start, without publishing anything. */
void hub_load(struct hub *h, const struct heartbeat *agent, int64_t now_us);
/* Applies a committed heartbeat: updates the agent's state and publishes its delta (and an
 * agent.online event if it had gone stale or dead). Takes the strings hb owns, and zeroes it. */
void hub_heartbeat(struct hub *h, struct heartbeat *hb, int64_t received_mono);
/* Publishes a message of topic execution:<execution_id>, seen by members of `team`: {"type":
 * type, "topic", "epoch", "seq", member: json} where json is a rendered JSON value. Such updates
 * are kept in the overall ring only. */
void hub_publish_execution(struct hub *h, const char *execution_id, const char *team,
                           const char *type, const char *member, const char *json);
/* Marks agents stale or dead whose last heartbeat is old enough (see hb_liveness_at()),
 * publishing the changes. */
void hub_check_health(struct hub *h, int64_t now_us);

const char *hub_epoch(const struct hub *h);
/* The sequence number of the newest update; 0 before the first. */
uint64_t hub_head(const struct hub *h);
/* The stream's size in bytes up to and including the newest update. */
uint64_t hub_end_offset(const struct hub *h);
/* Returns the update with sequence number seq, or NULL if it is not (or no longer) kept. */
const struct hub_update *hub_update_at(const struct hub *h, uint64_t seq);
/* Returns the agent with this id, or NULL. */
struct hub_agent *hub_agent_find(const struct hub *h, const char *agent_id);
const char *hub_agent_id(const struct hub_agent *a);
const char *hub_agent_team(const struct hub_agent *a);
enum agent_control hub_agent_control(const struct hub_agent *a);
/* Sets what operators last asked of the agent, publishing the change. */
void hub_set_control(struct hub *h, struct hub_agent *a, enum agent_control control);

/* Commands waiting for their agent's acknowledgement. */

/* Adds a committed command (its id, and `json`, its rendered object) to the agent's open ones
 * and publishes {"type":"command","topic":"commands:<agent_id>",...,"command": json}. A command
 * loaded at start (publish false) is only added. */
void hub_command_add(struct hub *h, struct hub_agent *a, const char *command_id, const char *json,
                     bool publish);
/* Forgets an acknowledged command; false if it was not open. */
bool hub_command_remove(struct hub_agent *a, const char *command_id);
/* Writes the agent's open commands (the oldest max) as a JSON array, calling delivered(arg, id)
 * for each that had not been handed out before (delivered may be NULL: a copy for viewers). */
void hub_commands_write(struct hub_agent *a, struct buf *out, size_t max,
                        void (*delivered)(void *arg, const char *command_id), void *arg);
/* How many commands of the agent wait for acknowledgement. */
size_t hub_open_commands(const struct hub_agent *a);
/* Counts by reported status and by liveness, indexed like hb_status_names and
 * hb_liveness_names. */
const size_t *hub_status_counts(const struct hub *h);
const size_t *hub_liveness_counts(const struct hub *h);

/* Calls fn(arg, u) for each update about `agent` (every update when NULL) with sequence number
 * above `after`, in order, and returns true; returns false and calls nothing when some of those
 * updates are no longer kept, or when they come to more than max_bytes. */
bool hub_replay(const struct hub *h, const struct hub_agent *agent, uint64_t after,
                size_t max_bytes, void (*fn)(void *arg, const struct hub_update *u), void *arg);

/* Whether members of `team` (NULL: every team, for admins) may see an update. */
bool hub_team_sees(const char *team, const struct hub_update *u);

/* Returns the snapshot message of a topic at the current head: every agent of `team` (every
 * agent when team is NULL) with their totals (agent_id NULL), or one agent. Caller frees with
 * free(). */
char *hub_render_snapshot(struct hub *h, const char *topic, const char *team, const char *agent_id,
                          size_t *len);
/* The totals of the agents of `team` (NULL: of every agent), as the members of a totals
 * message. Caller json_decref()s. */
json_t *hub_totals(const struct hub *h, const char *team);

#endif
