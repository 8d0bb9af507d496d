/* static.h - the dashboard's files (web/dist) served on the HTTP address */
#ifndef AEI_SERVER_STATIC_H
#define AEI_SERVER_STATIC_H

#include "common/buf.h"

#include <stdbool.h>

/* What to answer for one request of the dashboard. */
struct static_answer {
    int status;
    const char *ctype;
    struct buf body;     /* caller frees with buf_free() */
    const char *headers; /* extra "Name: value\r\n" lines, static storage */
};

/* Whether a path belongs to the dashboard rather than to the API: everything but /api/...,
 * /ws, /healthz and /metrics. */
bool static_is_path(const char *path);

/* Fills `out` for a GET of `path` under the directory `root`: the file itself, index.html for a
 * client-side route (a path whose last segment has no dot), a 404 for a missing asset or a path
 * that tries to leave `root`, and a page saying how to build the dashboard when `root` has no
 * index.html. Reads the file on the caller's thread: the files are small and few. */
void static_serve(const char *root, const char *path, struct static_answer *out);

#endif
