/* heartbeat.c - the heartbeat schema: validation, and the JSON forms of heartbeats and agents */
#include "server/heartbeat.h"
#include "aei/error.h"
#include "common/time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const hb_status_names[HB_STATUS_COUNT] = {"idle", "processing", "waiting", "error",
                                                      "complete"};
const char *const hb_metric_names[HB_METRIC_COUNT] = {"cpu_pct", "mem_pct", "tokens_per_min",
                                                      "cost_usd", "confidence"};
const char *const hb_liveness_names[HB_LIVENESS_COUNT] = {"online", "stale", "dead"};
const char *const agent_control_names[AGENT_CONTROL_COUNT] = {"active", "paused", "terminated"};
/* Upper bounds of the metrics; all are at least 0. */
static const double metric_max[HB_METRIC_COUNT] = {100, 100, AEI_AMOUNT_MAX, AEI_AMOUNT_MAX, 100};

#define ID_EXPECTED "a string of 1-128 characters from A-Z a-z 0-9 . _ : -"

/* Written once at start, before any other thread runs. */
static int64_t stale_after_us = 30 * 1000000LL, dead_after_us = 120 * 1000000LL;

void hb_set_liveness_after(int64_t stale_us, int64_t dead_us)
{
    stale_after_us = stale_us;
    dead_after_us = dead_us;
}

int64_t hb_stale_after(void)
{
    return stale_after_us;
}

enum hb_liveness hb_liveness_at(int64_t last_us, int64_t now_us)
{
    int64_t quiet = now_us - last_us;
    return quiet >= dead_after_us ? HB_DEAD : quiet >= stale_after_us ? HB_STALE : HB_ONLINE;
}

bool hb_metric_in_range(enum hb_metric i, double x)
{
    return x >= 0 && x <= metric_max[i];
}

/* The index of s among n names, or -1. */
static int name_index(const char *const *names, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

int hb_status_parse(const char *s)
{
    return name_index(hb_status_names, HB_STATUS_COUNT, s);
}

int agent_control_parse(const char *s)
{
    return name_index(agent_control_names, AGENT_CONTROL_COUNT, s);
}

static char *dup_or_die(const char *s)
{
    char *p = strdup(s);
    if (!p)
        abort();
    return p;
}

/* Writes the path "object.key" of a member for an error report. */
static void member_field(char *out, size_t n, const char *object, const char *key)
{
    snprintf(out, n, "%s.%.80s", object, key);
}

static int parse_metrics(const json_t *v, struct heartbeat *hb, struct problem *pb)
{
    if (json_is_null(v))
        return 0;
    if (!json_is_object(v)) {
        problem_field(pb, "metrics", "an object", v);
        return AEI_EINVAL;
    }
    const char *key;
    json_t *m;
    json_object_foreach((json_t *)v, key, m)
    {
        /* Field names are only built when there is an error to report. */
        char field[96];
        int i = 0;
        while (i < HB_METRIC_COUNT && strcmp(key, hb_metric_names[i]) != 0)
            i++;
        if (i == HB_METRIC_COUNT) {
            member_field(field, sizeof(field), "metrics", key);
            problem_field(pb, field,
                          "no such member (metrics has cpu_pct, mem_pct, tokens_per_min, cost_usd, "
                          "confidence)",
                          m);
            return AEI_EINVAL;
        }
        if (json_is_null(m))
            continue;
        double x = json_number_value(m);
        if (!json_is_number(m) || !hb_metric_in_range((enum hb_metric)i, x)) {
            member_field(field, sizeof(field), "metrics", key);
            problem_field(pb, field,
                          metric_max[i] == 100 ? "a number from 0 to 100" : AEI_AMOUNT_EXPECTED, m);
            return AEI_EINVAL;
        }
        hb->metric[i] = x;
        hb->has_metric[i] = true;
    }
    return 0;
}

static int parse_children(const json_t *v, struct heartbeat *hb, struct problem *pb)
{
    if (json_is_null(v))
        return 0;
    if (!json_is_array(v) || json_array_size(v) > HB_CHILDREN_MAX) {
        problem_field(pb, "child_agent_ids", "an array of at most 1000 agent ids", v);
        return AEI_EINVAL;
    }
    size_t i;
    json_t *c;
    json_array_foreach(v, i, c)
    {
        if (!json_is_string(c) || !id_is_valid(json_string_value(c))) {
            char field[48];
            snprintf(field, sizeof(field), "child_agent_ids[%zu]", i);
            problem_field(pb, field, ID_EXPECTED, c);
            return AEI_EINVAL;
        }
    }
    free(hb->children_json);
    hb->children_json = json_dumps(v, JSON_COMPACT);
    return 0;
}

int labels_from_json(const json_t *v, const char *field_name, char **out, struct problem *pb)
{
    if (json_is_null(v))
        return 0;
    if (!json_is_object(v) || json_object_size(v) > HB_LABELS_MAX) {
        problem_field(pb, field_name, "an object of at most 64 string labels", v);
        return AEI_EINVAL;
    }
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val)
    {
        char field[160];
        size_t klen = utf8_length(key);
        if (klen == 0 || klen > HB_LABEL_KEY_MAX) {
            member_field(field, sizeof(field), field_name, key);
            problem_field(pb, field, "a label name of 1-64 characters", NULL);
            return AEI_EINVAL;
        }
        if (!json_is_string(val) || utf8_length(json_string_value(val)) > HB_LABEL_VALUE_MAX) {
            member_field(field, sizeof(field), field_name, key);
            problem_field(pb, field, "a string of at most 256 characters", val);
            return AEI_EINVAL;
        }
    }
    free(*out);
    *out = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    return 0;
}

