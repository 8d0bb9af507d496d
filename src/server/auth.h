/* auth.h - bearer token checks (RFC 6750) */
#ifndef AEI_SERVER_AUTH_H
#define AEI_SERVER_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Issued tokens are "aei_<kind>_" + AUTH_TOKEN_RANDOM base62 characters + a checksum of
 * AUTH_TOKEN_CHECK base62 characters (the first 4 bytes of the BLAKE3 hash of what precedes
 * it), so that a mistyped or truncated token is recognised without asking the store. */
#define AUTH_TOKEN_RANDOM 30
#define AUTH_TOKEN_CHECK 6
#define AUTH_TOKEN_MAX 64
/* A token's public name: "tk_" and 12 hex digits of its hash. */
#define AUTH_TOKEN_ID_LEN 15

/* The accepted token, kept only as its BLAKE3 hash. */
struct auth {
    uint8_t token_hash[32];
};

/* AUTH_UNAVAILABLE: the token could not be looked up (the store is down). */
enum auth_result { AUTH_OK, AUTH_MISSING, AUTH_INVALID, AUTH_UNAVAILABLE };

/* Remembers the hash of the bootstrap admin token. */
void auth_init(struct auth *a, const char *token);
/* Checks an Authorization header value (NULL when absent). A header that is absent or not of
 * the Bearer scheme is AUTH_MISSING; a Bearer token that does not match is AUTH_INVALID. The
 * comparison takes the same time whatever the token. */
enum auth_result auth_check(const struct auth *a, const char *authorization);
/* Finds the token in an Authorization header value: *token and *len, or AUTH_MISSING. */
enum auth_result auth_bearer(const char *authorization, const char **token, size_t *len);

/* Hashes a token as the store keeps it (BLAKE3, 32 bytes). */
void auth_token_hash(const char *token, size_t len, uint8_t out[32]);
/* Writes a new random token of kind "user" or "agent" into out[AUTH_TOKEN_MAX + 1]. Returns 0,
 * or AEI_EINVAL for another kind, AEI_EIO if the system gives no randomness. */
int auth_token_new(const char *kind, char *out);
/* Whether token has the issued form with a matching checksum; if not, why says what is wrong. */
bool auth_token_is_wellformed(const char *token, char *why, size_t n);
/* Writes the public id of the token whose hash is given into out[AUTH_TOKEN_ID_LEN + 1]. */
void auth_token_id(const uint8_t hash[32], char *out);

#endif
