/* audit.h - the tamper-evident audit log: row encoding, keyed hashes, key file, checkpoints and
 * chain verification (docs/audit.md describes the encoding byte by byte) */
#ifndef AEI_SERVER_AUDIT_H
#define AEI_SERVER_AUDIT_H

#include "common/buf.h"
#include "server/heartbeat.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUDIT_KEY_LEN 32
#define AUDIT_HASH_LEN 32
#define AUDIT_HEX_LEN (2 * AUDIT_HASH_LEN)
/* The version tag that starts every encoded row; a new encoding gets a new tag. */
#define AUDIT_VERSION "aei-audit-v1"
#define AUDIT_ACTION_MAX 64
#define AUDIT_RESOURCE_MAX 256
/* The largest canonical context accepted, in bytes. */
#define AUDIT_CONTEXT_MAX 65536

enum audit_actor { AUDIT_ACTOR_USER, AUDIT_ACTOR_AGENT, AUDIT_ACTOR_SERVICE };
/* "user", "agent", "service", indexed by enum audit_actor. */
extern const char *const audit_actor_names[];
/* Returns the enum audit_actor named s, or -1. */
int audit_actor_parse(const char *s);

/* One audit row. The store sets id, seq, prev_hash and hash when it appends the row. */
struct audit_row {
    int64_t id;  /* the store's row id (0 before it is stored) */
    int64_t seq; /* 1, 2, 3... per team, without gaps */
    int64_t ts;  /* server time, microseconds since the Unix epoch */
    char team_id[AEI_ID_MAX + 1];
    enum audit_actor actor_type;
    char actor_id[AEI_ID_MAX + 1];
    char action_type[AUDIT_ACTION_MAX + 1];
    char resource_id[AUDIT_RESOURCE_MAX + 1];
    char *context; /* canonical JSON object (audit_canonical()); owned unless said otherwise */
    uint8_t prev_hash[AUDIT_HASH_LEN]; /* the previous row's hash; zeros for seq 1 */
    uint8_t hash[AUDIT_HASH_LEN];      /* immutable_hash */
};

/* Frees what a row owns (its context); the row may be reused. */
void audit_row_clear(struct audit_row *r);

/* Returns the canonical text of a JSON object given as text: keys sorted by their UTF-8 bytes,
 * no whitespace, strings as jansson writes them (UTF-8 kept, '"', '\\' and control characters
 * escaped), integers in plain decimal. Reals, duplicate keys, NUL characters, nesting deeper
 * than 32 and texts over AUDIT_CONTEXT_MAX are refused: NULL with a reason in err. Caller
 * frees. */
char *audit_canonical(const char *json, size_t len, char *err, size_t errlen);
/* The same for a parsed value (borrowed). */
char *audit_canonical_value(const json_t *v, char *err, size_t errlen);

/* Appends the row's encoding (the bytes that are hashed) to out. */
void audit_encode(const struct audit_row *r, struct buf *out);
/* Computes the keyed BLAKE3 hash of the row's encoding into out. */
void audit_hash(const uint8_t key[AUDIT_KEY_LEN], const struct audit_row *r,
                uint8_t out[AUDIT_HASH_LEN]);
/* Whether the row's hash matches its content under key. */
bool audit_row_is_verified(const uint8_t key[AUDIT_KEY_LEN], const struct audit_row *r);

/* Writes n bytes as lowercase hex into out[2n + 1]. */
void audit_hex(const uint8_t *in, size_t n, char *out);
/* Links row r after a chain's head (seq, prev): sets its seq, prev_hash and hash (under key),
 * moves the head to it, and writes both hashes in hex for the store. */
void audit_link(const uint8_t key[AUDIT_KEY_LEN], struct audit_row *r, int64_t *seq,
                uint8_t prev[AUDIT_HASH_LEN], char prev_hex[AUDIT_HEX_LEN + 1],
                char hash_hex[AUDIT_HEX_LEN + 1]);
/* Reads exactly 2n hex digits into out; false if s is anything else. */
bool audit_unhex(const char *s, uint8_t *out, size_t n);

/* Writes the default key file for a store URL into out: next to a SQLite file (PATH.audit-key),
 * else $AEI_STATE_DIR/audit.key, or ${XDG_STATE_HOME:-$HOME/.local/state}/aei/audit.key. Returns
 * whether it is in that state directory, which AEI may create; a directory that a user named
 * is never created for them. */
bool audit_key_default_path(const char *db_url, char *out, size_t n);
/* Reads the 32-byte key at path; if there is no such file and create is set, makes one (mode
 * 0600, 32 bytes from getrandom; its directory must exist) and sets *created. A key file that
 * others may read or write, or that is not 32 bytes long, is refused. Returns 0 or a negative
 * AEI_E* code with a one-line reason in err. Programs open their key with audit_key_open(),
 * which decides whether a missing key may be made. */
