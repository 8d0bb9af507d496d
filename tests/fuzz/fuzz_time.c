/* fuzz_time.c - libFuzzer target: RFC 3339 parsing, and format/parse round trips */
#include "common/time.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[64];
    if (size >= sizeof(s))
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    int64_t us;
    if (!aei_time_parse(s, &us))
        return 0;
    /* Whatever parses formats to a time that parses back to the same instant. */
    char out[AEI_TIME_LEN];
    int64_t again;
    aei_time_format(us, out);
    if (!aei_time_parse(out, &again) || again != us)
        abort();
    return 0;
}
