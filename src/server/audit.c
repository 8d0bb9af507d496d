/* audit.c - the tamper-evident audit log: row encoding, keyed hashes, key file, checkpoints and
 * chain verification */
#include "server/audit.h"
#include "aei/error.h"
#include "common/json.h"
#include "common/path.h"
#include "server/store.h"

#include <blake3.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

const char *const audit_actor_names[] = {"user", "agent", "service"};

const char *const audit_fault_names[] = {
    "ok",           "hash_mismatch",           "broken_link",
    "sequence_gap", "shorter_than_checkpoint", "checkpoint_mismatch"};

int audit_actor_parse(const char *s)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, audit_actor_names[i]) == 0)
            return i;
    return -1;
}

void audit_row_clear(struct audit_row *r)
{
    free(r->context);
    r->context = NULL;
}

/* Refuses what has no single canonical text: reals (their decimal forms are many) and nesting
 * deeper than the API accepts anywhere else. */
static bool canonical_ok(const json_t *v, int depth, char *err, size_t errlen)
{
    if (depth > JSON_MAX_DEPTH) {
        snprintf(err, errlen, "context nests deeper than %d levels", JSON_MAX_DEPTH);
        return false;
    }
    if (json_is_real(v)) {
        snprintf(err, errlen,
                 "context holds the number %.17g: only whole numbers are allowed (write "
                 "fractions as strings)",
                 json_real_value(v));
        return false;
    }
    const char *key;
    json_t *child;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, key,
                            child) if (!canonical_ok(child, depth + 1, err, errlen)) return false;
    } else if (json_is_array(v)) {
        json_array_foreach(v, i,
                           child) if (!canonical_ok(child, depth + 1, err, errlen)) return false;
    }
    return true;
}

char *audit_canonical_value(const json_t *v, char *err, size_t errlen)
{
    if (!json_is_object(v)) {
        snprintf(err, errlen, "context must be a JSON object");
        return NULL;
    }
    if (!canonical_ok(v, 0, err, errlen))
        return NULL;
    char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text)
        abort();
    if (strlen(text) > AUDIT_CONTEXT_MAX) {
        snprintf(err, errlen, "context is %zu bytes; the limit is %d", strlen(text),
                 AUDIT_CONTEXT_MAX);
        free(text);
        return NULL;
    }
    return text;
}

char *audit_canonical(const char *json, size_t len, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *v = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v) {
        snprintf(err, errlen, "context is not JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                 jerr.column);
        return NULL;
    }
    char *text = audit_canonical_value(v, err, errlen);
    json_decref(v);
    return text;
}

/* Each field is its length as 4 bytes big-endian, then its bytes: no field can run into the
 * next, so ("ab", "c") and ("a", "bc") encode differently. Returns the end of what it wrote. */
static uint8_t *put_field(uint8_t *p, const void *data, size_t n)
{
    p[0] = (uint8_t)(n >> 24);
    p[1] = (uint8_t)(n >> 16);
    p[2] = (uint8_t)(n >> 8);
    p[3] = (uint8_t)n;
    memcpy(p + 4, data, n);
    return p + 4 + n;
}

/* Integers are 8 bytes big-endian, two's complement. */
static uint8_t *put_i64(uint8_t *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(u >> (56 - 8 * i));
    return put_field(p, b, 8);
}

/* Writes the row's encoding into out if it holds the whole of it (cap bytes), and returns its
 * length either way. One pass of plain copies: a verification walk encodes every row. */
static size_t encode(const struct audit_row *r, uint8_t *out, size_t cap)
{
    /* The text fields in the order they are encoded; seq and ts go between the first two. */
    const char *text[7] = {
        AUDIT_VERSION,  r->team_id,     audit_actor_names[r->actor_type], r->actor_id,
        r->action_type, r->resource_id, r->context ? r->context : "{}"};
    size_t len[7], need = 10 * 4 + 8 + 8 + AUDIT_HASH_LEN;
    for (int i = 0; i < 7; i++) {
        len[i] = strlen(text[i]);
        need += len[i];
    }
    if (need > cap)
        return need;
    uint8_t *p = put_field(out, text[0], len[0]);
    p = put_field(p, text[1], len[1]);
    p = put_i64(p, r->seq);
    p = put_i64(p, r->ts);
    for (int i = 2; i < 7; i++)
        p = put_field(p, text[i], len[i]);
    put_field(p, r->prev_hash, AUDIT_HASH_LEN);
    return need;
}

