/* test_audit.c - audit row encoding and hashing (with the docs/audit.md test vector), canonical
 * context, key file, checkpoints, verification in memory, and token forms */
#include "aei/error.h"
#include "server/audit.h"
#include "server/auth.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const uint8_t *test_key(void)
{
    static uint8_t key[AUDIT_KEY_LEN];
    for (int i = 0; i < AUDIT_KEY_LEN; i++)
        key[i] = (uint8_t)i;
    return key;
}

static char *canonical(const char *json)
{
    char err[256] = "";
    char *c = audit_canonical(json, strlen(json), err, sizeof(err));
    cr_assert_not_null(c, "canonical(%s): %s", json, err);
    return c;
}

/* The worked example of docs/audit.md. */
static struct audit_row example(void)
{
    struct audit_row r = {.seq = 1, .ts = 1764000000000000LL, .actor_type = AUDIT_ACTOR_USER};
    strcpy(r.team_id, "team-a");
    strcpy(r.actor_id, "alice");
    strcpy(r.action_type, "token_create");
    strcpy(r.resource_id, "tk_0123456789ab");
    r.context =
        canonical("{ \"reason\": \"onboarding\", \"after\": {\"role\": \"operator\", \"n\": 3} }");
    return r;
}

static void hash_hex(const struct audit_row *r, char *out)
{
    uint8_t h[AUDIT_HASH_LEN];
    audit_hash(test_key(), r, h);
    audit_hex(h, AUDIT_HASH_LEN, out);
}

Test(audit, test_vector_of_the_documentation)
{
    struct audit_row r = example();
    cr_assert_str_eq(r.context,
                     "{\"after\":{\"n\":3,\"role\":\"operator\"},\"reason\":\"onboarding\"}");
    struct buf b = {0};
    audit_encode(&r, &b);
    char *hex = malloc(2 * b.len + 1);
    audit_hex((const uint8_t *)b.data, b.len, hex);
    /* Cross-checked with Python's struct module and b3sum --keyed (docs/audit.md). */
    cr_assert_str_eq(
        hex, "0000000c6165692d61756469742d7631"
             "000000067465616d2d61"
             "000000080000000000000001"
             "000000080006445941624000"
             "0000000475736572"
             "00000005616c696365"
             "0000000c746f6b656e5f637265617465"
             "0000000f746b5f303132333435363738396162"
             "000000397b226166746572223a7b226e223a332c22726f6c65223a226f70657261746f72227d2c2272"
             "6561736f6e223a226f6e626f617264696e67227d"
             "000000200000000000000000000000000000000000000000000000000000000000000000");
    cr_assert_eq(b.len, 199);
    char h[AUDIT_HEX_LEN + 1];
    hash_hex(&r, h);
    cr_assert_str_eq(h, "88285e3926364282e2d5fb718f6b4098e192712069883c7673372774f09948a3");
    /* The second row of the example links to the first. */
    audit_hash(test_key(), &r, r.prev_hash);
    r.seq = 2;
    r.ts++;
    strcpy(r.action_type, "token_revoke");
    free(r.context);
    r.context =
        canonical("{\"before\":{\"revoked\":null},\"after\":{\"revoked\":1764000000000001}}");
    hash_hex(&r, h);
    cr_assert_str_eq(h, "9b78e398849b983dac43f88509214ad5c8f4d0b1b38d462db5f9a2fbfd2b5902");
    free(hex);
    buf_free(&b);
    audit_row_clear(&r);
}

Test(audit, fields_cannot_run_into_each_other)
{
    struct audit_row a = example(), b = example();
    strcpy(a.actor_id, "ab");
    strcpy(a.action_type, "c");
    strcpy(b.actor_id, "a");
    strcpy(b.action_type, "bc");
    char ha[AUDIT_HEX_LEN + 1], hb[AUDIT_HEX_LEN + 1];
    hash_hex(&a, ha);
    hash_hex(&b, hb);
    cr_assert_str_neq(ha, hb);
    /* The same across the team/actor boundary and the resource/context boundary. */
    strcpy(a.team_id, "ab");
    strcpy(b.team_id, "a");
    strcpy(a.actor_id, "c");
    strcpy(b.actor_id, "bc");
    strcpy(a.action_type, "x");
    strcpy(b.action_type, "x");
    hash_hex(&a, ha);
    hash_hex(&b, hb);
    cr_assert_str_neq(ha, hb);
    audit_row_clear(&a);
    audit_row_clear(&b);
}

