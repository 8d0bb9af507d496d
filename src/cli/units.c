/* units.c - numbers with units on the command line of the `aei` tool */
#include "cli/units.h"

#include "aei/error.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

int units_duration(const char *s, double *seconds)
{
    /* Digits with at most one decimal point, read by hand: strtod would also take "1e3",
     * "inf", hexadecimal and leading white space. */
    double v = 0, scale = 1;
    bool dot = false;
    int digits = 0;
    const char *p = s;
    for (; *p; p++) {
        if (*p >= '0' && *p <= '9') {
            if (dot) {
                scale /= 10;
                v += (*p - '0') * scale;
            } else {
                v = v * 10 + (*p - '0');
            }
            digits++;
        } else if (*p == '.' && !dot) {
            dot = true;
        } else {
            break;
        }
    }
    if (digits == 0 || !isfinite(v))
        return AEI_EINVAL;
    double mult;
    if (*p == '\0' || strcmp(p, "s") == 0)
        mult = 1;
    else if (strcmp(p, "ms") == 0)
        mult = 1e-3;
    else if (strcmp(p, "m") == 0)
        mult = 60;
    else if (strcmp(p, "h") == 0)
        mult = 3600;
    else
        return AEI_EINVAL;
    *seconds = v * mult;
    return 0;
}