void audit_encode(const struct audit_row *r, struct buf *out)
{
    size_t n = encode(r, NULL, 0);
    buf_reserve(out, n);
    encode(r, (uint8_t *)out->data + out->len, n);
    out->len += n;
    out->data[out->len] = '\0'; /* as buf_append() leaves it */
}

void audit_hash(const uint8_t key[AUDIT_KEY_LEN], const struct audit_row *r,
                uint8_t out[AUDIT_HASH_LEN])
{
    /* A stack buffer covers nearly every row without touching the heap. */
    uint8_t stack[1024], *enc = stack;
    size_t n = encode(r, stack, sizeof(stack));
    if (n > sizeof(stack)) {
        enc = malloc(n);
        if (!enc)
            abort();
        encode(r, enc, n);
    }
    blake3_hasher h;
    blake3_hasher_init_keyed(&h, key);
    blake3_hasher_update(&h, enc, n);
    blake3_hasher_finalize(&h, out, AUDIT_HASH_LEN);
    if (enc != stack)
        free(enc);
}

bool audit_row_is_verified(const uint8_t key[AUDIT_KEY_LEN], const struct audit_row *r)
{
    uint8_t h[AUDIT_HASH_LEN];
    audit_hash(key, r, h);
    uint8_t diff = 0;
    for (int i = 0; i < AUDIT_HASH_LEN; i++)
        diff |= h[i] ^ r->hash[i];
    return diff == 0;
}

void audit_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void audit_link(const uint8_t key[AUDIT_KEY_LEN], struct audit_row *r, int64_t *seq,
                uint8_t prev[AUDIT_HASH_LEN], char prev_hex[AUDIT_HEX_LEN + 1],
                char hash_hex[AUDIT_HEX_LEN + 1])
{
    r->seq = ++*seq;
    memcpy(r->prev_hash, prev, AUDIT_HASH_LEN);
    audit_hash(key, r, r->hash);
    memcpy(prev, r->hash, AUDIT_HASH_LEN);
    audit_hex(r->prev_hash, AUDIT_HASH_LEN, prev_hex);
    audit_hex(r->hash, AUDIT_HASH_LEN, hash_hex);
}

/* Each hex digit's value plus one, and 0 for every other byte: a verification walk reads two
 * hashes a row, and one lookup per character is several times faster than comparisons (they
 * were a quarter of the walk). */
static const uint8_t hexdigit[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16};

bool audit_unhex(const char *s, uint8_t *out, size_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    for (size_t i = 0; i < n; i++, p += 2) {
        /* A NUL is not a digit: a short string stops here, never read past its end. */
        uint8_t hi = hexdigit[p[0]];
        if (!hi)
            return false;
        uint8_t lo = hexdigit[p[1]];
        if (!lo)
            return false;
        out[i] = (uint8_t)((hi - 1) << 4 | (lo - 1));
    }
    return *p == '\0';
}

bool audit_key_default_path(const char *db_url, char *out, size_t n)
{
    const char *path = store_sqlite_file(db_url);
    if (path) {
        snprintf(out, n, "%s.audit-key", path);
        return false;
    }
    const char *dir = getenv("AEI_STATE_DIR");
    if (dir && *dir) {
        snprintf(out, n, "%s/audit.key", dir);
        return true;
    }
    const char *state = getenv("XDG_STATE_HOME");
    if (state && *state)
        snprintf(out, n, "%s/aei/audit.key", state);
    else
        snprintf(out, n, "%s/.local/state/aei/audit.key", getenv("HOME") ? getenv("HOME") : ".");
    return true;
}

/* Makes the directories above path (mode 0700) when they are missing. */
static void make_parents(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        mkdir(dir, 0700);
        *p = '/';
    }
}

/* Says why a file could not be created or opened for writing: a missing directory by its name,
 * since the system's "No such file or directory" does not say which part is missing. */
static void cannot_write(const char *what, const char *path, int errnum, char *err, size_t errlen)
{
    char dir[4096];
    if (errnum == ENOENT && path_dir_is_missing(path, dir, sizeof(dir)))
        snprintf(err, errlen,
                 "cannot create %s %s: the directory %s does not exist; create it, or name a "
                 "file in a directory that exists",
                 what, path, dir);
    else
        snprintf(err, errlen, "cannot write %s %s: %s", what, path, strerror(errnum));
}

