/* principal.c - who is calling: the bootstrap admin, a user or an agent, found from its token */
#include "server/principal.h"
#include "aei/error.h"
#include "common/json.h"
#include "common/log.h"
#include "server/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const role_names[ROLE_COUNT] = {"agent", "viewer", "operator", "admin"};

/* Direct-mapped: a token's slot is chosen by its hash, and a newer token in the same slot
 * replaces the older one, which is looked up again when it next comes. */
#define CACHE_SLOTS 4096

struct cached {
    uint8_t hash[32];
    int64_t until; /* monotonic time the answer is good until; 0 for an empty slot */
    bool known;    /* a valid token, of `who` */
    struct principal who;
};

struct principals {
    struct auth bootstrap;
    struct store *store;
    struct cached cache[CACHE_SLOTS];
};

const char *principal_scope(const struct principal *p)
{
    return p->role == ROLE_ADMIN ? NULL : p->team;
}

bool principal_sees(const struct principal *p, const char *team)
{
    return p->role == ROLE_ADMIN || strcmp(p->team, team) == 0;
}

char *principal_render(const struct principal *p)
{
    const char *kind = p->bootstrap ? "admin" : audit_actor_names[p->type];
    return json_render(json_pack("{s:s, s:s, s:s, s:s, s:s?}", "id", p->id, "kind", kind, "team",
                                 p->team, "role", role_names[p->role], "token_id",
                                 p->token_id[0] ? p->token_id : NULL));
}

struct principals *principals_new(const char *bootstrap_token, struct store *store)
{
    struct principals *ps = calloc(1, sizeof(*ps));
    if (!ps)
        abort();
    auth_init(&ps->bootstrap, bootstrap_token);
    ps->store = store;
    return ps;
}

void principals_free(struct principals *ps)
{
    free(ps);
}

/* The principal a stored token speaks for; false if the token is revoked or its role unknown. */
static bool from_token(const struct token_rec *t, struct principal *p)
{
    memset(p, 0, sizeof(*p));
    if (t->revoked)
        return false;
    snprintf(p->team, sizeof(p->team), "%s", t->team_id);
    snprintf(p->token_id, sizeof(p->token_id), "%s", t->token_id);
    if (strcmp(t->kind, "agent") == 0) {
        p->type = AUDIT_ACTOR_AGENT;
        p->role = ROLE_AGENT;
        snprintf(p->id, sizeof(p->id), "%s", t->agent_id);
        return true;
    }
    p->type = AUDIT_ACTOR_USER;
    snprintf(p->id, sizeof(p->id), "%s", t->user_id);
    for (int r = ROLE_VIEWER; r < ROLE_COUNT; r++)
        if (strcmp(t->role, role_names[r]) == 0) {
            p->role = (enum role)r;
            return true;
        }
    return false;
}

enum auth_result principals_authenticate(struct principals *ps, const char *authorization,
                                         int64_t now_mono, struct principal *out)
{
    const char *token;
    size_t len;
    if (auth_bearer(authorization, &token, &len) != AUTH_OK)
        return AUTH_MISSING;
    if (auth_check(&ps->bootstrap, authorization) == AUTH_OK) {
        *out = (struct principal){.type = AUDIT_ACTOR_USER, .role = ROLE_ADMIN, .bootstrap = true};
        snprintf(out->id, sizeof(out->id), "bootstrap");
        snprintf(out->team, sizeof(out->team), "default");
        return AUTH_OK;
    }
    char copy[AUTH_TOKEN_MAX + 1], why[160];
    if (len > AUTH_TOKEN_MAX)
        return AUTH_INVALID;
    memcpy(copy, token, len);
    copy[len] = '\0';
    if (!auth_token_is_wellformed(copy, why, sizeof(why)))
        return AUTH_INVALID;
    uint8_t hash[32];
    auth_token_hash(copy, len, hash);
    struct cached *c = &ps->cache[(hash[0] | hash[1] << 8) % CACHE_SLOTS];
    if (c->until <= now_mono || memcmp(c->hash, hash, 32) != 0) {
        struct token_rec t;
        int rc = store_find_token(ps->store, hash, &t);
        if (rc && rc != AEI_ENOTFOUND) {
            log_error("auth: looking up a token failed: the store answered %d", rc);
            return AUTH_UNAVAILABLE;
        }
        memcpy(c->hash, hash, 32);
        c->known = rc == 0 && from_token(&t, &c->who);
        c->until = now_mono + PRINCIPAL_CACHE_US;
    }
    if (!c->known)
        return AUTH_INVALID;
    *out = c->who;
    return AUTH_OK;
}
