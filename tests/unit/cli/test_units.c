/* test_units.c - durations on the command line: seconds, or a number with ms, s, m or h */
#include "cli/units.h"

#include "aei/error.h"

#include <criterion/criterion.h>

static double dur(const char *s)
{
    double v = -1;
    cr_assert_eq(units_duration(s, &v), 0, "rejected: %s", s);
    return v;
}

Test(units, plain_seconds)
{
    cr_assert_float_eq(dur("10"), 10.0, 1e-12);
    cr_assert_float_eq(dur("0"), 0.0, 1e-12);
    cr_assert_float_eq(dur("2.5"), 2.5, 1e-12);
    cr_assert_float_eq(dur(".5"), 0.5, 1e-12);
    cr_assert_float_eq(dur("7."), 7.0, 1e-12);
}

Test(units, with_units)
{
    cr_assert_float_eq(dur("90s"), 90.0, 1e-12);
    cr_assert_float_eq(dur("500ms"), 0.5, 1e-12);
    cr_assert_float_eq(dur("2m"), 120.0, 1e-12);
    cr_assert_float_eq(dur("1.5m"), 90.0, 1e-12);
    cr_assert_float_eq(dur("1h"), 3600.0, 1e-12);
    cr_assert_float_eq(dur("0.25h"), 900.0, 1e-12);
}

Test(units, rejects_anything_else)
{
    static const char *bad[] = {"",     "s",   "h",  "-1",   "+1",   "1e3", "inf", "nan",
                                "0x10", " 1",  "1 ", "1hh",  "1 h",  "1H",  "1d",  "1.2.3",
                                ".",    "1sm", "ms", "1min", "10ss", "1m1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        double v = 42;
        cr_assert_eq(units_duration(bad[i], &v), AEI_EINVAL, "accepted: '%s'", bad[i]);
        cr_assert_eq(v, 42, "written on failure: '%s'", bad[i]);
    }
}
