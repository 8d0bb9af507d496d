/* store_fixture.c - the stores the store tests run on: SQLite, and PostgreSQL from AEI_TEST_PG_URL
 */
#include "store_fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int store_fixture_urls(char urls[2][512], const char *name)
{
    static int seq;
    snprintf(urls[0], 512, "sqlite:/tmp/%s-%d-%d.db", name, (int)getpid(), seq++);
    const char *pg = getenv("AEI_TEST_PG_URL");
    if (!pg || !*pg)
        return 1;
    snprintf(urls[1], 512, "%s", pg);
    return 2;
}

struct store *store_fixture_open(const char *url)
{
    struct store *s = NULL;
    char err[256] = "";
    int rc = store_open(url, &s, err, sizeof(err));
    cr_assert_eq(rc, 0, "store_open(%s): %s", url, err);
    return s;
}

void store_fixture_remove(const char *url)
{
    if (strncmp(url, "sqlite:", 7) != 0)
        return;
    char path[600];
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s%s", url + 7, suffix[i]);
        unlink(path);
    }
}
