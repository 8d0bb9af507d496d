/* path.h - what a file path's directory is, for errors that name the missing one */
#ifndef AEI_COMMON_PATH_H
#define AEI_COMMON_PATH_H

#include <stdbool.h>
#include <stddef.h>

/* Whether the directory that would hold the file at path does not exist (or is not a
 * directory); writes that directory's name into dir either way ("." for a bare file name). */
bool path_dir_is_missing(const char *path, char *dir, size_t n);

#endif
