/* export.c - an execution's decisions as one JSON or Markdown document, rendered page by page */
#include "server/export.h"
#include "aei/error.h"
#include "common/json.h"
#include "common/time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool export_format_parse(const char *name, enum export_format *out)
{
    if (strcmp(name, "json") == 0)
        *out = EXPORT_JSON;
    else if (strcmp(name, "markdown") == 0)
        *out = EXPORT_MARKDOWN;
    else
        return false;
    return true;
}

const char *export_content_type(enum export_format f)
{
    return f == EXPORT_JSON ? "application/json" : "text/markdown; charset=utf-8";
}

struct export *export_new(enum export_format f, const char *execution_id, bool head)
{
    struct export *ex = calloc(1, sizeof(*ex));
    if (!ex)
        abort();
    ex->format = f;
    ex->head = head;
    snprintf(ex->execution_id, sizeof(ex->execution_id), "%s", execution_id);
    ex->started_mono = aei_mono_us();
    return ex;
}

void export_free(struct export *ex)
{
    if (!ex)
        return;
    execution_clear(&ex->exec); /* an ended execution's failure is on the heap */
    buf_free(&ex->page);
    free(ex);
}

/* ---- JSON ---- */

/* One decision per line, in the shape POST /api/v0/traces takes back: a waiting decision has
 * "depth": null. */
static void json_decision(struct buf *out, const struct decision *d, bool first)
{
    buf_puts(out, first ? "\n" : ",\n");
    decision_write(out, d, true);
}

/* ---- Markdown ---- */

void export_md_inline(struct buf *out, const char *s, bool cell)
{
    /* Backslash-escaped ASCII punctuation renders as itself; GitHub needs \| even in code. */
    static const char special[] = "\\`*_[]<>|#!~&{}()$";
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '\n')
            buf_puts(out, cell ? "<br>" : " ");
        else if (c == '\r')
            continue;
        else if (c < 0x20 || c == 0x7f)
            buf_puts(out, " ");
        else if (strchr(special, c))
            buf_printf(out, "\\%c", c);
        else
            buf_append(out, p, 1);
    }
}

static void md_indent(struct buf *out, int cols)
{
    for (int i = 0; i < cols; i++)
        buf_append(out, " ", 1);
}

/* The longest run of backticks in s, so that a fence can be longer. */
static size_t longest_backticks(const char *s)
{
    size_t best = 0, run = 0;
    for (; *s; s++) {
        run = *s == '`' ? run + 1 : 0;
        best = run > best ? run : best;
    }
    return best;
}

/* Appends text as a fenced code block, every line indented to `cols` so that it stays inside
 * its list item; nothing in it is read as Markdown or HTML. */
static void md_fenced(struct buf *out, int cols, const char *info, const char *text)
{
    size_t fence = longest_backticks(text) + 1;
    fence = fence < 3 ? 3 : fence;
    md_indent(out, cols);
    for (size_t i = 0; i < fence; i++)
        buf_append(out, "`", 1);
    buf_printf(out, "%s\n", info);
    md_indent(out, cols);
    for (const char *p = text; *p; p++) {
        if (*p == '\r')
            continue;
        buf_append(out, p, 1);
        if (*p == '\n')
            md_indent(out, cols);
    }
    buf_puts(out, "\n");
    md_indent(out, cols);
    for (size_t i = 0; i < fence; i++)
        buf_append(out, "`", 1);
    buf_puts(out, "\n");
}

/* Appends prose as a block quote, every line indented to `cols` and escaped (export_md_inline)
 * so that it wraps like text yet nothing in it is read as Markdown or HTML; line breaks are
 * kept. What could still start a block (a list marker, a heading underline, indentation) is
 * neutralized at the start of each line. */
static void md_quote(struct buf *out, int cols, const char *text)
{
    struct buf line = {0};
    const char *p = text;
    for (;;) {
        size_t n = strcspn(p, "\n");
        buf_reset(&line);
        buf_append(&line, p, n);
        const char *l = line.data ? line.data : "";
        l += strspn(l, " \t\r");
        size_t digits = strspn(l, "0123456789");
        md_indent(out, cols);
        buf_puts(out, "> ");
        if (*l == '-' || *l == '+' || *l == '=')
            buf_puts(out, "\\");
        if (digits > 0 && (l[digits] == '.' || l[digits] == ')')) {
            buf_append(out, l, digits);
            buf_puts(out, "\\");
            l += digits;
        }
        export_md_inline(out, l, false);
        p += n;
        if (!*p)
            break;
        p++;
        /* A backslash at the end of a line is a hard line break. */
        buf_puts(out, *l && *p && *p != '\n' ? "\\\n" : "\n");
    }
    buf_puts(out, "\n");
    buf_free(&line);
}

