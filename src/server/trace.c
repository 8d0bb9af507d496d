/* trace.c - decision traces: the schema of a decision and an execution, and their validation */
#include "server/trace.h"
#include "aei/error.h"
#include "common/time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const execution_status_names[EXEC_STATUS_COUNT] = {"running", "completed", "failed",
                                                               "abandoned"};

#define ID_EXPECTED "a string of 1-128 characters from A-Z a-z 0-9 . _ : -"
#define MEMBERS                                                                                    \
    "decision_id, execution_id, agent_id, parent_decision_id, timestamp, reasoning_context, "      \
    "confidence_score, alternatives_considered, selected_outcome, kind, labels, duration_ms, "     \
    "tokens, cost_usd, agent_ts, depth"

/* The path of a member in errors: "confidence_score", or "[3].confidence_score" in a batch. */
struct where {
    long index;
    char field[160];
    bool stored_shape; /* the object has agent_ts: a stored decision, as read or exported */
};

static const char *at(struct where *w, const char *member)
{
    if (w->index >= 0)
        snprintf(w->field, sizeof(w->field), "[%ld].%s", w->index, member);
    else
        snprintf(w->field, sizeof(w->field), "%s", member);
    return w->field;
}

static char *dup_or_die(const char *s)
{
    char *p = strdup(s);
    if (!p)
        abort();
    return p;
}

static char *dump_or_die(const json_t *v, size_t flags)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | flags);
    if (!text)
        abort();
    return text;
}

/* Copies an id member into out (AEI_ID_MAX + 1 bytes); null is allowed when `optional`. */
static int parse_id(const json_t *v, bool optional, char *out, struct where *w, const char *member,
                    struct problem *pb)
{
    if (optional && json_is_null(v))
        return 0;
    if (!json_is_string(v) || !id_is_valid(json_string_value(v))) {
        problem_field(pb, at(w, member), optional ? ID_EXPECTED " or null" : ID_EXPECTED, v);
        return AEI_EINVAL;
    }
    snprintf(out, AEI_ID_MAX + 1, "%s", json_string_value(v));
    return 0;
}

/* A number from 0 to max (100 or AEI_AMOUNT_MAX), or null. */
static int parse_number(const json_t *v, double max, double *out, bool *has, struct where *w,
                        const char *member, struct problem *pb)
{
    if (json_is_null(v))
        return 0;
    double x = json_number_value(v);
    if (!json_is_number(v) || x < 0 || x > max) {
        problem_field(
            pb, at(w, member),
            max == 100 ? "a number from 0 to 100, or null" : AEI_AMOUNT_EXPECTED ", or null", v);
        return AEI_EINVAL;
    }
    *out = x;
    *has = true;
    return 0;
}

/* A string of at most max characters, or null. */
static int parse_text(const json_t *v, size_t max, char **out, struct where *w, const char *member,
                      struct problem *pb)
{
    if (json_is_null(v))
        return 0;
    if (!json_is_string(v) || utf8_length(json_string_value(v)) > max) {
        char expected[64];
        snprintf(expected, sizeof(expected), "a string of at most %zu characters, or null", max);
        problem_field(pb, at(w, member), expected, v);
        return AEI_EINVAL;
    }
    *out = dup_or_die(json_string_value(v));
    return 0;
}

/* A string or a JSON object of at most TRACE_CONTEXT_MAX bytes as compact JSON, or null. */
static int parse_context(const json_t *v, char **out, struct where *w, const char *member,
                         struct problem *pb)
{
    if (json_is_null(v))
        return 0;
    if (!json_is_string(v) && !json_is_object(v)) {
        problem_field(pb, at(w, member), "a string or a JSON object, or null", v);
        return AEI_EINVAL;
    }
    char *text = dump_or_die(v, 0);
    if (strlen(text) > TRACE_CONTEXT_MAX) {
        char expected[96];
        snprintf(expected, sizeof(expected), "at most %d bytes of JSON (this is %zu)",
                 TRACE_CONTEXT_MAX, strlen(text));
        problem_field(pb, at(w, member), expected, NULL);
        free(text);
        return AEI_EINVAL;
    }
    *out = text;
    return 0;
}

