/* test_json.c - request-body parsing and its error reports */
#include "common/json.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static json_t *parse(const char *text, struct problem *pb)
{
    return json_parse_body(text, strlen(text), pb);
}

Test(json, reports_line_and_column_of_malformed_json)
{
    struct problem pb;
    cr_assert_null(parse("{\n  \"a\": 1,\n  \"b\": }", &pb));
    cr_assert_str_eq(pb.code, "malformed_json");
    cr_assert_eq(pb.line, 3);
    cr_assert_eq(pb.column, 8);
    cr_assert(strstr(pb.message, "line 3, column 8"), "%s", pb.message);
}

Test(json, empty_and_blank_bodies_are_their_own_error)
{
    struct problem pb;
    cr_assert_null(parse("", &pb));
    cr_assert_str_eq(pb.code, "empty_body");
    cr_assert_null(parse(" \r\n\t", &pb));
    cr_assert_str_eq(pb.code, "empty_body");
}

Test(json, rejects_duplicates_truncation_bad_utf8_and_huge_numbers)
{
    const char *bad[] = {
        "{\"a\":1,\"a\":2}",
        "{\"a\":",
        "{\"a\":\"\xff\xfe\"}",
        "{\"a\":1e400}",
        "{\"a\":123456789012345678901234567890}",
        "{\"a\":\"\\u0000\"}",
        "[1,2,,3]",
        "{\"a\":1}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct problem pb;
        cr_assert_null(parse(bad[i], &pb), "accepted %s", bad[i]);
        cr_assert_str_eq(pb.code, "malformed_json");
        cr_assert_gt(strlen(pb.message), 20);
    }
}

Test(json, limits_nesting_without_crashing)
{
    size_t n = 100000;
    char *deep = malloc(n + 1);
    memset(deep, '[', n);
    deep[n] = '\0';
    struct problem pb;
    cr_assert_null(parse(deep, &pb));
    cr_assert_str_eq(pb.code, "malformed_json");
    free(deep);

    char nested[2 * (JSON_MAX_DEPTH + 1) + 1];
    memset(nested, '[', JSON_MAX_DEPTH + 1);
    memset(nested + JSON_MAX_DEPTH + 1, ']', JSON_MAX_DEPTH + 1);
    nested[sizeof(nested) - 1] = '\0';
    cr_assert_null(parse(nested, &pb));
    cr_assert(strstr(pb.message, "nested deeper"), "%s", pb.message);
    nested[JSON_MAX_DEPTH] = ' ';
    nested[JSON_MAX_DEPTH + 1] = ' ';
    json_t *ok = parse(nested, &pb);
    cr_assert_not_null(ok, "%d levels must pass", JSON_MAX_DEPTH);
    json_decref(ok);
}

Test(json, describes_values_for_messages)
{
    char out[64];
    json_t *s = json_string("high");
    json_describe(s, out, sizeof(out));
    cr_assert_str_eq(out, "\"high\"");
    json_decref(s);
    s = json_string("a very long string that goes on and on and on and on forever");
    json_describe(s, out, sizeof(out));
    cr_assert(strstr(out, "...\""), "%s", out);
    json_decref(s);
    json_t *o = json_object();
    json_describe(o, out, sizeof(out));
    cr_assert_str_eq(out, "an object");
    json_decref(o);
}

Test(json, validates_agent_ids)
{
    char max[130];
    memset(max, 'a', 128);
    max[128] = '\0';
    cr_assert(id_is_valid("researcher-1"));
    cr_assert(id_is_valid("team.a:agent_2-x"));
    cr_assert(id_is_valid(max));
    max[128] = 'a';
    max[129] = '\0';
    cr_assert_not(id_is_valid(max));
    cr_assert_not(id_is_valid(""));
    cr_assert_not(id_is_valid("a b"));
    cr_assert_not(id_is_valid("a/b"));
    cr_assert_not(id_is_valid("caf\xc3\xa9"));
}