/* The reasoning, collapsed: a string as a quote, an object as indented JSON with sorted keys (the
 * same on both stores: PostgreSQL keeps objects as jsonb, which orders keys its own way). */
static void md_reasoning(struct buf *out, int cols, const char *context_json)
{
    json_t *v = json_loads(context_json, JSON_DECODE_ANY, NULL);
    if (!v)
        return;
    char *text = NULL;
    bool is_text = json_is_string(v);
    if (!is_text)
        text = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    const char *shown = is_text ? json_string_value(v) : text;
    if (shown && *shown) {
        md_indent(out, cols);
        buf_printf(out, "<details><summary>Reasoning (%zu characters)</summary>\n\n",
                   utf8_length(shown));
        if (is_text)
            md_quote(out, cols, shown);
        else
            md_fenced(out, cols, "json", shown);
        buf_puts(out, "\n");
        md_indent(out, cols);
        buf_puts(out, "</details>\n\n");
    }
    free(text);
    json_decref(v);
}

/* The alternatives as a table: option, score, why rejected. */
static void md_alternatives(struct buf *out, int cols, const char *alternatives_json)
{
    json_t *list = json_loads(alternatives_json, 0, NULL);
    if (!json_is_array(list) || json_array_size(list) == 0) {
        json_decref(list);
        return;
    }
    md_indent(out, cols);
    buf_puts(out, "| Option | Score | Why rejected |\n");
    md_indent(out, cols);
    buf_puts(out, "| --- | ---: | --- |\n");
    size_t i;
    json_t *alt;
    json_array_foreach(list, i, alt)
    {
        const char *option = json_string_value(json_object_get(alt, "option"));
        const char *reason = json_string_value(json_object_get(alt, "reason_rejected"));
        json_t *score = json_object_get(alt, "score");
        md_indent(out, cols);
        buf_puts(out, "| ");
        export_md_inline(out, option ? option : "", true);
        if (json_is_number(score))
            buf_printf(out, " | %g | ", json_number_value(score));
        else
            buf_puts(out, " | — | ");
        export_md_inline(out, reason ? reason : "—", true);
        buf_puts(out, " |\n");
    }
    buf_puts(out, "\n");
    json_decref(list);
}

/* One decision as a list item nested by its depth (a waiting one at the top level), with its
 * reasoning and alternatives inside the item. */
static void md_decision(struct buf *out, const struct decision *d)
{
    int level = d->depth < 0 ? 0 : d->depth;
    bool capped = level >= EXPORT_MD_LEVELS;
    if (capped)
        level = EXPORT_MD_LEVELS - 1;
    md_indent(out, 2 * level);
    buf_puts(out, "- ");
    if (capped)
        buf_printf(out, "[depth %d, under `%s`] ", d->depth, d->parent_id);
    buf_puts(out, "**");
    export_md_inline(out, d->kind ? d->kind : "decision", false);
    buf_puts(out, "** → ");
    if (d->outcome && *d->outcome)
        export_md_inline(out, d->outcome, false);
    else
        buf_puts(out, "_no outcome_");
    if (d->has_confidence)
        buf_printf(out, " · confidence %g", d->confidence);
    if (d->has_duration)
        buf_printf(out, " · %g ms", d->duration_ms);
    if (d->has_tokens)
        buf_printf(out, " · %g tokens", d->tokens);
    if (d->has_cost)
        buf_printf(out, " · $%.4f", d->cost_usd);
    buf_printf(out, " · `%s`", d->decision_id);
    if (!d->path)
        buf_printf(out, " · waiting for parent `%s`", d->parent_id);
    buf_puts(out, "\n\n");
    int cols = 2 * level + 2; /* the item's content column */
    if (d->context_json)
        md_reasoning(out, cols, d->context_json);
    if (d->alternatives_json)
        md_alternatives(out, cols, d->alternatives_json);
}