int audit_key_load(const char *path, bool create, uint8_t key[AUDIT_KEY_LEN], bool *created,
                   char *err, size_t errlen);

/* A store's audit key, as audit_key_open() found it. */
struct audit_key {
    uint8_t bytes[AUDIT_KEY_LEN];
    char path[4096]; /* the file it was read from, or created as */
    bool created;
};
struct store;
/* Reads the audit key of the store s (at db_url) from path, or from the default path when path
 * is NULL or empty. With create, a missing key file is made, but only while the store holds no
 * audit rows: rows signed with another key could never be verified again, and audit rows
 * cannot be deleted, so that is refused (AEI_ECONFLICT) naming option, the setting that points
 * at the key ("--audit-key"). Returns 0 or a negative AEI_E* code with a one-line reason in
 * err. */
int audit_key_open(struct store *s, const char *db_url, const char *path, const char *option,
                   bool create, struct audit_key *k, char *err, size_t errlen);

/* The head of one team's chain. */
struct audit_head {
    char team_id[AEI_ID_MAX + 1];
    int64_t seq;
    uint8_t hash[AUDIT_HASH_LEN];
};

/* Appends heads to the checkpoint file at path, one line each ("v1 TEAM SEQ HASH TIME"), and
 * syncs it; the file is created (mode 0600) if missing, so n = 0 creates it or checks that it
 * can be written. Its directory must exist. Returns 0 or a negative AEI_E* code with a reason in
 * err. */
int audit_checkpoint_append(const char *path, const struct audit_head *heads, size_t n, int64_t now,
                            char *err, size_t errlen);
/* Reads a checkpoint file: the furthest head recorded for each team. A missing file is
 * AEI_ENOTFOUND, not an empty checkpoint: a mistyped path must not turn the check of removed
 * rows off (aeid creates its checkpoint file when it starts). Caller frees *out with free(). */
int audit_checkpoint_read(const char *path, struct audit_head **out, size_t *n, char *err,
                          size_t errlen);

/* Decides when heads are due for the checkpoint file: every `every_rows` appended rows or
 * `every_us` microseconds, whichever comes first. */
struct audit_checkpointer {
    const char *path; /* NULL: no checkpoint file */
    int64_t every_rows, every_us;
    int64_t rows_since, last_us;
};
/* Counts appended rows; true when the heads should be written now. */
bool audit_checkpointer_due(struct audit_checkpointer *c, int64_t rows, int64_t now);

/* Why verification stopped at a row. */
enum audit_fault {
    AUDIT_FAULT_NONE,
    AUDIT_FAULT_HASH,       /* the row's hash does not match its content under the key */
    AUDIT_FAULT_LINK,       /* prev_hash is not the previous row's hash */
    AUDIT_FAULT_GAP,        /* the sequence skips or repeats a number */
    AUDIT_FAULT_SHORT,      /* the chain ends before the checkpoint's head */
    AUDIT_FAULT_CHECKPOINT, /* the row at the checkpoint's head has another hash */
};
/* "ok", "hash_mismatch", "broken_link", "sequence_gap", "shorter_than_checkpoint",
 * "checkpoint_mismatch", indexed by enum audit_fault. */
extern const char *const audit_fault_names[];

/* Walks rows in (team, seq) order and stops at the first bad one. */
struct audit_verifier {
    const uint8_t *key;
    const struct audit_head *checkpoint; /* borrowed, may be NULL */
    size_t n_checkpoint;
    bool *seen;              /* which checkpoint teams had rows */
    int64_t checked;         /* rows checked, the bad one included */
    enum audit_fault fault;  /* the first fault found */
    int64_t bad_id, bad_seq; /* ... its row (id 0 when rows are missing) */
    char bad_team[AEI_ID_MAX + 1];
    char why[320]; /* a sentence for people */
    /* The team being walked. */
    char team[AEI_ID_MAX + 1];
    int64_t next_seq, last_id;
    uint8_t prev[AUDIT_HASH_LEN];
    const struct audit_head *head; /* the checkpoint's head for this team, or NULL */
};
/* Starts a walk; key and checkpoint are borrowed until audit_verify_finish(). */
void audit_verify_init(struct audit_verifier *v, const uint8_t key[AUDIT_KEY_LEN],
                       const struct audit_head *checkpoint, size_t n_checkpoint);
/* Checks the next row; returns false once a fault has been found (stop walking). */
bool audit_verify_row(struct audit_verifier *v, const struct audit_row *r);
/* Ends the walk: checks the last team and teams that the checkpoint knows and the rows lack. */
void audit_verify_finish(struct audit_verifier *v);

#endif
