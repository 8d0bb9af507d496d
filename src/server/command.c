/* command.c - operators' commands to agents: the actions, their bodies, and their JSON */
#include "server/command.h"
#include "aei/error.h"
#include "common/time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const command_action_names[CMD_ACTION_COUNT] = {
    "execute", "pause", "resume", "terminate", "assign", "override", "reassign"};
const char *const command_status_names[CMD_STATUS_COUNT] = {"pending", "delivered", "succeeded",
                                                            "failed", "rejected"};

static int index_of(const char *const *names, int n, const char *s)
{
    for (int i = 0; s && i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

int command_action_parse(const char *s)
{
    return index_of(command_action_names, CMD_ACTION_COUNT, s);
}

int command_status_parse(const char *s)
{
    return index_of(command_status_names, CMD_STATUS_COUNT, s);
}

void command_clear(struct command *c)
{
    free(c->params);
    free(c->result);
    memset(c, 0, sizeof(*c));
}

void command_request_clear(struct command_request *r)
{
    free(r->params);
    free(r->reason);
    memset(r, 0, sizeof(*r));
}

/* The members each action's body may have; the first `required` of them must be there. Every
 * action also takes "reason". */
static const struct {
    const char *members[4];
    int required;
} shapes[CMD_ACTION_COUNT] = {
    [CMD_EXECUTE] = {{"prompt", "options"}, 1},
    [CMD_PAUSE] = {{NULL}, 0},
    [CMD_RESUME] = {{NULL}, 0},
    [CMD_TERMINATE] = {{NULL}, 0},
    [CMD_ASSIGN] = {{"task", "execution_id"}, 1},
    [CMD_OVERRIDE] = {{"outcome", "execution_id", "decision_id"}, 1},
    [CMD_REASSIGN] = {{"to_agent_id", "execution_id"}, 1},
};

/* Checks one member's value: the texts, ids and execute's options each have their form. */
static bool member_ok(const char *name, const json_t *v, struct problem *pb)
{
    char expected[96];
    if (strcmp(name, "options") == 0) {
        char *text = json_dumps(v, JSON_COMPACT);
        size_t len = text ? strlen(text) : 0;
        free(text);
        if (json_is_object(v) && len <= COMMAND_OPTIONS_MAX)
            return true;
        snprintf(expected, sizeof(expected), "a JSON object of at most %d bytes",
                 COMMAND_OPTIONS_MAX);
    } else if (strstr(name, "_id")) {
        if (json_is_string(v) && id_is_valid(json_string_value(v)))
            return true;
        snprintf(expected, sizeof(expected), "an id: 1 to %d characters of A-Z a-z 0-9 . _ : -",
                 AEI_ID_MAX);
    } else {
        size_t max = strcmp(name, "reason") == 0 ? COMMAND_REASON_MAX : COMMAND_TEXT_MAX;
        if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) <= max)
            return true;
        snprintf(expected, sizeof(expected), "a non-empty string of at most %zu bytes", max);
    }
    problem_field(pb, name, expected, v);
    return false;
}

/* Whether the command's audit context can be written: the audit log takes integers but no
 * reals (docs/audit.md), and a context of at most AUDIT_CONTEXT_MAX canonical bytes. Tried on
 * the largest context the command can have. */
static bool fits_audit_row(const json_t *params, const char *reason, struct problem *pb)
{
    json_t *trial = json_pack("{s:s, s:O, s:{s:s}, s:{s:s}}", "command_id",
                              "00000000-0000-0000-0000-000000000000", "params", params, "before",
                              "control", "terminated", "after", "control", "terminated");
    if (reason)
        json_object_set_new(trial, "reason", json_string(reason));
    char err[200];
    char *text = audit_canonical_value(trial, err, sizeof(err));
    json_decref(trial);
    if (!text) {
        problem_field(pb, "(body)", "JSON the audit log can keep", NULL);
        snprintf(pb->message, sizeof(pb->message), "this command cannot be audited: %s", err);
        return false;
    }
    free(text);
    return true;
}

int command_request_parse(enum command_action action, const json_t *doc, struct command_request *r,
                          struct problem *pb)
{
    memset(r, 0, sizeof(*r));
    r->action = action;
    if (doc && !json_is_object(doc)) {
        problem_field(pb, "(body)", "a JSON object", doc);
        return AEI_EINVAL;
    }
    json_t *params = json_object();
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)doc, key, v)
    {
        int k = 0;
        while (k < 4 && shapes[action].members[k] && strcmp(shapes[action].members[k], key) != 0)
            k++;
        bool known = k < 4 && shapes[action].members[k];
        if (!known && strcmp(key, "reason") != 0) {
            char takes[120] = "";
            for (int i = 0; i < 4 && shapes[action].members[i]; i++)
                snprintf(takes + strlen(takes), sizeof(takes) - strlen(takes), "%s, ",
                         shapes[action].members[i]);
            problem_field(pb, key, "a known member", NULL);
            snprintf(pb->message, sizeof(pb->message),
                     "field %.60s: no such member; %s takes %sreason", key,
                     command_action_names[action], takes);
            goto err;
        }
        if (json_is_null(v) && (!known || k >= shapes[action].required))
            continue; /* an optional member given as null is absent */
        if (!member_ok(key, v, pb))
            goto err;
        if (known)
            json_object_set(params, key, v);
        else
            r->reason = strdup(json_string_value(v));
    }
    for (int k = 0; k < shapes[action].required; k++) {
        const char *name = shapes[action].members[k];
        if (!json_object_get(params, name)) {
            problem_field(pb, name, "a value: this member is required", NULL);
            goto err;
        }
    }
    if (!fits_audit_row(params, r->reason, pb))
        goto err;
    if (action == CMD_REASSIGN)
        snprintf(r->to_agent_id, sizeof(r->to_agent_id), "%s",
                 json_string_value(json_object_get(params, "to_agent_id")));
    r->params = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(params);
    if (!r->params)
        abort();
    return 0;