static void md_head(struct buf *out, const struct execution *e)
{
    char started[AEI_TIME_LEN], ended[AEI_TIME_LEN] = "—";
    aei_time_format(e->started, started);
    if (e->ended)
        aei_time_format(e->ended, ended);
    buf_printf(out, "# Execution `%s`\n\n", e->execution_id);
    buf_puts(out,
             "| Agent | Status | Decisions | Mean confidence | Cost (USD) | Started | Ended |\n"
             "| --- | --- | ---: | ---: | ---: | --- | --- |\n");
    buf_printf(out, "| `%s` | %s | %lld", e->agent_id, execution_status_names[e->status],
               (long long)e->decisions);
    if (e->pending)
        buf_printf(out, " (%lld waiting for their parent)", (long long)e->pending);
    if (e->confidence_n)
        buf_printf(out, " | %.1f", e->confidence_sum / (double)e->confidence_n);
    else
        buf_puts(out, " | —");
    buf_printf(out, " | %.4f | %s | %s |\n\n## Decisions\n\n", e->cost_usd, started, ended);
}

static void md_waiting_head(struct buf *out, int64_t tree)
{
    if (tree == 0)
        buf_puts(out, "_No decision has its place in the tree yet._\n\n");
    buf_puts(out, "## Waiting for their parent\n\n"
                  "These decisions name a parent that has not arrived, so their place in the tree "
                  "is not known; they are listed in the order they arrived.\n\n");
}

static void md_tail(struct buf *out, const struct export *ex)
{
    if (ex->tree == 0 && ex->waiting == 0)
        buf_puts(out, "_No decision has its place in the tree yet._\n\n");
    long long n = (long long)(ex->tree + ex->waiting);
    buf_printf(out, "---\n_%lld decision%s exported from aeid._\n", n, n == 1 ? "" : "s");
}

/* ---- pages ---- */

void export_render_decision(struct buf *out, enum export_format f, const struct decision *d,
                            bool first)
{
    if (f == EXPORT_JSON)
        json_decision(out, d, first);
    else
        md_decision(out, d);
}

/* Reads up to `limit` decisions of the current phase and renders them; moves to the next phase
 * when this one has no more. Returns how many were rendered, or a negative AEI_E* code. */
static int render_some(struct store *s, struct export *ex, int limit)
{
    bool waiting = ex->phase == EXPORT_WAITING;
    struct decision_query q = {.execution_id = ex->execution_id,
                               .after_path = ex->cursor[0] ? ex->cursor : NULL,
                               .limit = limit,
                               .waiting = waiting,
                               .after_id = ex->after_id};
    struct decision *rows;
    size_t n;
    int rc = store_list_decisions(s, &q, &rows, &n);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (waiting && ex->waiting == 0 && ex->format == EXPORT_MARKDOWN)
            md_waiting_head(&ex->page, ex->tree);
        export_render_decision(&ex->page, ex->format, &rows[i], ex->tree + ex->waiting == 0);
        if (waiting)
            ex->waiting++;
        else
            ex->tree++;
    }
    if (n > 0 && waiting)
        ex->after_id = rows[n - 1].id;
    else if (n > 0)
        snprintf(ex->cursor, sizeof(ex->cursor), "%s", rows[n - 1].path);
    store_free_decisions(rows, n);
    if ((int)n < limit)
        ex->phase = waiting ? EXPORT_DONE : EXPORT_WAITING;
    return (int)n;
}

int export_next_page(struct store *s, struct export *ex)
{
    buf_reset(&ex->page);
    if (ex->phase == EXPORT_BEGIN) {
        int rc = store_get_execution(s, ex->execution_id, &ex->exec);
        if (rc == 0 && ex->team[0] && strcmp(ex->team, ex->exec.team_id) != 0)
            rc = AEI_ENOTFOUND; /* another team's: as good as absent */
        if (rc)
            return rc;
        ex->phase = ex->head ? EXPORT_DONE : EXPORT_TREE;
        if (ex->head)
            return 0;
        if (ex->format == EXPORT_JSON)
            buf_puts(&ex->page, "[");
        else
            md_head(&ex->page, &ex->exec);
    }
    /* A page holds EXPORT_PAGE decisions, read across the end of the tree if need be. */
    int left = EXPORT_PAGE;
    while (left > 0 && ex->phase != EXPORT_DONE) {
        int n = render_some(s, ex, left);
        if (n < 0)
            return n;
        left -= n;
    }
    if (ex->phase == EXPORT_DONE) {
        if (ex->format == EXPORT_JSON)
            buf_puts(&ex->page, ex->tree + ex->waiting ? "\n]\n" : "]\n");
        else
            md_tail(&ex->page, ex);
    }
    return 0;
}
