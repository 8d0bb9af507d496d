/* test_health.c - the health page's per-second rates and its ring of recent errors */
#include "server/health.h"

#include <criterion/criterion.h>
#include <string.h>

Test(health_rate, counts_the_seconds_of_each_window)
{
    struct health_rate r = {0};
    health_rate_add(&r, 1000, 3);
    health_rate_add(&r, 1000, 2); /* the same second adds up */
    health_rate_add(&r, 1005, 10);
    health_rate_add(&r, 1009, 5);
    cr_assert_float_eq(health_rate_per_second(&r, 1009, 10), 2.0, 1e-9); /* 20 in 10 s */
    cr_assert_float_eq(health_rate_per_second(&r, 1014, 10), 1.5, 1e-9); /* 1000 has left it */
    cr_assert_float_eq(health_rate_per_second(&r, 1009, 60), 20.0 / 60, 1e-9);
    cr_assert_float_eq(health_rate_per_second(&r, 1069, 60), 0.0, 1e-9);
}

Test(health_rate, a_slot_a_minute_old_starts_afresh)
{
    struct health_rate r = {0};
    health_rate_add(&r, 100, 7);
    /* 160 falls in 100's slot: it must not inherit 100's 7. */
    health_rate_add(&r, 160, 1);
    cr_assert_float_eq(health_rate_per_second(&r, 160, 60), 1.0 / 60, 1e-9);
    cr_assert_float_eq(health_rate_per_second(&r, 160, 1), 1.0, 1e-9);
}

Test(health_errors, keeps_the_last_fifty_with_their_codes)
{
    struct health h;
    health_init(&h, "sqlite:/tmp/x.db");
    cr_assert_str_eq(h.store_backend, "sqlite");
    for (int i = 0; i < HEALTH_ERRORS_MAX + 5; i++) {
        char body[128];
        int n = snprintf(body, sizeof(body),
                         "{\"error\":{\"code\":\"not_found\",\"message\":\"no agent %d\"}}", i);
        health_note_answer(&h, "GET", "/api/v0/agents/{agent_id}", 404, body, (size_t)n);
    }
    cr_assert_eq(h.n_errors, HEALTH_ERRORS_MAX + 5);
    /* The newest sits just before the next slot; the oldest kept is number 5. */
    const struct health_error *newest = &h.errors[(h.n_errors - 1) % HEALTH_ERRORS_MAX];
    const struct health_error *oldest = &h.errors[h.n_errors % HEALTH_ERRORS_MAX];
    cr_assert_str_eq(newest->message, "no agent 54");
    cr_assert_str_eq(oldest->message, "no agent 5");
    cr_assert_str_eq(newest->code, "not_found");
    cr_assert_str_eq(newest->where, "GET /api/v0/agents/{agent_id}");
}

Test(health_errors, an_answer_that_is_not_an_error_document_keeps_its_status)
{
    struct health h;
    health_init(&h, "postgresql://localhost/aei");
    cr_assert_str_eq(h.store_backend, "postgres");
    health_note_answer(&h, "GET", "dashboard", 404, "<html>not here</html>", 21);
    cr_assert_str_eq(h.errors[0].code, "http_404");
    cr_assert_str_eq(h.errors[0].message, "");
    health_note_failure(&h, "retention", -5);
    cr_assert_eq(h.errors[1].status, 0);
    cr_assert_str_eq(h.errors[1].where, "retention");
}

Test(health_render, the_document_holds_every_part)
{
    struct health h;
    health_init(&h, "sqlite:/tmp/x.db");
    health_count_heartbeats(&h, 4);
    struct health_ws ws = {.connections = 2, .subscribed = 1, .agents_all = 1};
    char *text = health_render(&h, &ws,
                               "{\"probe\":{\"ok\":true,\"query_ms\":0.1},"
                               "\"audit_sample\":{\"ok\":true,\"query_ms\":0.2,\"rows\":[]}}");
    json_t *doc = json_loads(text, 0, NULL);
    cr_assert_not_null(doc, "%s", text);
    cr_assert_eq(
        json_integer_value(json_object_get(json_object_get(doc, "websocket"), "connections")), 2);
    cr_assert(json_is_true(
        json_object_get(json_object_get(json_object_get(doc, "store"), "probe"), "ok")));
    json_t *hb = json_object_get(json_object_get(doc, "rates"), "heartbeats");
    cr_assert_float_eq(json_real_value(json_object_get(hb, "per_second_10s")), 0.4, 1e-9);
    cr_assert(json_is_array(json_object_get(json_object_get(doc, "audit_sample"), "rows")));
    json_decref(doc);
    free(text);
}
