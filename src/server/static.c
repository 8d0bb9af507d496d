/* static.c - the dashboard's files (web/dist) served on the HTTP address */
#include "server/static.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The largest file served; the dashboard's bundle is a few hundred kilobytes. */
#define STATIC_FILE_MAX (16 * 1024 * 1024)

/* Vite names the files under assets/ by a hash of their content: they never change. */
static const char *const cache_immutable =
    "Cache-Control: public, max-age=31536000, immutable\r\nX-Content-Type-Options: nosniff\r\n";
/* Everything else (index.html first) is checked with the server on each use. */
static const char *const cache_revalidate =
    "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n";

static const struct {
    const char *ext, *ctype;
} content_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".map", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".woff2", "font/woff2"},
    {".txt", "text/plain; charset=utf-8"},
    {".webmanifest", "application/manifest+json"},
};

bool static_is_path(const char *path)
{
    if (strncmp(path, "/api/", 5) == 0 || strcmp(path, "/api") == 0)
        return false;
    return strcmp(path, "/ws") != 0 && strcmp(path, "/healthz") != 0 &&
           strcmp(path, "/metrics") != 0;
}

static const char *content_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < sizeof(content_types) / sizeof(content_types[0]); i++)
            if (strcmp(dot, content_types[i].ext) == 0)
                return content_types[i].ctype;
    return "application/octet-stream";
}

/* A path the dashboard could have: printable ASCII, no "..", no backslash, no empty segment.
 * The realpath check in serve_file() is the second line of defence. */
static bool path_is_plain(const char *path)
{
    if (path[0] != '/')
        return false;
    for (const char *p = path; *p; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '\\' || *p == '%')
            return false;
        if (p[0] == '/' &&
            (p[1] == '/' || (p[1] == '.' && (p[2] == '.' || p[2] == '/' || p[2] == '\0'))))
            return false;
    }
    return true;
}

/* A client-side route (/traces/run-42) rather than a file (/assets/index-3f2a.js). */
static bool is_route(const char *path)
{
    const char *last = strrchr(path, '/');
    return !strchr(last ? last : path, '.');
}

static void set_answer(struct static_answer *out, int status, const char *ctype,
                       const char *headers, const char *body)
{
    out->status = status;
    out->ctype = ctype;
    out->headers = headers;
    buf_reset(&out->body);
    buf_puts(&out->body, body);
}

static void not_found(struct static_answer *out, const char *path)
{
    set_answer(out, 404, "application/json", cache_revalidate, "");
    buf_reset(&out->body);
    /* The path passed path_is_plain() or is not echoed: no quoting needed. */
    buf_printf(&out->body,
               "{\"error\":{\"code\":\"not_found\",\"message\":\"no dashboard file %s\"}}",
               path_is_plain(path) && strlen(path) < 200 ? path : "at that path");
}

/* Reads root/rel into out if it is a regular file inside root. Returns 0, or -ENOENT when there
 * is no such file (or it lies outside root), or another negative errno. */
static int serve_file(const char *root, const char *rel, struct static_answer *out,
                      const char *headers)
{
    char want[PATH_MAX], real_root[PATH_MAX], real[PATH_MAX];
    if (!realpath(root, real_root))
        return -ENOENT;
    if ((size_t)snprintf(want, sizeof(want), "%s%s", real_root, rel) >= sizeof(want))
        return -ENOENT;
    /* Symbolic links may not lead out of root either. */
    size_t n = strlen(real_root);
    if (!realpath(want, real) || strncmp(real, real_root, n) != 0 || real[n] != '/')
        return -ENOENT;
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > STATIC_FILE_MAX) {
        rc = -ENOENT;
        goto err_close;
    }
    buf_reset(&out->body);
    buf_reserve(&out->body, (size_t)st.st_size + 1);
    while (out->body.len < (size_t)st.st_size) {
        ssize_t got = read(fd, out->body.data + out->body.len, (size_t)st.st_size - out->body.len);
        if (got <= 0) {
            rc = got < 0 ? -errno : -EIO;
            goto err_close;
        }
        out->body.len += (size_t)got;
    }
    out->body.data[out->body.len] = '\0';
    out->status = 200;
    out->ctype = content_type(real);
    out->headers = headers;
err_close:
    close(fd);
    return rc;
}

static const char missing_page[] =
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>AEI: dashboard not built</title>"
    "<style>body{background:#111418;color:#e6e8eb;font:16px/1.5 system-ui,sans-serif;"
    "max-width:40em;margin:4em auto}code{background:#1d2228;padding:0 .3em}</style></head>"
    "<body><h1>The dashboard is not built</h1><p>aeid serves the dashboard from its web root, "
    "which has no <code>index.html</code>. Build it with <code>cd web &amp;&amp; npm ci &amp;&amp; "
    "npm run build</code> (<code>make run</code> does this), or start aeid with "
    "<code>--web-root DIR</code> (<code>AEI_WEB_ROOT</code>) naming the built "
    "<code>web/dist</code>.</p><p>The API under <code>/api/v0/</code> works without it.</p>"
    "</body></html>";

void static_serve(const char *root, const char *path, struct static_answer *out)
{
    if (!path_is_plain(path)) {
        not_found(out, path);
        return;
    }
    if (strcmp(path, "/") == 0 || is_route(path)) {
        if (serve_file(root, "/index.html", out, cache_revalidate) != 0)
            set_answer(out, 404, "text/html; charset=utf-8", cache_revalidate, missing_page);
        return;
    }
    const char *headers = strncmp(path, "/assets/", 8) == 0 ? cache_immutable : cache_revalidate;
    if (serve_file(root, path, out, headers) != 0)
        not_found(out, path);
}
