/* auth.c - bearer token checks (RFC 6750) */
#include "server/auth.h"

#include <blake3.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

static void hash(const char *token, size_t len, uint8_t out[32])
{
    blake3_hasher h;
    blake3_hasher_init(&h);
    blake3_hasher_update(&h, token, len);
    blake3_hasher_finalize(&h, out, 32);
}

void auth_init(struct auth *a, const char *token)
{
    hash(token, strlen(token), a->token_hash);
}

enum auth_result auth_check(const struct auth *a, const char *authorization)
{
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return AUTH_MISSING;
    const char *token = authorization + 7;
    while (*token == ' ')
        token++;
    size_t len = strlen(token);
    while (len && token[len - 1] == ' ')
        len--;
    /* Comparing fixed-size hashes keeps the time independent of the token and its length. */
    uint8_t got[32];
    hash(token, len, got);
    uint8_t diff = 0;
    for (int i = 0; i < 32; i++)
        diff |= got[i] ^ a->token_hash[i];
    return diff == 0 && len > 0 ? AUTH_OK : AUTH_INVALID;
}
