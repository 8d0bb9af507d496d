/* audit_api.h - the audit routes' work on the reader thread: a page of rows, each verified on
 * read, a whole verification, and the periodic checkpoint of the chain heads */
#ifndef AEI_SERVER_AUDIT_API_H
#define AEI_SERVER_AUDIT_API_H

#include "server/store.h"

/* What the server keeps for the audit log: its key and checkpoint file, and the heads last
 * written there (touched by the reader thread alone). */
struct audit_state {
    uint8_t key[AUDIT_KEY_LEN];
    const char *checkpoint; /* NULL: none */
    struct audit_head *written;
    size_t n_written;
};

/* The inputs of an audit job: a page query with its filter strings. */
struct audit_job {
    struct audit_state *state; /* borrowed from the server */
    struct audit_query q;      /* its strings point into the arrays below */
    char actor[AEI_ID_MAX + 1], action[AUDIT_ACTION_MAX + 1], resource[AUDIT_RESOURCE_MAX + 1];
};

/* GET /api/v0/audit: up to q.limit rows, newest first, each with "verified"; sets *body (the
 * JSON answer, caller frees). Returns 0 or a store error. */
int audit_api_page(struct store *s, struct audit_job *a, char **body);
/* GET /api/v0/audit/verify: walks every chain (or q.team_id's alone) against the key and the
 * checkpoint file. */
int audit_api_verify(struct store *s, struct audit_job *a, char **body);
/* Appends the heads that moved since the last call to the checkpoint file. */
int audit_api_checkpoint(struct store *s, struct audit_state *st);

#endif