/* Checks one top-level member and stores it in hb. */
static int parse_member(const char *key, const json_t *v, struct heartbeat *hb, struct problem *pb)
{
    if (strcmp(key, "agent_id") == 0) {
        if (!json_is_string(v) || !id_is_valid(json_string_value(v))) {
            problem_field(pb, key, ID_EXPECTED, v);
            return AEI_EINVAL;
        }
        /* id_is_valid() has bounded it to AEI_ID_MAX bytes before any NUL. */
        size_t n = strlen(json_string_value(v));
        memcpy(hb->agent_id, json_string_value(v), n);
        hb->agent_id[n] = '\0';
    } else if (strcmp(key, "status") == 0) {
        int st = json_is_string(v) ? hb_status_parse(json_string_value(v)) : -1;
        if (st < 0) {
            problem_field(pb, key, "one of idle, processing, waiting, error, complete", v);
            return AEI_EINVAL;
        }
        hb->status = (enum hb_status)st;
    } else if (strcmp(key, "metrics") == 0) {
        return parse_metrics(v, hb, pb);
    } else if (strcmp(key, "parent_agent_id") == 0) {
        if (json_is_null(v))
            return 0;
        if (!json_is_string(v) || !id_is_valid(json_string_value(v))) {
            problem_field(pb, key, ID_EXPECTED " or null", v);
            return AEI_EINVAL;
        }
        hb->parent_agent_id = dup_or_die(json_string_value(v));
    } else if (strcmp(key, "child_agent_ids") == 0) {
        return parse_children(v, hb, pb);
    } else if (strcmp(key, "timestamp") == 0) {
        if (json_is_null(v))
            return 0;
        if (!json_is_string(v) || !aei_time_parse(json_string_value(v), &hb->agent_ts)) {
            problem_field(pb, key, "an RFC 3339 date-time such as \"2026-11-24T15:00:00.123Z\"", v);
            return AEI_EINVAL;
        }
        hb->has_agent_ts = true;
    } else if (strcmp(key, "name") == 0) {
        if (json_is_null(v))
            return 0;
        if (!json_is_string(v) || utf8_length(json_string_value(v)) > HB_NAME_MAX) {
            problem_field(pb, key, "a string of at most 256 characters or null", v);
            return AEI_EINVAL;
        }
        hb->name = dup_or_die(json_string_value(v));
    } else if (strcmp(key, "labels") == 0) {
        return labels_from_json(v, "labels", &hb->labels_json, pb);
    } else if (strcmp(key, "schema_version") == 0) {
        if (!json_is_string(v) || strcmp(json_string_value(v), "0") != 0) {
            problem_field(pb, key, "\"0\" (the only schema version this server speaks)", v);
            return AEI_EINVAL;
        }
    } else {
        problem_field(pb, *key ? key : "\"\"", /* a member with an empty name */
                      "no such member (a heartbeat has agent_id, status, metrics, "
                      "parent_agent_id, child_agent_ids, timestamp, name, labels, schema_version)",
                      v);
        return AEI_EINVAL;
    }
    return 0;
}

int hb_from_json(const json_t *body, struct heartbeat *hb, struct problem *pb)
{
    memset(hb, 0, sizeof(*hb));
    hb->status = HB_STATUS_COUNT;
    if (!json_is_object(body)) {
        problem_field(pb, "(body)", "a JSON object", body);
        return AEI_EINVAL;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v)
    {
        if (parse_member(key, v, hb, pb) != 0)
            goto err_clear;
    }
    if (hb->agent_id[0] == '\0') {
        problem_field(pb, "agent_id", ID_EXPECTED, NULL);
        goto err_clear;
    }
    if (hb->status == HB_STATUS_COUNT) {
        problem_field(pb, "status", "one of idle, processing, waiting, error, complete", NULL);
        goto err_clear;
    }
    if (hb->parent_agent_id && strcmp(hb->parent_agent_id, hb->agent_id) == 0) {
        problem_field(pb, "parent_agent_id", "an agent other than agent_id itself",
                      json_object_get(body, "parent_agent_id"));
        goto err_clear;
    }
    if (!hb->children_json)
        hb->children_json = dup_or_die("[]");
    if (!hb->labels_json)
        hb->labels_json = dup_or_die("{}");
    return 0;

err_clear:
    hb_clear(hb);
    return AEI_EINVAL;
}