/* Writes the key to a private temporary file and links it into place, so that another process
 * never reads half a key; if one got there first, its key is the one used. */
static int create_key(const char *path, uint8_t key[AUDIT_KEY_LEN], bool *created, char *err,
                      size_t errlen)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        cannot_write("the audit key", path, errno, err, errlen);
        return AEI_EIO;
    }
    if (getrandom(key, AUDIT_KEY_LEN, 0) != AUDIT_KEY_LEN ||
        write(fd, key, AUDIT_KEY_LEN) != AUDIT_KEY_LEN || fsync(fd) != 0) {
        snprintf(err, errlen, "cannot write the audit key %s: %s", path, strerror(errno));
        close(fd);
        unlink(tmp);
        return AEI_EIO;
    }
    close(fd);
    int linked = link(tmp, path);
    int link_errno = errno;
    unlink(tmp);
    if (linked == 0) {
        *created = true;
        return 0;
    }
    if (link_errno == EEXIST)
        return audit_key_load(path, false, key, NULL, err, errlen);
    snprintf(err, errlen, "cannot create the audit key %s: %s", path, strerror(link_errno));
    return AEI_EIO;
}

int audit_key_load(const char *path, bool create, uint8_t key[AUDIT_KEY_LEN], bool *created,
                   char *err, size_t errlen)
{
    bool made = false;
    if (created)
        *created = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
        int rc = create_key(path, key, &made, err, errlen);
        if (created)
            *created = made;
        return rc;
    }
    if (fd < 0) {
        snprintf(err, errlen, "cannot read the audit key %s: %s", path, strerror(errno));
        return errno == ENOENT ? AEI_ENOTFOUND : AEI_EIO;
    }
    struct stat st;
    int rc = AEI_EINVAL;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot read the audit key %s: %s", path, strerror(errno));
        rc = AEI_EIO;
    } else if (st.st_mode & 077) {
        snprintf(err, errlen,
                 "the audit key %s has mode %04o: others may read it; run chmod 600 %s", path,
                 (unsigned)(st.st_mode & 07777), path);
    } else if (st.st_size != AUDIT_KEY_LEN) {
        snprintf(err, errlen, "the audit key %s is %lld bytes; it must be exactly %d", path,
                 (long long)st.st_size, AUDIT_KEY_LEN);
    } else if (read(fd, key, AUDIT_KEY_LEN) != AUDIT_KEY_LEN) {
        snprintf(err, errlen, "cannot read the audit key %s: %s", path, strerror(errno));
        rc = AEI_EIO;
    } else {
        rc = 0;
    }
    close(fd);
    return rc;
}

int audit_key_open(struct store *s, const char *db_url, const char *path, const char *option,
                   bool create, struct audit_key *k, char *err, size_t errlen)
{
    bool state_dir = false;
    if (path && *path)
        snprintf(k->path, sizeof(k->path), "%s", path);
    else
        state_dir = audit_key_default_path(db_url, k->path, sizeof(k->path));
    k->created = false;
    int rc = audit_key_load(k->path, false, k->bytes, NULL, err, errlen);
    if (rc != AEI_ENOTFOUND || !create)
        return rc;
    /* Every chain is numbered from 1 without gaps, so the heads' sequences add up to the rows. */
    struct audit_head *heads;
    size_t n;
    rc = store_audit_heads(s, &heads, &n);
    if (rc) {
        snprintf(err, errlen,
                 "the audit key %s does not exist, and the store's audit rows could not be "
                 "counted to tell whether a new one may be made: %s",
                 k->path, aei_strerror(rc));
        return rc;
    }
    long long rows = 0;
    for (size_t i = 0; i < n; i++)
        rows += heads[i].seq;
    free(heads);
    if (rows > 0) {
        snprintf(err, errlen,
                 "the audit key %s does not exist, but the store already has %lld audit rows "
                 "signed with another key: point %s at the key file that signed them (a new key "
                 "would leave them unverifiable for good)",
                 k->path, rows, option);
        return AEI_ECONFLICT;
    }
    if (state_dir)
        make_parents(k->path);
    return audit_key_load(k->path, true, k->bytes, &k->created, err, errlen);
}