Test(json, lossy_strings_replace_what_is_not_utf8)
{
    const char *cases[][2] = {
        {"plain", "plain"},
        {"caf\xc3\xa9", "caf\xc3\xa9"},
        {"\xff\xfe", "??"},
        {"a\xc0\xaf", "a??"},       /* overlong '/' */
        {"\xed\xa0\x80x", "???x"},  /* a UTF-16 surrogate */
        {"cut \xe2\x82", "cut ??"}, /* a sequence cut short */
        {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *v = json_string_lossy(cases[i][0]);
        cr_assert_not_null(v, "case %zu", i);
        cr_assert_str_eq(json_string_value(v), cases[i][1], "case %zu", i);
        json_decref(v);
    }
}

Test(json, a_body_of_nul_bytes_is_malformed_not_empty)
{
    struct problem pb;
    cr_assert_null(json_parse_body("\0\0\0", 3, &pb));
    cr_assert_str_eq(pb.code, "malformed_json");
}

Test(json, written_strings_read_back_the_same)
{
    const char *cases[] = {"",
                           "plain",
                           "quote \" and \\ backslash",
                           "tab\tnew\nline\r",
                           "bell\x07 esc\x1b",
                           "caf\xc3\xa9 \xf0\x9f\x98\x80"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct buf out = {0};
        json_write_string(&out, cases[i]);
        json_t *v = json_loads(out.data, JSON_DECODE_ANY, NULL);
        cr_assert(json_is_string(v), "case %zu: %s is not a JSON string", i, out.data);
        cr_assert_str_eq(json_string_value(v), cases[i], "case %zu", i);
        json_decref(v);
        buf_free(&out);
    }
}

Test(json, written_reals_look_like_janssons)
{
    const double values[] = {0, 42, 0.73, 6.16806e-6, 1e21, -3.5, 123456789012.5, 1e-300};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        struct buf out = {0};
        json_write_real(&out, values[i]);
        json_t *real = json_real(values[i]);
        char *expected = json_dumps(real, JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
        cr_assert_str_eq(out.data, expected, "value %zu", i);
        free(expected);
        json_decref(real);
        buf_free(&out);
    }
}

/* The short form (decimals of up to 6 places) against jansson, on the values heartbeats carry
 * and around the edges where the exponent form starts. */
Test(json, written_short_reals_look_like_janssons)
{
    const double edges[] = {-0.0,  1e-4, 9.99999e-5, 0.0001234,     1e15,  999999999999999, 1e14,
                            0.1,   0.2,  0.3,        1.0 / 3,       2.675, -0.07,           100.0,
                            99.99, 4999, 0.000001,   123456.123456, 1e-7,  0.1234567};
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 200000; i++) {
        double v;
        if (i < (int)(sizeof(edges) / sizeof(edges[0]))) {
            v = edges[i];
        } else {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
            double scale[] = {1, 10, 100, 1000, 1e4, 1e6, 1e9};
            v = (double)(x % 100000000) / scale[x % 7];
            if (x % 5 == 0)
                v = (double)x / 1e6 * (x % 2 ? 1 : -1);
        }
        struct buf out = {0};
        json_write_real(&out, v);
        json_t *real = json_real(v);
        char *expected = json_dumps(real, JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
        cr_assert_str_eq(out.data, expected, "value %.17g", v);
        free(expected);
        json_decref(real);
        buf_free(&out);
    }
}

Test(json, utf8_validity_over_a_length)
{
    const char ascii[] = "a plain ASCII text longer than eight bytes, twice over";
    cr_assert(utf8_valid(ascii, sizeof(ascii) - 1));
    cr_assert(utf8_valid("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 and more ASCII", 30));
    cr_assert(utf8_valid("", 0));
    /* Cut short by the length, though more bytes follow in memory. */
    cr_assert_not(utf8_valid("12345678\xe2\x82\xac", 10));
    cr_assert_not(utf8_valid("\xc0\xaf", 2), "overlong");
    cr_assert_not(utf8_valid("\xed\xa0\x80", 3), "a surrogate");
    cr_assert_not(utf8_valid("\xf4\x90\x80\x80", 4), "past U+10FFFF");
    cr_assert_not(utf8_valid("abcdefgh\xff", 9));
}

/* The same text as jansson writes (labels are compared as text): every ASCII character, alone
 * and in a run. Form feed and backspace came out as \u000c and \u0008, and hex digits in lower
 * case, until fuzz_traces found it. */
Test(json, written_strings_look_like_janssons)
{
    char all[128];
    for (int c = 1; c < 128; c++) {
        char one[2] = {(char)c, 0};
        all[c - 1] = (char)c;
        struct buf out = {0};
        json_write_string(&out, one);
        json_t *v = json_string(one);
        char *expected = json_dumps(v, JSON_ENCODE_ANY);
        cr_assert_str_eq(out.data, expected, "character %d", c);
        free(expected);
        json_decref(v);
        buf_free(&out);
    }
    all[127] = '\0';
    struct buf out = {0};
    json_write_string(&out, all);
    json_t *v = json_string(all);
    char *expected = json_dumps(v, JSON_ENCODE_ANY);
    cr_assert_str_eq(out.data, expected);
    free(expected);
    json_decref(v);
    buf_free(&out);
}

Test(json, written_strings_of_a_length_need_no_nul)
{
    struct buf out = {0};
    json_write_string_n(&out,
                        "a\"b\\c\nd\x01"
                        "tail not written",
                        8);
    cr_assert_eq(out.len, strlen("\"a\\\"b\\\\c\\nd\\u0001\""));
    cr_assert(memcmp(out.data, "\"a\\\"b\\\\c\\nd\\u0001\"", out.len) == 0, "%.*s", (int)out.len,
              out.data);
    buf_free(&out);
}
