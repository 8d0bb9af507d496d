/* store_fixture.c - the stores the store tests run on: SQLite, and PostgreSQL from AEI_TEST_PG_URL
 */
#include "store_fixture.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>
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

int store_fixture_fresh_urls(char urls[2][512], const char *name)
{
    int n = store_fixture_urls(urls, name);
    if (n < 2)
        return n;
    /* postgresql://user@host:port/DB?params: the database is the path after the authority. */
    char db[64], rest[512] = "";
    static int seq;
    snprintf(db, sizeof(db), "%s_%d_%d", name, (int)getpid(), seq++);
    for (char *p = db; *p; p++)
        if (*p == '-')
            *p = '_';
    char *path = strchr(strstr(urls[1], "://") + 3, '/');
    cr_assert(path, "AEI_TEST_PG_URL has no database: %s", urls[1]);
    char *query = strchr(path, '?');
    if (query)
        snprintf(rest, sizeof(rest), "%s", query);
    PGconn *c = PQconnectdb(urls[1]);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    char sql[128];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
    PGresult *res = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
    PQclear(res);
    PQfinish(c);
    snprintf(path, 512 - (size_t)(path - urls[1]), "/%s%s", db, rest);
    return n;
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
