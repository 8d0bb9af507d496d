/* export.h - an execution's decisions as one JSON or Markdown document, rendered page by page */
#ifndef AEI_SERVER_EXPORT_H
#define AEI_SERVER_EXPORT_H

#include "common/buf.h"
#include "server/store.h"

#include <stdbool.h>
#include <stdint.h>

/* Decisions read and rendered per page: one page of text is in memory at a time. */
#define EXPORT_PAGE 500
/* Markdown nests the tree this many levels deep; deeper decisions stay at the last level and
 * say their depth and parent (GitHub squeezes deeper lists into an unreadable column). */
#define EXPORT_MD_LEVELS 8

enum export_format { EXPORT_JSON, EXPORT_MARKDOWN };

enum export_phase {
    EXPORT_BEGIN,   /* nothing read yet: the execution's summary comes first */
    EXPORT_TREE,    /* the tree in pre-order, after `cursor` */
    EXPORT_WAITING, /* then the decisions waiting for their parent, after `after_id` */
    EXPORT_DONE,    /* the last page has been rendered */
};

/* One export in progress. The loop thread owns it; a reader thread fills `page` (and moves the
 * cursors) while a job holds it. */
struct export
{
    enum export_format format;
    bool head; /* HEAD: only check that the execution exists */
    char execution_id[AEI_ID_MAX + 1];
    char team[AEI_ID_MAX + 1]; /* the caller's team, or "" for every team */
    struct execution exec;     /* read with the first page */
    enum export_phase phase;
    char cursor[TRACE_DEPTH_MAX * TRACE_KEY_LEN + TRACE_KEY_LEN + 1]; /* last path rendered */
    int64_t after_id;      /* last waiting decision rendered */
    int64_t tree, waiting; /* decisions rendered so far, in the tree and waiting */
    struct buf page;       /* the text of the last page */
    int64_t started_mono;  /* when the request came, for the latency metric */
};

/* Parses a format name ("json" or "markdown"); returns false for anything else. */
bool export_format_parse(const char *name, enum export_format *out);
/* The Content-Type of a format's document. */
const char *export_content_type(enum export_format f);

/* Starts an export. Caller frees with export_free(). */
struct export *export_new(enum export_format f, const char *execution_id, bool head);
/* Frees ex and its page; NULL is a no-op. */
void export_free(struct export *ex);

/* Reader thread: reads the next page of decisions and renders it into ex->page (the document's
 * head with the first page, its end with the last), moving ex->phase on. Returns 0,
 * AEI_ENOTFOUND when the execution does not exist, or the store's error. */
int export_next_page(struct store *s, struct export *ex);

/* Appends one decision to a page in the given format; `first` is the document's first decision
 * (exposed for the unit tests). */
void export_render_decision(struct buf *out, enum export_format f, const struct decision *d,
                            bool first);
/* Appends s as Markdown inline text: escaped so that it renders as itself, newlines as spaces
 * or, in a table cell, as <br>. */
void export_md_inline(struct buf *out, const char *s, bool cell);

#endif
