/* command.h - operators' commands to agents: the actions, their bodies, and their JSON */
#ifndef AEI_SERVER_COMMAND_H
#define AEI_SERVER_COMMAND_H

#include "common/json.h"
#include "server/audit.h"
#include "server/heartbeat.h"

#include <stdbool.h>
#include <stdint.h>

#define COMMAND_TEXT_MAX 16384   /* a prompt, task or outcome, in bytes */
#define COMMAND_REASON_MAX 1000  /* why the operator acts */
#define COMMAND_OPTIONS_MAX 8192 /* execute's options, as compact JSON */
#define COMMAND_RESULT_MAX 16384 /* an acknowledgement's result, as compact JSON */

enum command_action {
    CMD_EXECUTE,
    CMD_PAUSE,
    CMD_RESUME,
    CMD_TERMINATE,
    CMD_ASSIGN,
    CMD_OVERRIDE,
    CMD_REASSIGN,
    CMD_ACTION_COUNT
};
/* pending: recorded, not yet handed to the agent; delivered: handed out (again at every
 * heartbeat answer until acknowledged); then how the agent says it went. */
enum command_status {
    CMD_PENDING,
    CMD_DELIVERED,
    CMD_SUCCEEDED,
    CMD_FAILED,
    CMD_REJECTED,
    CMD_STATUS_COUNT
};
extern const char *const command_action_names[CMD_ACTION_COUNT];
extern const char *const command_status_names[CMD_STATUS_COUNT];
/* Returns the action or status named s, or -1. */
int command_action_parse(const char *s);
int command_status_parse(const char *s);

/* A command as stored. */
struct command {
    char command_id[AEI_ID_MAX + 1];
    char agent_id[AEI_ID_MAX + 1];
    char team_id[AEI_ID_MAX + 1];
    enum command_action action;
    char *params; /* compact JSON object; owned */
    enum command_status status;
    enum audit_actor actor_type;
    char actor_id[AEI_ID_MAX + 1];
    int64_t audit_id;
    int64_t created, delivered, acked; /* server times; 0 for not yet */
    char *result;                      /* the agent's result (compact JSON), or NULL; owned */
};

void command_clear(struct command *c);

/* What an action asks for, read from its request body. */
struct command_request {
    enum command_action action;
    char *params;                      /* compact JSON object of the action's members; owned */
    char *reason;                      /* or NULL; owned */
    char to_agent_id[AEI_ID_MAX + 1];  /* reassign: the agent that takes the work over */
    char execution_id[AEI_ID_MAX + 1]; /* execute: the new execution's id, set by the caller */
};

/* Validates the body of POST /api/v0/agents/{id}/<action> (doc may be NULL for an empty body)
 * into *r. Returns 0, or AEI_EINVAL with *pb naming the field. Caller frees r with
 * command_request_clear(). The execute action's params get its execution_id later, from
 * command_request_finish(). */
int command_request_parse(enum command_action action, const json_t *doc, struct command_request *r,
                          struct problem *pb);
/* Adds the execution id (execute) to the params once it is chosen. */
void command_request_finish(struct command_request *r);
void command_request_clear(struct command_request *r);

/* The control state an action leaves the agent in, or -1 for one that does not change it; and
 * whether the action may be taken in the state the agent is in (else *why says why). */
int command_control_after(enum command_action action);
bool command_allowed(enum command_action action, enum agent_control now, char *why, size_t n);

/* The command as agents receive it: {"command_id","action","params","created"}. Caller frees. */
char *command_render_for_agent(const struct command *c);
/* The whole command, as the API shows it. */
json_t *command_to_json(const struct command *c);
/* {"commands":[...], "next": cursor or null} of up to limit rows (n may be limit + 1). */
char *command_render_page(const struct command *rows, size_t n, int limit);

/* Validates an acknowledgement body {"status": succeeded|failed|rejected, "result": any JSON}
 * into *status and *result (compact JSON or NULL; caller frees). */
int command_ack_parse(const json_t *doc, enum command_status *status, char **result,
                      struct problem *pb);

#endif