int audit_checkpoint_append(const char *path, const struct audit_head *heads, size_t n, int64_t now,
                            char *err, size_t errlen)
{
    struct buf b = {0};
    char hex[AUDIT_HEX_LEN + 1];
    for (size_t i = 0; i < n; i++) {
        audit_hex(heads[i].hash, AUDIT_HASH_LEN, hex);
        buf_printf(&b, "v1 %s %" PRId64 " %s %" PRId64 "\n", heads[i].team_id, heads[i].seq, hex,
                   now);
    }
    int rc = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0 || (b.len && write(fd, b.data, b.len) != (ssize_t)b.len) || fsync(fd) != 0) {
        cannot_write("the audit checkpoint", path, errno, err, errlen);
        rc = AEI_EIO;
    }
    if (fd >= 0)
        close(fd);
    buf_free(&b);
    return rc;
}

/* Splits a line at single spaces into exactly n fields (the newline ends the last). */
static bool split_line(char *line, char **f, int n)
{
    line[strcspn(line, "\n")] = '\0';
    for (int i = 0; i < n; i++) {
        f[i] = line;
        size_t len = strcspn(line, " ");
        if (len == 0 || (i < n - 1) != (line[len] == ' '))
            return false;
        line[len] = '\0';
        line += len + (i < n - 1);
    }
    return true;
}

static bool parse_i64(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return false;
    *out = v;
    return true;
}

int audit_checkpoint_read(const char *path, struct audit_head **out, size_t *n, char *err,
                          size_t errlen)
{
    *out = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT) {
            snprintf(err, errlen,
                     "the audit checkpoint %s does not exist: check the path (aeid creates "
                     "its checkpoint file when it starts)",
                     path);
            return AEI_ENOTFOUND;
        }
        snprintf(err, errlen, "cannot read the audit checkpoint %s: %s", path, strerror(errno));
        return AEI_EIO;
    }
    char line[512];
    size_t cap = 0, count = 0;
    struct audit_head *heads = NULL;
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        struct audit_head h = {0};
        char *fld[5];
        int64_t ts;
        if (!split_line(line, fld, 5) || strcmp(fld[0], "v1") != 0 || !id_is_valid(fld[1]) ||
            !parse_i64(fld[2], &h.seq) || h.seq < 1 ||
            !audit_unhex(fld[3], h.hash, AUDIT_HASH_LEN) || !parse_i64(fld[4], &ts)) {
            snprintf(err, errlen,
                     "the audit checkpoint %s: line %d is not \"v1 TEAM SEQ HASH TIME\"", path,
                     lineno);
            rc = AEI_EINVAL;
            break;
        }
        const char *team = fld[1];
        snprintf(h.team_id, sizeof(h.team_id), "%s", team);
        size_t i = 0;
        while (i < count && strcmp(heads[i].team_id, team) != 0)
            i++;
        if (i == count) {
            if (count == cap) {
                cap = cap ? 2 * cap : 16;
                heads = realloc(heads, cap * sizeof(*heads));
                if (!heads)
                    abort();
            }
            heads[count++] = h;
        } else if (h.seq >= heads[i].seq) {
            heads[i] = h;
        }
    }
    fclose(f);
    if (rc) {
        free(heads);
        return rc;
    }
    *out = heads;
    *n = count;
    return 0;
}

bool audit_checkpointer_due(struct audit_checkpointer *c, int64_t rows, int64_t now)
{
    if (!c->path)
        return false;
    c->rows_since += rows;
    if (c->rows_since == 0)
        return false;
    if ((c->every_rows > 0 && c->rows_since >= c->every_rows) ||
        (c->every_us > 0 && now - c->last_us >= c->every_us)) {
        c->rows_since = 0;
        c->last_us = now;
        return true;
    }
    return false;
}

void audit_verify_init(struct audit_verifier *v, const uint8_t key[AUDIT_KEY_LEN],
                       const struct audit_head *checkpoint, size_t n_checkpoint)
{
    memset(v, 0, sizeof(*v));
    v->key = key;
    v->checkpoint = checkpoint;
    v->n_checkpoint = n_checkpoint;
    v->seen = calloc(n_checkpoint ? n_checkpoint : 1, sizeof(*v->seen));
    if (!v->seen)
        abort();
}