err:
    json_decref(params);
    command_request_clear(r);
    return AEI_EINVAL;
}

void command_request_finish(struct command_request *r)
{
    if (r->action != CMD_EXECUTE)
        return;
    json_t *params = json_loads(r->params, 0, NULL);
    if (!params)
        abort();
    json_object_set_new(params, "execution_id", json_string(r->execution_id));
    free(r->params);
    r->params = json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(params);
    if (!r->params)
        abort();
}

int command_control_after(enum command_action action)
{
    switch (action) {
    case CMD_PAUSE:
        return AGENT_PAUSED;
    case CMD_RESUME:
        return AGENT_ACTIVE;
    case CMD_TERMINATE:
        return AGENT_TERMINATED;
    default:
        return -1;
    }
}

bool command_allowed(enum command_action action, enum agent_control now, char *why, size_t n)
{
    const char *state = agent_control_names[now];
    if (action == CMD_RESUME && now == AGENT_ACTIVE) {
        snprintf(why, n, "the agent is not paused or terminated: there is nothing to resume");
        return false;
    }
    if (action == CMD_RESUME)
        return true; /* a terminated agent comes back only by resume */
    if (now == AGENT_TERMINATED) {
        snprintf(why, n, "the agent is terminated: resume it first");
        return false;
    }
    if (now == AGENT_PAUSED &&
        (action == CMD_PAUSE || action == CMD_EXECUTE || action == CMD_ASSIGN)) {
        snprintf(why, n, "the agent is %s: resume it first", state);
        return false;
    }
    return true;
}

static json_t *time_or_null(int64_t us)
{
    if (!us)
        return json_null();
    char ts[AEI_TIME_LEN];
    aei_time_format(us, ts);
    return json_string(ts);
}

static json_t *parsed(const char *text)
{
    json_t *v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    return v ? v : json_null();
}

char *command_render_for_agent(const struct command *c)
{
    return json_render(json_pack("{s:s, s:s, s:o, s:o}", "command_id", c->command_id, "action",
                                 command_action_names[c->action], "params", parsed(c->params),
                                 "created", time_or_null(c->created)));
}

json_t *command_to_json(const struct command *c)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:{s:s, s:s}, s:I, s:o, s:o, s:o, s:o}",
                     "command_id", c->command_id, "agent_id", c->agent_id, "team_id", c->team_id,
                     "action", command_action_names[c->action], "params", parsed(c->params),
                     "status", command_status_names[c->status], "actor", "type",
                     audit_actor_names[c->actor_type], "id", c->actor_id, "audit_id",
                     (json_int_t)c->audit_id, "created", time_or_null(c->created), "delivered",
                     time_or_null(c->delivered), "acked", time_or_null(c->acked), "result",
                     parsed(c->result));
}

char *command_render_page(const struct command *rows, size_t n, int limit)
{
    size_t shown = n > (size_t)limit ? (size_t)limit : n;
    json_t *list = json_array();
    for (size_t i = 0; i < shown; i++)
        json_array_append_new(list, command_to_json(&rows[i]));
    /* A cursor is "<created>-<command_id>" of the last row of the page. */
    const struct command *last = shown ? &rows[shown - 1] : NULL;
    return json_render_page("commands", list, shown < n && last, last ? last->created : 0,
                            last ? last->command_id : "");
}

int command_ack_parse(const json_t *doc, enum command_status *status, char **result,
                      struct problem *pb)
{
    *result = NULL;
    if (!json_is_object(doc)) {
        problem_field(pb, "(body)", "a JSON object {status, result (optional)}", doc);
        return AEI_EINVAL;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)doc, key, v)
    {
        if (strcmp(key, "status") != 0 && strcmp(key, "result") != 0) {
            problem_field(pb, key, "no such member (the body has status and result)", NULL);
            return AEI_EINVAL;
        }
    }
    json_t *s = json_object_get(doc, "status");
    int st = command_status_parse(json_string_value(s));
    if (st < CMD_SUCCEEDED) {
        problem_field(pb, "status", "one of succeeded, failed, rejected", s);
        return AEI_EINVAL;
    }
    json_t *r = json_object_get(doc, "result");
    if (r && !json_is_null(r)) {
        char *text = json_dumps(r, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!text)
            abort();
        json_t *trial = json_pack("{s:O}", "result", r);
        char err[200], *canonical = audit_canonical_value(trial, err, sizeof(err));
        json_decref(trial);
        if (!canonical) {
            problem_field(pb, "result", "JSON the audit log can keep", NULL);
            snprintf(pb->message, sizeof(pb->message), "field result: %s", err);
            free(text);
            return AEI_EINVAL;
        }
        free(canonical);
        if (strlen(text) > COMMAND_RESULT_MAX) {
            char expected[64];
            snprintf(expected, sizeof(expected), "at most %d bytes of JSON", COMMAND_RESULT_MAX);
            problem_field(pb, "result", expected, NULL);
            free(text);
            return AEI_EINVAL;
        }
        *result = text;
    }
    *status = (enum command_status)st;
    return 0;
}
