/* path.c - what a file path's directory is, for errors that name the missing one */
#include "common/path.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

bool path_dir_is_missing(const char *path, char *dir, size_t n)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, n, ".");
    else if (slash == path)
        snprintf(dir, n, "/");
    else
        snprintf(dir, n, "%.*s", (int)(slash - path), path);
    struct stat st;
    if (stat(dir, &st) != 0)
        return errno == ENOENT || errno == ENOTDIR;
    return !S_ISDIR(st.st_mode);
}