static int parse_alternatives(const json_t *v, struct decision *d, struct where *w,
                              struct problem *pb)
{
    if (json_is_null(v))
        return 0;
    if (!json_is_array(v) || json_array_size(v) > TRACE_ALTERNATIVES_MAX) {
        problem_field(pb, at(w, "alternatives_considered"), "an array of at most 64 alternatives",
                      v);
        return AEI_EINVAL;
    }
    size_t i;
    json_t *alt;
    char member[96];
    json_array_foreach(v, i, alt)
    {
        snprintf(member, sizeof(member), "alternatives_considered[%zu]", i);
        if (!json_is_object(alt)) {
            problem_field(pb, at(w, member),
                          "an object {option, reason_rejected, score (optional)}", alt);
            return AEI_EINVAL;
        }
        const char *key;
        json_t *m;
        json_object_foreach(alt, key, m)
        {
            bool text = strcmp(key, "option") == 0 || strcmp(key, "reason_rejected") == 0;
            snprintf(member, sizeof(member), "alternatives_considered[%zu].%.40s", i, key);
            if (text &&
                (!json_is_string(m) || utf8_length(json_string_value(m)) > TRACE_TEXT_MAX)) {
                problem_field(pb, at(w, member), "a string of at most 4096 characters", m);
                return AEI_EINVAL;
            }
            if (strcmp(key, "score") == 0 && !json_is_null(m) && !json_is_number(m)) {
                problem_field(pb, at(w, member), "a number, or null", m);
                return AEI_EINVAL;
            }
            if (!text && strcmp(key, "score") != 0) {
                problem_field(pb, at(w, member),
                              "no such member (an alternative has option, reason_rejected, score)",
                              m);
                return AEI_EINVAL;
            }
        }
        if (!json_object_get(alt, "option")) {
            snprintf(member, sizeof(member), "alternatives_considered[%zu].option", i);
            problem_field(pb, at(w, member), "a string naming the option", NULL);
            return AEI_EINVAL;
        }
    }
    d->alternatives_json = dump_or_die(v, 0);
    return 0;
}

/* Checks one member and stores it in d. */
static int parse_member(const char *key, const json_t *v, struct decision *d, struct where *w,
                        struct problem *pb)
{
    if (strcmp(key, "decision_id") == 0)
        return parse_id(v, true, d->decision_id, w, key, pb);
    if (strcmp(key, "execution_id") == 0)
        return parse_id(v, false, d->execution_id, w, key, pb);
    if (strcmp(key, "agent_id") == 0)
        return parse_id(v, false, d->agent_id, w, key, pb);
    if (strcmp(key, "parent_decision_id") == 0)
        return parse_id(v, true, d->parent_id, w, key, pb);
    /* A stored decision (as GET and the export give it) carries the agent's clock as agent_ts
     * and a server's time of record as timestamp: that one is checked, then left for this
     * server to stamp anew. */
    if (strcmp(key, "timestamp") == 0 || strcmp(key, "agent_ts") == 0) {
        int64_t ts;
        if (json_is_null(v))
            return 0;
        if (!json_is_string(v) || !aei_time_parse(json_string_value(v), &ts)) {
            problem_field(pb, at(w, key), "an RFC 3339 date-time such as \"2026-11-24T15:00:00Z\"",
                          v);
            return AEI_EINVAL;
        }
        if (strcmp(key, "timestamp") == 0 && w->stored_shape)
            return 0;
        d->agent_ts = ts;
        d->has_agent_ts = true;
        return 0;
    }
    /* Read-only: a decision's depth follows from its parent. */
    if (strcmp(key, "depth") == 0) {
        if (json_is_null(v) || (json_is_integer(v) && json_integer_value(v) >= 0 &&
                                json_integer_value(v) <= TRACE_DEPTH_MAX))
            return 0;
        problem_field(pb, at(w, key), "a whole number from 0 to 255, or null (it is ignored)", v);
        return AEI_EINVAL;
    }
    if (strcmp(key, "reasoning_context") == 0)
        return parse_context(v, &d->context_json, w, "reasoning_context", pb);
    if (strcmp(key, "confidence_score") == 0)
        return parse_number(v, 100, &d->confidence, &d->has_confidence, w, key, pb);
    if (strcmp(key, "alternatives_considered") == 0)
        return parse_alternatives(v, d, w, pb);
    if (strcmp(key, "selected_outcome") == 0)
        return parse_text(v, TRACE_TEXT_MAX, &d->outcome, w, key, pb);
    if (strcmp(key, "kind") == 0) {
        if (json_is_null(v))
            return 0;
        if (!json_is_string(v) || !id_is_valid(json_string_value(v)) ||
            strlen(json_string_value(v)) > TRACE_KIND_MAX) {
            problem_field(pb, at(w, key),
                          "a name of 1-64 characters from A-Z a-z 0-9 . _ : - such as llm_call", v);
            return AEI_EINVAL;
        }
        d->kind = dup_or_die(json_string_value(v));
        return 0;
    }
    if (strcmp(key, "labels") == 0)
        return labels_from_json(v, at(w, key), &d->labels_json, pb);
    if (strcmp(key, "duration_ms") == 0)
        return parse_number(v, AEI_AMOUNT_MAX, &d->duration_ms, &d->has_duration, w, key, pb);
    if (strcmp(key, "tokens") == 0)
        return parse_number(v, AEI_AMOUNT_MAX, &d->tokens, &d->has_tokens, w, key, pb);
    if (strcmp(key, "cost_usd") == 0)
        return parse_number(v, AEI_AMOUNT_MAX, &d->cost_usd, &d->has_cost, w, key, pb);
    problem_field(pb, at(w, *key ? key : "\"\""), "no such member (a decision has " MEMBERS ")", v);
    return AEI_EINVAL;
}

