/* auth.c - bearer token checks (RFC 6750) */
#include "server/auth.h"
#include "aei/error.h"

#include <blake3.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

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

enum auth_result auth_bearer(const char *authorization, const char **token, size_t *len)
{
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return AUTH_MISSING;
    const char *t = authorization + 7;
    while (*t == ' ')
        t++;
    size_t n = strlen(t);
    while (n && t[n - 1] == ' ')
        n--;
    *token = t;
    *len = n;
    return AUTH_OK;
}

enum auth_result auth_check(const struct auth *a, const char *authorization)
{
    const char *token;
    size_t len;
    if (auth_bearer(authorization, &token, &len) != AUTH_OK)
        return AUTH_MISSING;
    /* Comparing fixed-size hashes keeps the time independent of the token and its length. */
    uint8_t got[32];
    hash(token, len, got);
    uint8_t diff = 0;
    for (int i = 0; i < 32; i++)
        diff |= got[i] ^ a->token_hash[i];
    return diff == 0 && len > 0 ? AUTH_OK : AUTH_INVALID;
}

void auth_token_hash(const char *token, size_t len, uint8_t out[32])
{
    hash(token, len, out);
}

static const char base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* The checksum of the len bytes at s: 4 bytes of their BLAKE3 hash in AUTH_TOKEN_CHECK base62
 * digits (62^6 > 2^32, so every value fits). */
static void checksum(const char *s, size_t len, char out[AUTH_TOKEN_CHECK + 1])
{
    uint8_t h[32];
    hash(s, len, h);
    uint32_t v = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    for (int i = AUTH_TOKEN_CHECK - 1; i >= 0; i--) {
        out[i] = base62[v % 62];
        v /= 62;
    }
    out[AUTH_TOKEN_CHECK] = '\0';
}

int auth_token_new(const char *kind, char *out)
{
    if (strcmp(kind, "user") != 0 && strcmp(kind, "agent") != 0)
        return AEI_EINVAL;
    uint8_t rnd[AUTH_TOKEN_RANDOM];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        return AEI_EIO;
    int n = snprintf(out, AUTH_TOKEN_MAX + 1, "aei_%s_", kind);
    /* 248 of 256 byte values map evenly onto 62 digits; the rest are drawn again. */
    for (int i = 0; i < AUTH_TOKEN_RANDOM; i++) {
        uint8_t b = rnd[i];
        while (b >= 248)
            if (getrandom(&b, 1, 0) != 1)
                return AEI_EIO;
        out[n++] = base62[b % 62];
    }
    checksum(out, (size_t)n, out + n);
    return 0;
}

bool auth_token_is_wellformed(const char *token, char *why, size_t n)
{
    size_t len = strlen(token), prefix;
    if (strncmp(token, "aei_user_", 9) == 0)
        prefix = 9;
    else if (strncmp(token, "aei_agent_", 10) == 0)
        prefix = 10;
    else {
        snprintf(why, n, "a token starts with aei_user_ or aei_agent_");
        return false;
    }
    if (len != prefix + AUTH_TOKEN_RANDOM + AUTH_TOKEN_CHECK ||
        strspn(token + prefix, base62) != len - prefix) {
        snprintf(why, n, "a token has %d letters and digits after aei_<kind>_; this one has %zu",
                 AUTH_TOKEN_RANDOM + AUTH_TOKEN_CHECK, len - prefix);
        return false;
    }
    char want[AUTH_TOKEN_CHECK + 1];
    checksum(token, len - AUTH_TOKEN_CHECK, want);
    if (strcmp(want, token + len - AUTH_TOKEN_CHECK) != 0) {
        snprintf(why, n, "the token's checksum does not match: it was mistyped or cut short");
        return false;
    }
    return true;
}

void auth_token_id(const uint8_t h[32], char *out)
{
    static const char digits[] = "0123456789abcdef";
    memcpy(out, "tk_", 3);
    for (int i = 0; i < 6; i++) {
        out[3 + 2 * i] = digits[h[i] >> 4];
        out[4 + 2 * i] = digits[h[i] & 15];
    }
    out[AUTH_TOKEN_ID_LEN] = '\0';
}
