/* principal.h - who is calling: the bootstrap admin, a user or an agent, found from its token */
#ifndef AEI_SERVER_PRINCIPAL_H
#define AEI_SERVER_PRINCIPAL_H

#include "server/audit.h"
#include "server/auth.h"
#include "server/heartbeat.h"

#include <stdbool.h>
#include <stdint.h>

/* Ordered: each role of a person may do what the ones before it may. An agent's token speaks
 * for its agent alone. */
enum role { ROLE_AGENT, ROLE_VIEWER, ROLE_OPERATOR, ROLE_ADMIN, ROLE_COUNT };
extern const char *const role_names[ROLE_COUNT];

struct principal {
    enum audit_actor type; /* user (people, the bootstrap admin included) or agent */
    enum role role;
    bool bootstrap;                       /* the AEI_TOKEN admin */
    char id[AEI_ID_MAX + 1];              /* "bootstrap", the user's id, or the agent's id */
    char team[AEI_ID_MAX + 1];            /* the team it belongs to */
    char token_id[AUTH_TOKEN_ID_LEN + 1]; /* the token it used; "" for the bootstrap token */
};

/* The team a principal is confined to, or NULL when it sees every team (admins). */
const char *principal_scope(const struct principal *p);
/* Whether the principal may see what belongs to `team`. */
bool principal_sees(const struct principal *p, const char *team);
/* Renders {"id","kind","team","role","token_id"} (GET /api/v0/me). Caller frees. */
char *principal_render(const struct principal *p);

struct store;
struct principals;

/* Returns a token checker: the bootstrap admin's token, and the issued tokens looked up in
 * `store` (borrowed; used only from the calling thread). Answers are remembered for
 * PRINCIPAL_CACHE_US, so a revoked token may work that much longer. */
#define PRINCIPAL_CACHE_US 2000000
struct principals *principals_new(const char *bootstrap_token, struct store *store);
void principals_free(struct principals *ps);
/* Finds who an Authorization header value (NULL when absent) speaks for, at monotonic time
 * now_mono. The bootstrap token is compared in constant time; issued tokens are recognised by
 * their hash, and a malformed one is refused without a lookup. */
enum auth_result principals_authenticate(struct principals *ps, const char *authorization,
                                         int64_t now_mono, struct principal *out);

#endif
