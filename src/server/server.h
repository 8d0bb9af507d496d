/* server.h - aeid's configuration and its HTTP service */
#ifndef AEI_SERVER_SERVER_H
#define AEI_SERVER_SERVER_H

#include <stddef.h>

/* Everything aeid is started with, after options and environment are read. */
struct config {
    char http_host[256];
    int http_port;
    char ws_host[256];
    int ws_port;
    const char *db_url;
    const char *token; /* the bootstrap admin token; never logged */
    size_t max_body;
    int request_timeout; /* seconds from a request's headers to the end of its body */
};

/* Opens the store, listens and serves until server_stop(). Returns 0 after a clean stop, or a
 * negative AEI_E* code with a one-line reason in err if it could not start. */
int server_run(const struct config *cfg, char *err, size_t errlen);
/* Asks a running server to finish what it accepted and return; safe from a signal handler. */
void server_stop(void);

#endif
