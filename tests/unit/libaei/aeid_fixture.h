/* aeid_fixture.h - a real aeid for libaei's tests (and `aei mock`'s): started on free ports
 * and a temporary SQLite file, restartable on the same ones, queried over HTTP.
 *
 * The binary is $AEID, else the build directory's src/server/aeid (AEI_BUILD_DIR, set by
 * tests/unit/meson.build), so that build-san's tests use build-san's aeid. */
#ifndef AEID_FIXTURE_H
#define AEID_FIXTURE_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#define FIXTURE_TOKEN "libaei-test-token-0123456789abcdef"

struct aeid {
    char dir[256];
    int port, ws_port;
    pid_t pid;
    char address[64]; /* 127.0.0.1:PORT */
};

int free_port(void);
const char *aeid_path(void);
bool aeid_start(struct aeid *s); /* the first time makes the directory and ports */
void aeid_kill(struct aeid *s);  /* SIGKILL: batches in flight may have committed */
void aeid_stop(struct aeid *s);  /* SIGTERM, wait, remove the directory */
json_t *aeid_get(struct aeid *s, const char *path); /* NULL unless 200 */
/* POST a JSON body with the bootstrap token; the answer's JSON (or NULL), its status in *status. */
json_t *aeid_post(struct aeid *s, const char *path, const char *body, long *status);
/* Every decision of an execution (following the pages), as a JSON array. */
json_t *aeid_all_decisions(struct aeid *s, const char *execution_id);

#endif
