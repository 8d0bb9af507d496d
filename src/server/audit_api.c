/* audit_api.c - the audit routes' work on the reader thread: a page of rows, each verified on
 * read, a whole verification, and the periodic checkpoint of the chain heads */
#include "server/audit_api.h"
#include "aei/error.h"
#include "common/json.h"
#include "common/log.h"
#include "common/time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void write_row(struct buf *b, const uint8_t *key, const struct audit_row *r)
{
    char ts[AEI_TIME_LEN], prev[AUDIT_HEX_LEN + 1], hash[AUDIT_HEX_LEN + 1];
    aei_time_format(r->ts, ts);
    audit_hex(r->prev_hash, AUDIT_HASH_LEN, prev);
    audit_hex(r->hash, AUDIT_HASH_LEN, hash);
    buf_printf(b, "{\"id\":%lld,\"team_id\":", (long long)r->id);
    json_write_string(b, r->team_id);
    buf_printf(b, ",\"seq\":%lld,\"ts\":\"%s\",\"ts_us\":%lld,\"actor_type\":\"%s\",\"actor_id\":",
               (long long)r->seq, ts, (long long)r->ts, audit_actor_names[r->actor_type]);
    json_write_string(b, r->actor_id);
    buf_puts(b, ",\"action_type\":");
    json_write_string(b, r->action_type);
    buf_puts(b, ",\"resource_id\":");
    json_write_string(b, r->resource_id);
    /* The stored context is canonical JSON, written as it is; a row whose context was replaced
     * by something that is not JSON shows it as a string (and as not verified). */
    json_t *ctx = json_loads(r->context, 0, NULL);
    buf_puts(b, ",\"context\":");
    if (ctx)
        buf_puts(b, r->context);
    else
        json_write_string(b, r->context);
    json_decref(ctx);
    buf_printf(b, ",\"prev_hash\":\"%s\",\"immutable_hash\":\"%s\",\"verified\":%s}", prev, hash,
               audit_row_is_verified(key, r) ? "true" : "false");
}

int audit_api_page(struct store *s, struct audit_job *a, char **body)
{
    struct audit_row *rows;
    size_t n;
    /* One row more than the page tells whether there is a next page. */
    a->q.limit++;
    int rc = store_list_audit(s, &a->q, &rows, &n);
    a->q.limit--;
    if (rc)
        return rc;
    struct buf b = {0};
    buf_puts(&b, "{\"rows\":[");
    size_t shown = n > (size_t)a->q.limit ? (size_t)a->q.limit : n;
    for (size_t i = 0; i < shown; i++) {
        if (i)
            buf_puts(&b, ",");
        write_row(&b, a->state->key, &rows[i]);
    }
    buf_puts(&b, "],\"next\":");
    if (n > shown)
        buf_printf(&b, "\"%lld-%lld\"}", (long long)rows[shown - 1].ts,
                   (long long)rows[shown - 1].id);
    else
        buf_puts(&b, "null}");
    store_free_audit(rows, n);
    *body = b.data;
    return 0;
}

int audit_api_verify(struct store *s, struct audit_job *a, char **body)
{
    struct audit_head *heads = NULL;
    size_t n = 0;
    char err[512];
    struct buf b = {0};
    if (a->state->checkpoint &&
        audit_checkpoint_read(a->state->checkpoint, &heads, &n, err, sizeof(err)) != 0) {
        /* An unreadable checkpoint is a failed verification, not a server error. */
        buf_puts(&b, "{\"ok\":false,\"rows_checked\":0,\"first_bad\":null,\"error\":");
        json_write_string(&b, err);
        buf_puts(&b, "}");
        *body = b.data;
        return 0;
    }
    const char *team = a->q.team_id;
    if (team) { /* one team's chain: only its head counts */
        size_t kept = 0;
        for (size_t i = 0; i < n; i++)
            if (strcmp(heads[i].team_id, team) == 0)
                heads[kept++] = heads[i];
        n = kept;
    }
    struct audit_verifier v;
    audit_verify_init(&v, a->state->key, heads, n);
    int64_t start = aei_mono_us();
    int rc = store_verify_audit(s, team, &v);
    int64_t took = aei_mono_us() - start;
    free(heads);
    if (rc)
        return rc;
    buf_printf(&b, "{\"ok\":%s,\"rows_checked\":%lld,\"checkpoint\":%s,\"seconds\":%.3f,",
               v.fault ? "false" : "true", (long long)v.checked,
               a->state->checkpoint ? "true" : "false", (double)took / 1e6);
    if (v.fault) {
        buf_printf(&b, "\"first_bad\":{\"id\":%lld,\"team_id\":", (long long)v.bad_id);
        json_write_string(&b, v.bad_team);
        buf_printf(&b, ",\"seq\":%lld,\"reason\":\"%s\",\"message\":", (long long)v.bad_seq,
                   audit_fault_names[v.fault]);
        json_write_string(&b, v.why);
        buf_puts(&b, "}}");
    } else {
        buf_puts(&b, "\"first_bad\":null}");
    }
    *body = b.data;
    return 0;
}

/* Whether head h is already in the list of written heads. */
static bool written(const struct audit_state *st, const struct audit_head *h)
{
    for (size_t i = 0; i < st->n_written; i++)
        if (strcmp(st->written[i].team_id, h->team_id) == 0)
            return st->written[i].seq == h->seq;
    return false;
}

int audit_api_checkpoint(struct store *s, struct audit_state *st)
{
    if (!st->checkpoint)
        return 0;
    struct audit_head *heads;
    size_t n;
    int rc = store_audit_heads(s, &heads, &n);
    if (rc)
        return rc;
    struct audit_head *moved = calloc(n ? n : 1, sizeof(*moved));
    if (!moved)
        abort();
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!written(st, &heads[i]))
            moved[m++] = heads[i];
    char err[512];
    if (m && audit_checkpoint_append(st->checkpoint, moved, m, aei_now_us(), err, sizeof(err))) {
        log_error("audit: %s", err);
        rc = AEI_EIO;
        free(heads);
    } else {
        free(st->written);
        st->written = heads;
        st->n_written = n;
    }
    free(moved);
    return rc;
}
