/* store_fixture.h - the stores the store tests run on: SQLite, and PostgreSQL from AEI_TEST_PG_URL
 */
#ifndef AEI_TEST_STORE_FIXTURE_H
#define AEI_TEST_STORE_FIXTURE_H

#include "server/store.h"

/* Writes the URLs of the stores under test into urls and returns how many there are: a fresh
 * SQLite file /tmp/<name>-<pid>-<seq>.db, and PostgreSQL when the test script started one. */
int store_fixture_urls(char urls[2][512], const char *name);

/* Like store_fixture_urls(), but the PostgreSQL URL names a database of its own, created empty
 * (for tests that look at the whole store, such as retention). */
int store_fixture_fresh_urls(char urls[2][512], const char *name);

/* Opens the store at url, failing the test when it cannot. Caller closes with store_close(). */
struct store *store_fixture_open(const char *url);

/* Deletes a SQLite store's files (with its -wal and -shm); does nothing for other URLs. */
void store_fixture_remove(const char *url);

#endif
