/* units.h - numbers with units on the command line of the `aei` tool */
#ifndef AEI_CLI_UNITS_H
#define AEI_CLI_UNITS_H

/*
 * Parses a duration: a non-negative decimal number of seconds, optionally followed by one unit,
 * "ms", "s", "m" or "h" ("90", "1.5s", "10m", "1h"). Returns 0 and sets *seconds, or AEI_EINVAL
 * (nothing written) for anything else, including signs, exponents, infinities and NaN.
 */
int units_duration(const char *s, double *seconds);

#endif
