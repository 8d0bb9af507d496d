/* error.c - descriptions of the AEI_E* codes */
#include "aei/error.h"

const char *aei_strerror(int code)
{
    switch (code) {
    case AEI_OK:
        return "success";
    case AEI_EINVAL:
        return "invalid argument";
    case AEI_ENOMEM:
        return "out of memory";
    case AEI_ENOTFOUND:
        return "not found";
    case AEI_EUNAVAILABLE:
        return "temporarily unavailable, retry later";
    case AEI_EIO:
        return "input/output or database error";
    case AEI_ECONFLICT:
        return "conflict";
    }
    return "unknown error";
}