int decision_from_json(const json_t *v, long i, struct decision *d, struct problem *pb)
{
    struct where w = {.index = i};
    memset(d, 0, sizeof(*d));
    w.stored_shape = json_object_get(v, "agent_ts") != NULL;
    if (!json_is_object(v)) {
        char field[32] = "(body)";
        if (i >= 0)
            snprintf(field, sizeof(field), "[%ld]", i);
        problem_field(pb, field, "a decision object", v);
        return AEI_EINVAL;
    }
    const char *key;
    json_t *m;
    json_object_foreach((json_t *)v, key, m)
    {
        if (parse_member(key, m, d, &w, pb) != 0)
            goto err_clear;
    }
    if (!d->execution_id[0]) {
        problem_field(pb, at(&w, "execution_id"), ID_EXPECTED, NULL);
        goto err_clear;
    }
    if (!d->agent_id[0]) {
        problem_field(pb, at(&w, "agent_id"), ID_EXPECTED, NULL);
        goto err_clear;
    }
    if (d->decision_id[0] && strcmp(d->decision_id, d->parent_id) == 0) {
        problem_field(pb, at(&w, "parent_decision_id"), "a decision other than decision_id itself",
                      json_object_get(v, "parent_decision_id"));
        goto err_clear;
    }
    if (!d->alternatives_json)
        d->alternatives_json = dup_or_die("[]");
    if (!d->labels_json)
        d->labels_json = dup_or_die("{}");
    return 0;

err_clear:
    decision_clear(d);
    return AEI_EINVAL;
}

static json_t *time_json(int64_t us)
{
    char ts[AEI_TIME_LEN];
    aei_time_format(us, ts);
    return json_string(ts);
}

static json_t *parsed_or_null(const char *text)
{
    json_t *v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    return v ? v : json_null();
}

/* Appends a JSON member name and colon, with a comma before all but the first. */
static void write_key(struct buf *out, const char *name)
{
    buf_printf(out, "%s\"%s\":", out->data[out->len - 1] == '{' ? "" : ",", name);
}

static void write_time_member(struct buf *out, const char *name, bool has, int64_t us)
{
    write_key(out, name);
    if (!has) {
        buf_puts(out, "null");
        return;
    }
    char ts[AEI_TIME_LEN];
    aei_time_format(us, ts);
    buf_printf(out, "\"%s\"", ts);
}

static void write_text_member(struct buf *out, const char *name, const char *s)
{
    write_key(out, name);
    if (s && *s)
        json_write_string(out, s);
    else
        buf_puts(out, "null");
}

/* A member whose value is stored as JSON text (compact from SQLite, jsonb's text from
 * PostgreSQL): copied as it is, which is valid JSON either way. */
static void write_json_member(struct buf *out, const char *name, const char *json)
{
    write_key(out, name);
    buf_puts(out, json ? json : "null");
}

static void write_number_member(struct buf *out, const char *name, bool has, double x)
{
    write_key(out, name);
    if (has)
        json_write_real(out, x);
    else
        buf_puts(out, "null");
}

void decision_write(struct buf *out, const struct decision *d, bool null_depth)
{
    buf_puts(out, "{");
    write_text_member(out, "decision_id", d->decision_id);
    write_text_member(out, "execution_id", d->execution_id);
    write_text_member(out, "agent_id", d->agent_id);
    write_text_member(out, "parent_decision_id", d->parent_id);
    write_time_member(out, "timestamp", true, d->server_ts);
    write_time_member(out, "agent_ts", d->has_agent_ts, d->agent_ts);
    write_text_member(out, "kind", d->kind);
    write_json_member(out, "reasoning_context", d->context_json);
    write_number_member(out, "confidence_score", d->has_confidence, d->confidence);
    write_json_member(out, "alternatives_considered", d->alternatives_json);
    write_text_member(out, "selected_outcome", d->outcome);
    write_json_member(out, "labels", d->labels_json);
    write_number_member(out, "duration_ms", d->has_duration, d->duration_ms);
    write_number_member(out, "tokens", d->has_tokens, d->tokens);
    write_number_member(out, "cost_usd", d->has_cost, d->cost_usd);
    if (d->path)
        buf_printf(out, ",\"depth\":%d", d->depth);
    else if (null_depth)
        buf_puts(out, ",\"depth\":null");
    buf_puts(out, "}");
}

