/* test_feed.c - reading the hub's messages: types, sequence numbers and echoed timestamps */
#include "cli/feed.h"

#include "aei/error.h"
#include "common/time.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXMSG 16

struct seen {
    int n;
    struct feed_msg m[MAXMSG];
};

static void collect(void *arg, const struct feed_msg *m)
{
    struct seen *s = arg;
    cr_assert_lt(s->n, MAXMSG);
    s->m[s->n++] = *m;
}

/* Scans a heap copy of exactly the string's length, so that the sanitizer build catches any
 * read past the frame. */
static int scan(const char *json, struct seen *s)
{
    size_t len = strlen(json);
    char *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    memcpy(copy, json, len);
    memset(s, 0, sizeof(*s));
    int rc = feed_scan(copy, len, collect, s);
    free(copy);
    return rc;
}

static int64_t t(const char *s)
{
    int64_t us;
    cr_assert(aei_time_parse(s, &us), "%s", s);
    return us;
}

static const char delta[] =
    "{\"type\":\"delta\",\"epoch\":\"00ff00ff00ff00ff\",\"seq\":42,\"agent_id\":\"bench-000001\","
    "\"changed\":{\"status\":\"idle\",\"metrics\":{\"cpu_pct\":1.5},"
    "\"agent_ts\":\"2026-11-24T15:00:00.123456Z\",\"last_heartbeat\":\"2026-11-24T15:00:01Z\"},"
    "\"server_ts\":\"2026-11-24T15:00:02.000001Z\"}";

Test(feed, one_delta)
{
    struct seen s;
    cr_assert_eq(scan(delta, &s), 1);
    cr_assert_eq(s.m[0].type, FEED_DELTA);
    cr_assert(s.m[0].has_ts);
    cr_assert_eq(s.m[0].ts_us, t("2026-11-24T15:00:00.123456Z"));
    cr_assert(s.m[0].has_seq);
    cr_assert_eq(s.m[0].seq, 42);
}

Test(feed, key_order_does_not_matter)
{
    struct seen s;
    cr_assert_eq(scan("{\"changed\":{\"agent_ts\":\"2026-11-24T15:00:00Z\"},\"seq\":7,"
                      "\"type\":\"delta\"}",
                      &s),
                 1);
    cr_assert_eq(s.m[0].type, FEED_DELTA);
    cr_assert(s.m[0].has_ts);
    cr_assert_eq(s.m[0].seq, 7);
}

Test(feed, array_of_messages_is_counted_once_each)
{
    char buf[2048];
    snprintf(buf, sizeof(buf),
             " [ %s , {\"type\":\"totals\",\"seq\":43,\"agents\":3},%s,"
             "{\"type\":\"event\",\"seq\":44,\"event\":\"agent.stale\"} ] ",
             delta, delta);
    struct seen s;
    cr_assert_eq(scan(buf, &s), 4);
    cr_assert_eq(s.m[0].type, FEED_DELTA);
    cr_assert_eq(s.m[1].type, FEED_TOTALS);
    cr_assert_eq(s.m[2].type, FEED_DELTA);
    cr_assert_eq(s.m[3].type, FEED_EVENT);
    cr_assert_eq(s.m[3].seq, 44);
    cr_assert_eq(scan("[]", &s), 0);
}

Test(feed, snapshot_agent_ts_is_not_a_delta)
{
    struct seen s;
    cr_assert_eq(scan("{\"type\":\"snapshot\",\"seq\":9,\"agents\":[{\"agent_id\":\"a\","
                      "\"agent_ts\":\"2026-11-24T15:00:00Z\",\"changed\":{\"agent_ts\":"
                      "\"2026-11-24T15:00:00Z\"}}],\"totals\":{\"agents\":1}}",
                      &s),
                 1);
    cr_assert_eq(s.m[0].type, FEED_SNAPSHOT);
    cr_assert(!s.m[0].has_ts);
    cr_assert_eq(s.m[0].seq, 9);
}

Test(feed, agent_ts_only_inside_changed_at_the_top)
{
    struct seen s;
    /* agent_ts at the top level, or nested deeper than changed, is not the echoed time. */
    cr_assert_eq(scan("{\"type\":\"delta\",\"agent_ts\":\"2026-11-24T15:00:00Z\","
                      "\"changed\":{\"labels\":{\"agent_ts\":\"2026-11-24T15:00:00Z\"}}}",
                      &s),
                 1);
    cr_assert_eq(s.m[0].type, FEED_DELTA);
    cr_assert(!s.m[0].has_ts);
    /* A liveness change carries no agent_ts; null is not a time either. */
    cr_assert_eq(scan("{\"type\":\"delta\",\"seq\":5,\"changed\":{\"liveness\":\"stale\"}}", &s),
                 1);
    cr_assert(!s.m[0].has_ts);
    cr_assert_eq(scan("{\"type\":\"delta\",\"changed\":{\"agent_ts\":null}}", &s), 1);
    cr_assert(!s.m[0].has_ts);
}

