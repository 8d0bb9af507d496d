/* test_time.c - RFC 3339 parsing and formatting */
#include "common/time.h"

#include <criterion/criterion.h>

Test(time, formats_utc_with_microseconds)
{
    char out[AEI_TIME_LEN];
    aei_time_format(0, out);
    cr_assert_str_eq(out, "1970-01-01T00:00:00.000000Z");
    aei_time_format(1795532400123456LL, out);
    cr_assert_str_eq(out, "2026-11-24T15:00:00.123456Z");
    aei_time_format(-1, out);
    cr_assert_str_eq(out, "1969-12-31T23:59:59.999999Z");
}

Test(time, parses_what_it_formats)
{
    int64_t samples[] = {0, 1, 951782400000000LL, 1795532400123456LL, 4102444799999999LL};
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        char out[AEI_TIME_LEN];
        int64_t back = -42;
        aei_time_format(samples[i], out);
        cr_assert(aei_time_parse(out, &back), "%s", out);
        cr_assert_eq(back, samples[i], "%s", out);
    }
}

Test(time, applies_offsets_and_fraction_lengths)
{
    int64_t a, b;
    cr_assert(aei_time_parse("2026-11-24T16:00:00.5+01:00", &a));
    cr_assert(aei_time_parse("2026-11-24T15:00:00.500000Z", &b));
    cr_assert_eq(a, b);
    cr_assert(aei_time_parse("2026-11-24t14:30:00.123456789-00:30", &a));
    cr_assert(aei_time_parse("2026-11-24T15:00:00.123456Z", &b));
    cr_assert_eq(a, b, "fractions past microseconds are truncated");
    cr_assert(aei_time_parse("2024-02-29T00:00:00Z", &a), "leap day");
    cr_assert(aei_time_parse("2024-02-29 00:00:00z", &b), "a space for T, z for Z");
    cr_assert_eq(a, b);
}

Test(time, rejects_what_is_not_rfc3339)
{
    const char *bad[] = {"",
                         "2026-11-24",
                         "2026-11-24T15:00:00",
                         "2026-13-01T00:00:00Z",
                         "2026-02-29T00:00:00Z",
                         "2026-11-24T24:00:00Z",
                         "2026-11-24T15:00:00.Z",
                         "2026-11-24T15:00:00Zjunk",
                         "2026-11-24T15:00:00+0100",
                         "2026-11-24T15:00:00+1:00",
                         "2026-11-24T15:00:00+01:60",
                         "20261124T150000Z",
                         "1e9",
                         "2026-11-24T15:60:00Z"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v = 7;
        cr_assert_not(aei_time_parse(bad[i], &v), "accepted \"%s\"", bad[i]);
        cr_assert_eq(v, 7, "wrote the output on failure for \"%s\"", bad[i]);
    }
}

Test(time, refuses_offsets_that_leave_years_0000_to_9999)
{
    int64_t v = 7;
    cr_assert_not(aei_time_parse("0000-01-01T00:00:00+00:01", &v));
    cr_assert_not(aei_time_parse("9999-12-31T23:59:59-01:00", &v));
    cr_assert_eq(v, 7);
    cr_assert(aei_time_parse("0000-01-01T00:00:00Z", &v));
    cr_assert(aei_time_parse("9999-12-31T23:59:59.999999Z", &v));
    char out[AEI_TIME_LEN];
    aei_time_format(v, out);
    cr_assert_str_eq(out, "9999-12-31T23:59:59.999999Z");
}