Test(audit, key_order_and_whitespace_do_not_change_the_hash)
{
    struct audit_row a = example(), b = example();
    free(a.context);
    free(b.context);
    a.context = canonical("{\"b\":[1,2,{\"y\":\"\\u00e9\",\"x\":null}],\"a\":true}");
    b.context = canonical(
        " {\n  \"a\" : true ,\t\"b\" : [ 1 , 2 , { \"x\" : null , \"y\" : \"é\" } ]\n}\n");
    cr_assert_str_eq(a.context, b.context);
    cr_assert_str_eq(a.context, "{\"a\":true,\"b\":[1,2,{\"x\":null,\"y\":\"é\"}]}");
    char ha[AUDIT_HEX_LEN + 1], hb[AUDIT_HEX_LEN + 1];
    hash_hex(&a, ha);
    hash_hex(&b, hb);
    cr_assert_str_eq(ha, hb);
    /* A different value does change it. */
    free(b.context);
    b.context = canonical("{\"a\":false,\"b\":[1,2,{\"x\":null,\"y\":\"é\"}]}");
    hash_hex(&b, hb);
    cr_assert_str_neq(ha, hb);
    audit_row_clear(&a);
    audit_row_clear(&b);
}

Test(audit, contexts_without_one_canonical_form_are_refused)
{
    const char *bad[][2] = {
        {"{\"cost\":0.5}", "only whole numbers"},
        {"{\"n\":1e3}", "only whole numbers"},
        {"[1,2]", "must be a JSON object"},
        {"\"text\"", "not JSON"}, /* jansson refuses bare strings without JSON_DECODE_ANY */
        {"{\"a\":1,\"a\":2}", "not JSON"},
        {"{\"a\":", "not JSON"},
        {"{\"a\":\"\\u0000\"}", "not JSON"},
        {"{\"n\":123456789012345678901234567890}", "not JSON"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        char *c = audit_canonical(bad[i][0], strlen(bad[i][0]), err, sizeof(err));
        cr_assert_null(c, "%s was accepted as %s", bad[i][0], c);
        cr_assert(strstr(err, bad[i][1]), "%s: %s", bad[i][0], err);
    }
    /* Deep nesting is refused with a reason. */
    char deep[200] = "{\"a\":";
    for (int i = 0; i < 40; i++)
        strcat(deep, "[");
    for (int i = 0; i < 40; i++)
        strcat(deep, "]");
    strcat(deep, "}");
    char err[256];
    cr_assert_null(audit_canonical(deep, strlen(deep), err, sizeof(err)));
    cr_assert(strstr(err, "deeper"), "%s", err);
    /* Negative and zero integers have one form. */
    char *c = canonical("{\"a\":-0,\"b\":-12}");
    cr_assert_str_eq(c, "{\"a\":0,\"b\":-12}");
    free(c);
}

/* A chain of n rows of one team under the test key. */
static struct audit_row *chain(const char *team, int n)
{
    struct audit_row *rows = calloc((size_t)n, sizeof(*rows));
    for (int i = 0; i < n; i++) {
        struct audit_row *r = &rows[i];
        r->id = 100 + i;
        r->seq = i + 1;
        r->ts = 1000 + i;
        snprintf(r->team_id, sizeof(r->team_id), "%s", team);
        strcpy(r->actor_id, "alice");
        strcpy(r->action_type, "pause");
        snprintf(r->resource_id, sizeof(r->resource_id), "agent-%d", i);
        r->context = canonical("{\"reason\":\"test\"}");
        if (i)
            memcpy(r->prev_hash, rows[i - 1].hash, AUDIT_HASH_LEN);
        audit_hash(test_key(), r, r->hash);
    }
    return rows;
}

static struct audit_verifier walk(struct audit_row *rows, int n, const struct audit_head *cp,
                                  size_t ncp)
{
    struct audit_verifier v;
    audit_verify_init(&v, test_key(), cp, ncp);
    for (int i = 0; i < n && audit_verify_row(&v, &rows[i]); i++)
        ;
    audit_verify_finish(&v);
    return v;
}

static void free_chain(struct audit_row *rows, int n)
{
    for (int i = 0; i < n; i++)
        audit_row_clear(&rows[i]);
    free(rows);
}

Test(audit, verification_in_memory)
{
    struct audit_row *rows = chain("t1", 5);
    struct audit_verifier v = walk(rows, 5, NULL, 0);
    cr_assert_eq(v.fault, AUDIT_FAULT_NONE, "%s", v.why);
    cr_assert_eq(v.checked, 5);
    /* A wrong key is a hash mismatch on the first row. */
    struct audit_verifier w;
    uint8_t other[AUDIT_KEY_LEN] = {1};
    audit_verify_init(&w, other, NULL, 0);
    cr_assert_not(audit_verify_row(&w, &rows[0]));
    audit_verify_finish(&w);
    cr_assert_eq(w.fault, AUDIT_FAULT_HASH);
    cr_assert_eq(w.bad_id, 100);
    /* A checkpoint further than the rows. */
    struct audit_head cp = {.team_id = "t1", .seq = 7};
    v = walk(rows, 5, &cp, 1);
    cr_assert_eq(v.fault, AUDIT_FAULT_SHORT);
    cr_assert_str_eq(audit_fault_names[v.fault], "shorter_than_checkpoint");
    /* A checkpoint at row 3 with another hash. */
    cp.seq = 3;
    v = walk(rows, 5, &cp, 1);
    cr_assert_eq(v.fault, AUDIT_FAULT_CHECKPOINT);
    cr_assert_eq(v.bad_id, 102);
    memcpy(cp.hash, rows[2].hash, AUDIT_HASH_LEN);
    v = walk(rows, 5, &cp, 1);
    cr_assert_eq(v.fault, AUDIT_FAULT_NONE, "%s", v.why);
    /* A team the checkpoint knows and the rows lack. */
    struct audit_head gone = {.team_id = "t0", .seq = 1};
    v = walk(rows, 5, &gone, 1);
    cr_assert_eq(v.fault, AUDIT_FAULT_SHORT);
    cr_assert_str_eq(v.bad_team, "t0");
    free_chain(rows, 5);
}

Test(audit, key_file)
{
    char dir[128], path[160];
    snprintf(dir, sizeof(dir), "/tmp/aei-key-%d", (int)getpid());
    snprintf(path, sizeof(path), "%s/sub/audit.key", dir);
    uint8_t k1[AUDIT_KEY_LEN], k2[AUDIT_KEY_LEN];
    char err[320] = "";
    bool created;
    cr_assert_eq(audit_key_load(path, false, k1, &created, err, sizeof(err)), AEI_ENOTFOUND);
    /* A directory that is not there is named, not made: it may be a mistyped path. */
    cr_assert_eq(audit_key_load(path, true, k1, &created, err, sizeof(err)), AEI_EIO);
    cr_assert(strstr(err, "the directory /tmp/aei-key-") && strstr(err, "/sub does not exist"),
              "%s", err);
    struct stat st;
    cr_assert_neq(stat(dir, &st), 0, "the key's directories were created");
    cr_assert_eq(mkdir(dir, 0700), 0);
    char sub[160];
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    cr_assert_eq(mkdir(sub, 0700), 0);
    cr_assert_eq(audit_key_load(path, true, k1, &created, err, sizeof(err)), 0, "%s", err);
    cr_assert(created);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    cr_assert_eq(st.st_size, AUDIT_KEY_LEN);
    cr_assert_eq(audit_key_load(path, true, k2, &created, err, sizeof(err)), 0, "%s", err);
    cr_assert_not(created);
    cr_assert_eq(memcmp(k1, k2, AUDIT_KEY_LEN), 0);
    chmod(path, 0644);
    cr_assert_eq(audit_key_load(path, true, k2, &created, err, sizeof(err)), AEI_EINVAL);
    cr_assert(strstr(err, "mode 0644") && strstr(err, "chmod 600"), "%s", err);
    chmod(path, 0600);
    FILE *f = fopen(path, "a");
    fputs("x", f);
    fclose(f);
    cr_assert_eq(audit_key_load(path, true, k2, &created, err, sizeof(err)), AEI_EINVAL);
    cr_assert(strstr(err, "33 bytes"), "%s", err);
    unlink(path);
    rmdir(sub);
    rmdir(dir);
    char def[256];
    /* Only AEI's own state directory is one the key's creation may make. */
    cr_assert_not(audit_key_default_path("sqlite:/var/lib/aei/aei.db", def, sizeof(def)));
    cr_assert_str_eq(def, "/var/lib/aei/aei.db.audit-key");
    setenv("AEI_STATE_DIR", "/srv/aei", 1);
    cr_assert(audit_key_default_path("postgresql://x@y/z", def, sizeof(def)));
    cr_assert_str_eq(def, "/srv/aei/audit.key");
    unsetenv("AEI_STATE_DIR");
}

Test(audit, checkpoint_file)
{
    char path[128], err[320] = "";
    snprintf(path, sizeof(path), "/tmp/aei-checkpoint-%d", (int)getpid());
    unlink(path);
    struct audit_head *heads;
    size_t n;
    /* A missing file is not an empty checkpoint: a mistyped path would switch the check of
     * removed rows off. */
    cr_assert_eq(audit_checkpoint_read(path, &heads, &n, err, sizeof(err)), AEI_ENOTFOUND);
    cr_assert(strstr(err, path) && strstr(err, "does not exist"), "%s", err);
    /* No heads creates the file, as aeid does when it starts; then it is an empty checkpoint. */
    cr_assert_eq(audit_checkpoint_append(path, NULL, 0, 5, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(audit_checkpoint_read(path, &heads, &n, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(n, 0);
    free(heads);
    char nowhere[160];
    snprintf(nowhere, sizeof(nowhere), "%s-missing/checkpoint", path);
    cr_assert_eq(audit_checkpoint_append(nowhere, NULL, 0, 5, err, sizeof(err)), AEI_EIO);
    cr_assert(strstr(err, "-missing does not exist"), "%s", err);
    struct audit_head h[2] = {{.team_id = "a", .seq = 3}, {.team_id = "b", .seq = 1}};
    h[0].hash[0] = 0xab;
    cr_assert_eq(audit_checkpoint_append(path, h, 2, 5, err, sizeof(err)), 0, "%s", err);
    h[0].seq = 9;
    cr_assert_eq(audit_checkpoint_append(path, h, 1, 6, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(audit_checkpoint_read(path, &heads, &n, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(heads[0].team_id, "a");
    cr_assert_eq(heads[0].seq, 9);
    cr_assert_eq(heads[0].hash[0], 0xab);
    cr_assert_eq(heads[1].seq, 1);
    free(heads);
    FILE *f = fopen(path, "a");
    fputs("v1 c 1 nothex 7\n", f);
    fclose(f);
    cr_assert_eq(audit_checkpoint_read(path, &heads, &n, err, sizeof(err)), AEI_EINVAL);
    cr_assert(strstr(err, "line 4"), "%s", err);
    unlink(path);
    struct audit_checkpointer c = {.path = path, .every_rows = 3, .every_us = 1000};
    cr_assert_not(audit_checkpointer_due(&c, 0, 10));
    cr_assert_not(audit_checkpointer_due(&c, 2, 10));
    cr_assert(audit_checkpointer_due(&c, 1, 10));
    cr_assert_not(audit_checkpointer_due(&c, 1, 20));
    cr_assert(audit_checkpointer_due(&c, 0, 1020));
}

Test(audit, token_forms)
{
    char t[AUTH_TOKEN_MAX + 1], why[160];
    cr_assert_eq(auth_token_new("user", t), 0);
    cr_assert_eq(strncmp(t, "aei_user_", 9), 0);
    cr_assert_eq(strlen(t), 9 + AUTH_TOKEN_RANDOM + AUTH_TOKEN_CHECK);
    cr_assert(auth_token_is_wellformed(t, why, sizeof(why)), "%s: %s", t, why);
    char u[AUTH_TOKEN_MAX + 1];
    cr_assert_eq(auth_token_new("agent", u), 0);
    cr_assert(auth_token_is_wellformed(u, why, sizeof(why)), "%s", why);
    cr_assert_str_neq(t + 9, u + 10);
    cr_assert_eq(auth_token_new("robot", u), AEI_EINVAL);
    /* One changed character is caught by the checksum. */
    t[12] = t[12] == 'a' ? 'b' : 'a';
    cr_assert_not(auth_token_is_wellformed(t, why, sizeof(why)));
    cr_assert(strstr(why, "checksum"), "%s", why);
    t[12] = '\0';
    cr_assert_not(auth_token_is_wellformed(t, why, sizeof(why)));
    cr_assert(strstr(why, "letters and digits"), "%s", why);
    cr_assert_not(auth_token_is_wellformed("secret", why, sizeof(why)));
    cr_assert(strstr(why, "aei_user_"), "%s", why);
    uint8_t h[32] = {0xde, 0xad, 0xbe, 0xef, 0x01, 0x02};
    char id[AUTH_TOKEN_ID_LEN + 1];
    auth_token_id(h, id);
    cr_assert_str_eq(id, "tk_deadbeef0102");
}

/* Hashes come back from the store as hex: exactly 2n digits, either case, or refused. */
Test(audit, unhex_takes_exactly_the_digits_of_n_bytes)
{
    uint8_t out[4];
    cr_assert(audit_unhex("00ff7a9B", out, 4));
    cr_assert_eq(out[0], 0x00);
    cr_assert_eq(out[1], 0xff);
    cr_assert_eq(out[2], 0x7a);
    cr_assert_eq(out[3], 0x9b);
    const char *bad[] = {"00ff7a9",   /* short */
                         "00ff7a9b0", /* long */
                         "00ff7a9g",  /* not a digit, last place */
                         "g0ff7a9b",  /* first place */
                         "00f 7a9b",  "", "0x00ff7a"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_not(audit_unhex(bad[i], out, 4), "accepted \"%s\"", bad[i]);
}