static void fault(struct audit_verifier *v, enum audit_fault f, const char *team, int64_t id,
                  int64_t seq)
{
    v->fault = f;
    v->bad_id = id;
    v->bad_seq = seq;
    snprintf(v->bad_team, sizeof(v->bad_team), "%s", team);
}

/* The checks at the end of one team's rows: did they reach the checkpoint's head? */
static void end_team(struct audit_verifier *v)
{
    if (!v->team[0] || !v->head || v->fault)
        return;
    if (v->next_seq - 1 < v->head->seq) {
        fault(v, AUDIT_FAULT_SHORT, v->team, v->last_id, v->next_seq - 1);
        snprintf(v->why, sizeof(v->why),
                 "team %s: the chain ends at sequence %" PRId64
                 " but the checkpoint recorded %" PRId64 ": rows were removed from its end",
                 v->team, v->next_seq - 1, v->head->seq);
    }
}

static void start_team(struct audit_verifier *v, const char *team)
{
    end_team(v);
    snprintf(v->team, sizeof(v->team), "%s", team);
    v->next_seq = 1;
    memset(v->prev, 0, sizeof(v->prev));
    v->head = NULL;
    for (size_t i = 0; i < v->n_checkpoint; i++) {
        if (strcmp(v->checkpoint[i].team_id, team) == 0) {
            v->head = &v->checkpoint[i];
            v->seen[i] = true;
        }
    }
}

bool audit_verify_row(struct audit_verifier *v, const struct audit_row *r)
{
    if (v->fault)
        return false;
    if (strcmp(r->team_id, v->team) != 0)
        start_team(v, r->team_id);
    if (v->fault)
        return false;
    v->checked++;
    v->last_id = r->id;
    if (r->seq != v->next_seq) {
        fault(v, AUDIT_FAULT_GAP, r->team_id, r->id, r->seq);
        snprintf(v->why, sizeof(v->why),
                 "team %s: row %" PRId64 " has sequence %" PRId64 " where %" PRId64
                 " was due: rows are missing or repeated",
                 r->team_id, r->id, r->seq, v->next_seq);
        return false;
    }
    if (memcmp(r->prev_hash, v->prev, AUDIT_HASH_LEN) != 0) {
        fault(v, AUDIT_FAULT_LINK, r->team_id, r->id, r->seq);
        snprintf(v->why, sizeof(v->why),
                 "team %s: row %" PRId64 " (sequence %" PRId64
                 ") does not link to the row before it: rows were moved, replaced or inserted",
                 r->team_id, r->id, r->seq);
        return false;
    }
    if (!audit_row_is_verified(v->key, r)) {
        fault(v, AUDIT_FAULT_HASH, r->team_id, r->id, r->seq);
        snprintf(v->why, sizeof(v->why),
                 "team %s: row %" PRId64 " (sequence %" PRId64
                 ") does not match its hash: it was changed, or hashed without the key",
                 r->team_id, r->id, r->seq);
        return false;
    }
    if (v->head && r->seq == v->head->seq && memcmp(r->hash, v->head->hash, AUDIT_HASH_LEN)) {
        fault(v, AUDIT_FAULT_CHECKPOINT, r->team_id, r->id, r->seq);
        snprintf(v->why, sizeof(v->why),
                 "team %s: row %" PRId64 " (sequence %" PRId64
                 ") is not the row the checkpoint recorded: the chain was rewritten",
                 r->team_id, r->id, r->seq);
        return false;
    }
    memcpy(v->prev, r->hash, AUDIT_HASH_LEN);
    v->next_seq++;
    return true;
}

void audit_verify_finish(struct audit_verifier *v)
{
    end_team(v);
    for (size_t i = 0; i < v->n_checkpoint && !v->fault; i++) {
        if (v->seen[i])
            continue;
        fault(v, AUDIT_FAULT_SHORT, v->checkpoint[i].team_id, 0, 0);
        snprintf(v->why, sizeof(v->why),
                 "team %s: no rows, but the checkpoint recorded sequence %" PRId64
                 ": the team's rows were removed",
                 v->checkpoint[i].team_id, v->checkpoint[i].seq);
    }
    free(v->seen);
    v->seen = NULL;
}