static json_t *time_or_null(bool has, int64_t us)
{
    if (!has)
        return json_null();
    char ts[AEI_TIME_LEN];
    aei_time_format(us, ts);
    return json_string(ts);
}

static json_t *parsed_or(const char *text, json_t *fallback)
{
    json_t *v = text ? json_loads(text, 0, NULL) : NULL;
    if (!v)
        return fallback;
    json_decref(fallback);
    return v;
}

/* The members both JSON forms share. */
static json_t *common_json(const struct heartbeat *hb)
{
    json_t *metrics = json_object();
    for (int i = 0; i < HB_METRIC_COUNT; i++)
        json_object_set_new(metrics, hb_metric_names[i],
                            hb->has_metric[i] ? json_real(hb->metric[i]) : json_null());
    return json_pack("{s:s, s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "agent_id", hb->agent_id,
                     "name", hb->name ? json_string(hb->name) : json_null(), "status",
                     hb_status_names[hb->status], "metrics", metrics, "parent_agent_id",
                     hb->parent_agent_id ? json_string(hb->parent_agent_id) : json_null(),
                     "child_agent_ids", parsed_or(hb->children_json, json_array()), "labels",
                     parsed_or(hb->labels_json, json_object()), "agent_ts",
                     time_or_null(hb->has_agent_ts, hb->agent_ts), "server_ts",
                     time_or_null(true, hb->server_ts));
}

json_t *hb_to_json(const struct heartbeat *hb)
{
    return common_json(hb);
}

json_t *hb_agent_to_json(const struct heartbeat *hb)
{
    json_t *o = common_json(hb);
    json_object_set(o, "last_heartbeat", json_object_get(o, "server_ts"));
    json_object_del(o, "server_ts");
    json_object_set_new(o, "first_seen", time_or_null(true, hb->first_seen));
    json_object_set_new(o, "schema_version", json_string("0"));
    json_object_set_new(o, "team_id", json_string(hb->team_id));
    json_object_set_new(o, "control", json_string(agent_control_names[hb->control]));
    json_object_set_new(
        o, "liveness", json_string(hb_liveness_names[hb_liveness_at(hb->server_ts, aei_now_us())]));
    return o;
}

/* Renders {"<name>": [up to limit rows], "next": cursor or null}. */
static char *render_page(const char *name, const struct heartbeat *rows, size_t n, int limit,
                         json_t *(*row_json)(const struct heartbeat *),
                         json_t *(*cursor)(const struct heartbeat *))
{
    size_t shown = limit >= 0 && n > (size_t)limit ? (size_t)limit : n;
    json_t *list = json_array();
    for (size_t i = 0; i < shown; i++)
        json_array_append_new(list, row_json(&rows[i]));
    json_t *next = shown < n && shown > 0 ? cursor(&rows[shown - 1]) : json_null();
    return json_render(json_pack("{s:o, s:o}", name, list, "next", next));
}

static json_t *agent_cursor(const struct heartbeat *last)
{
    return json_string(last->agent_id);
}

/* A history cursor is "<server_ts>-<id>" of the last row of the page. */
static json_t *history_cursor(const struct heartbeat *last)
{
    char cursor[48];
    snprintf(cursor, sizeof(cursor), "%lld-%lld", (long long)last->server_ts, (long long)last->id);
    return json_string(cursor);
}

char *hb_render_agents(const struct heartbeat *rows, size_t n, int limit)
{
    return render_page("agents", rows, n, limit, hb_agent_to_json, agent_cursor);
}

char *hb_render_agent(const struct heartbeat *row)
{
    return json_render(hb_agent_to_json(row));
}

char *hb_render_history(const struct heartbeat *rows, size_t n, int limit)
{
    return render_page("heartbeats", rows, n, limit, hb_to_json, history_cursor);
}

void hb_copy(struct heartbeat *dst, const struct heartbeat *src)
{
    *dst = *src;
    dst->parent_agent_id = src->parent_agent_id ? dup_or_die(src->parent_agent_id) : NULL;
    dst->children_json = src->children_json ? dup_or_die(src->children_json) : NULL;
    dst->name = src->name ? dup_or_die(src->name) : NULL;
    dst->labels_json = src->labels_json ? dup_or_die(src->labels_json) : NULL;
}

void hb_clear(struct heartbeat *hb)
{
    free(hb->parent_agent_id);
    free(hb->children_json);
    free(hb->name);
    free(hb->labels_json);
    memset(hb, 0, sizeof(*hb));
}