json_t *execution_to_json(const struct execution *e)
{
    json_t *o = json_object();
    json_object_set_new(o, "execution_id", json_string(e->execution_id));
    json_object_set_new(o, "agent_id", json_string(e->agent_id));
    json_object_set_new(o, "status", json_string(execution_status_names[e->status]));
    json_object_set_new(o, "started", time_json(e->started));
    json_object_set_new(o, "ended", e->ended ? time_json(e->ended) : json_null());
    json_object_set_new(o, "decisions", json_integer(e->decisions));
    json_object_set_new(o, "mean_confidence",
                        e->confidence_n ? json_real(e->confidence_sum / (double)e->confidence_n)
                                        : json_null());
    json_object_set_new(o, "cost_usd", json_real(e->cost_usd));
    json_object_set_new(o, "pending_parents", json_integer(e->pending));
    json_object_set_new(o, "failure", parsed_or_null(e->failure_json));
    if (e->team_id[0])
        json_object_set_new(o, "team_id", json_string(e->team_id));
    return o;
}

char *trace_render_executions(const struct execution *rows, size_t n, int limit)
{
    size_t shown = n > (size_t)limit ? (size_t)limit : n;
    json_t *list = json_array();
    for (size_t i = 0; i < shown; i++)
        json_array_append_new(list, execution_to_json(&rows[i]));
    /* "<started>-<execution_id>" of the page's last execution. */
    const struct execution *last = shown ? &rows[shown - 1] : NULL;
    return json_render_page("executions", list, shown < n && last, last ? last->started : 0,
                            last ? last->execution_id : "");
}

char *trace_render_execution(const struct execution *e)
{
    return json_render(execution_to_json(e));
}

char *trace_render_decisions(const struct decision *rows, size_t n, int limit)
{
    /* Written directly: pages of hundreds of decisions are read all the time. */
    size_t shown = n > (size_t)limit ? (size_t)limit : n;
    struct buf out = {0};
    buf_reserve(&out, 64 + shown * 1024);
    buf_puts(&out, "{\"decisions\":[");
    for (size_t i = 0; i < shown; i++) {
        if (i)
            buf_puts(&out, ",");
        decision_write(&out, &rows[i], false);
    }
    buf_puts(&out, "],\"next\":");
    if (shown < n && shown > 0)
        json_write_string(&out, rows[shown - 1].path);
    else
        buf_puts(&out, "null");
    buf_puts(&out, "}");
    return out.data; /* NUL-ended by buf */
}

void decision_clear(struct decision *d)
{
    free(d->context_json);
    free(d->alternatives_json);
    free(d->outcome);
    free(d->kind);
    free(d->labels_json);
    free(d->path);
    memset(d, 0, sizeof(*d));
}

void execution_clear(struct execution *e)
{
    free(e->failure_json);
    memset(e, 0, sizeof(*e));
}

int execution_end_from_json(const json_t *v, struct execution_end *end, struct problem *pb)
{
    struct where w = {.index = -1};
    memset(end, 0, sizeof(*end));
    if (!json_is_object(v)) {
        problem_field(pb, "(body)", "an object {status, failure (optional)}", v);
        return AEI_EINVAL;
    }
    const char *key;
    json_t *m;
    json_object_foreach((json_t *)v, key, m)
    {
        if (strcmp(key, "status") == 0) {
            const char *name = json_string_value(m);
            for (int i = EXEC_RUNNING + 1; name && i < EXEC_STATUS_COUNT; i++)
                if (strcmp(name, execution_status_names[i]) == 0)
                    end->status = (enum execution_status)i;
            if (end->status == EXEC_RUNNING) {
                problem_field(pb, "status", "one of completed, failed, abandoned", m);
                goto err_free;
            }
        } else if (strcmp(key, "failure") == 0) {
            if (parse_context(m, &end->failure_json, &w, "failure", pb) != 0)
                goto err_free;
        } else {
            problem_field(pb, key, "no such member (the body has status and failure)", NULL);
            goto err_free;
        }
    }
    if (end->status == EXEC_RUNNING) {
        problem_field(pb, "status", "one of completed, failed, abandoned", NULL);
        goto err_free;
    }
    return 0;

err_free:
    free(end->failure_json);
    end->failure_json = NULL;
    return AEI_EINVAL;
}
