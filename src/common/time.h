/* time.h - server clock and RFC 3339 times in integer microseconds */
#ifndef AEI_COMMON_TIME_H
#define AEI_COMMON_TIME_H

#include <stdbool.h>
#include <stdint.h>

/* Length of a buffer that holds any formatted time, "2026-11-24T15:00:00.123456Z" and NUL. */
#define AEI_TIME_LEN 32

/* Wall-clock time in microseconds since the Unix epoch (UTC). */
int64_t aei_now_us(void);
/* Monotonic time in microseconds, for measuring durations. */
int64_t aei_mono_us(void);
/* Writes `us` as RFC 3339 UTC with six fractional digits into out[AEI_TIME_LEN]. */
void aei_time_format(int64_t us, char *out);
/* Parses an RFC 3339 date-time ("2026-11-24T15:00:00.5+01:00"); fractions past microseconds are
 * truncated. Returns false if `s` is not one; *us is written only on success. */
bool aei_time_parse(const char *s, int64_t *us);

#endif
