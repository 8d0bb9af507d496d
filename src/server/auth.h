/* auth.h - bearer token checks (RFC 6750) */
#ifndef AEI_SERVER_AUTH_H
#define AEI_SERVER_AUTH_H

#include <stdint.h>

/* The accepted token, kept only as its BLAKE3 hash. */
struct auth {
    uint8_t token_hash[32];
};

enum auth_result { AUTH_OK, AUTH_MISSING, AUTH_INVALID };

/* Remembers the hash of the bootstrap admin token. */
void auth_init(struct auth *a, const char *token);
/* Checks an Authorization header value (NULL when absent). A header that is absent or not of
 * the Bearer scheme is AUTH_MISSING; a Bearer token that does not match is AUTH_INVALID. The
 * comparison takes the same time whatever the token. */
enum auth_result auth_check(const struct auth *a, const char *authorization);

#endif