Test(feed, strings_with_escapes_and_brackets)
{
    struct seen s;
    cr_assert_eq(scan("{\"type\":\"delta\",\"changed\":{\"name\":\"a \\\"}]\\\\\",\"agent_ts\":"
                      "\"2026-11-24T15:00:00.5Z\"},\"x\":[1,{\"y\":\"}\"}]}",
                      &s),
                 1);
    cr_assert(s.m[0].has_ts);
    cr_assert_eq(s.m[0].ts_us, t("2026-11-24T15:00:00.500000Z"));
}

Test(feed, relayed_heartbeat)
{
    struct seen s;
    cr_assert_eq(scan("{\"agent_id\":\"bench-000003\",\"status\":\"idle\",\"metrics\":{\"cpu_pct\":"
                      "3},\"timestamp\":\"2026-11-24T15:00:00.000001Z\",\"schema_version\":\"0\"}",
                      &s),
                 1);
    cr_assert_eq(s.m[0].type, FEED_HEARTBEAT);
    cr_assert(s.m[0].has_ts);
    cr_assert_eq(s.m[0].ts_us, t("2026-11-24T15:00:00.000001Z"));
    cr_assert(!s.m[0].has_seq);
}

Test(feed, other_types)
{
    struct seen s;
    cr_assert_eq(scan("{\"type\":\"subscribed\",\"topic\":\"agents:all\",\"seq\":3}", &s), 1);
    cr_assert_eq(s.m[0].type, FEED_SUBSCRIBED);
    cr_assert_eq(scan("{\"type\":\"error\",\"code\":\"invalid_json\"}", &s), 1);
    cr_assert_eq(s.m[0].type, FEED_ERROR);
    cr_assert_eq(scan("{\"type\":\"pong\",\"timestamp\":\"2026-11-24T15:00:00Z\"}", &s), 1);
    cr_assert_eq(s.m[0].type, FEED_OTHER);
    cr_assert(!s.m[0].has_ts, "only a relayed heartbeat (no type) counts its timestamp");
    cr_assert_eq(scan("{}", &s), 1);
    cr_assert_eq(s.m[0].type, FEED_OTHER);
}

Test(feed, seq_must_be_a_plain_whole_number)
{
    struct seen s;
    cr_assert_eq(scan("{\"type\":\"delta\",\"seq\":1.5}", &s), 1);
    cr_assert(!s.m[0].has_seq);
    cr_assert_eq(scan("{\"type\":\"delta\",\"seq\":1e3}", &s), 1);
    cr_assert(!s.m[0].has_seq);
    cr_assert_eq(scan("{\"type\":\"delta\",\"seq\":\"7\"}", &s), 1);
    cr_assert(!s.m[0].has_seq);
    cr_assert_eq(scan("{\"type\":\"delta\",\"seq\":18446744073709551615999}", &s), 1);
    cr_assert(!s.m[0].has_seq);
}

Test(feed, malformed_frames)
{
    static const char *bad[] = {
        "",
        "   ",
        "{",
        "{\"type\":\"delta\"",
        "{\"type\":\"delta\",}",
        "{\"type\" \"delta\"}",
        "{\"type\":\"delta\"} x",
        "[{\"type\":\"delta\"},]",
        "[{\"type\":\"delta\"}",
        "[1]",
        "\"delta\"",
        "{\"changed\":{\"agent_ts\":\"2026-11-24T15:00:00Z\"}",
        "{\"a\":\"unterminated}",
        "{\"a\":\"escaped end\\\"}",
        "{\"a\":[1,2}",
        "{\"a\":}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct seen s;
        cr_assert_eq(scan(bad[i], &s), AEI_EINVAL, "accepted: %s", bad[i]);
    }
}

Test(feed, messages_before_a_fault_are_reported)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "[%s,{\"type\":", delta);
    struct seen s;
    cr_assert_eq(scan(buf, &s), AEI_EINVAL);
    cr_assert_eq(s.n, 1);
    cr_assert_eq(s.m[0].type, FEED_DELTA);
}

Test(feed, echoed_times_are_rfc3339_of_the_string_alone)
{
    /* The time is parsed from the string's bytes only, not from what follows it in the frame. */
    struct seen s;
    cr_assert_eq(
        scan("{\"type\":\"delta\",\"changed\":{\"agent_ts\":\"2026-11-24 16:00:00+01:00\"},"
             "\"seq\":1}",
             &s),
        1);
    cr_assert(s.m[0].has_ts);
    cr_assert_eq(s.m[0].ts_us, t("2026-11-24T15:00:00Z"));
    static const char *bad[] = {"2026-11-24T15:00:00", "2026-11-24T15:00:00Zx",
                                "2025-02-29T00:00:00Z", "2026-11-24T15:00:00+1:00"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char buf[256];
        snprintf(buf, sizeof(buf), "{\"timestamp\":\"%s\"}", bad[i]);
        cr_assert_eq(scan(buf, &s), 1);
        cr_assert_eq(s.m[0].type, FEED_HEARTBEAT);
        cr_assert(!s.m[0].has_ts, "took %s for a time", bad[i]);
    }
}
