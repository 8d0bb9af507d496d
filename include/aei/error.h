/* error.h - error codes shared by the server, the SDK and the command-line tool */
#ifndef AEI_ERROR_H
#define AEI_ERROR_H

/* Commands return 0 or one of these negative codes. */
enum aei_error {
    AEI_OK = 0,
    AEI_EINVAL = -1,       /* bad argument or input */
    AEI_ENOMEM = -2,       /* out of memory */
    AEI_ENOTFOUND = -3,    /* no such object */
    AEI_EUNAVAILABLE = -4, /* the store or server cannot be reached now; retry later */
    AEI_EIO = -5,          /* an I/O or database error that retrying will not fix */
    AEI_ECONFLICT = -6,    /* the object exists already or changed underneath */
};

/* Returns a static, human-readable description of an AEI_E* code. */
const char *aei_strerror(int code);

#endif
