/* aeid_fixture.c - a real aeid for libaei's tests; see aeid_fixture.h. */
#include "aeid_fixture.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef AEI_BUILD_DIR
#define AEI_BUILD_DIR "build"
#endif

int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    bind(fd, (struct sockaddr *)&sa, sizeof sa);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    close(fd);
    return ntohs(sa.sin_port);
}

const char *aeid_path(void)
{
    const char *env = getenv("AEID");
    return env && *env ? env : AEI_BUILD_DIR "/src/server/aeid";
}

struct body {
    char *data;
    size_t len;
};

static size_t collect(char *p, size_t size, size_t n, void *userp)
{
    struct body *b = userp;
    char *grown = realloc(b->data, b->len + size * n + 1);
    if (!grown)
        return 0;
    memcpy(grown + b->len, p, size * n);
    b->len += size * n;
    grown[b->len] = '\0';
    b->data = grown;
    return size * n;
}

static long http_get(struct aeid *s, const char *path, struct body *b)
{
    char url[1024];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, path);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Authorization: Bearer " FIXTURE_TOKEN);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

json_t *aeid_post(struct aeid *s, const char *path, const char *body, long *status)
{
    char url[1024];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, path);
    struct body b = {0};
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Authorization: Bearer " FIXTURE_TOKEN);
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    *status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    json_t *doc = b.data ? json_loads(b.data, 0, NULL) : NULL;
    free(b.data);
    return doc;
}

json_t *aeid_get(struct aeid *s, const char *path)
{
    struct body b = {0};
    long status = http_get(s, path, &b);
    json_t *doc = status == 200 && b.data ? json_loads(b.data, 0, NULL) : NULL;
    free(b.data);
    return doc;
}

json_t *aeid_all_decisions(struct aeid *s, const char *execution_id)
{
    json_t *all = json_array();
    char cursor[256] = "";
    for (;;) {
        char path[768];
        snprintf(path, sizeof path, "/api/v0/executions/%s/decisions?limit=1000%s%s", execution_id,
                 *cursor ? "&cursor=" : "", cursor);
        json_t *page = aeid_get(s, path);
        if (!page)
            return all;
        json_array_extend(all, json_object_get(page, "decisions"));
        const char *next = json_string_value(json_object_get(page, "next"));
        snprintf(cursor, sizeof cursor, "%s", next ? next : "");
        json_decref(page);
        if (!*cursor)
            return all;
    }
}

static void spawn(struct aeid *s)
{
    char http[64], ws[64], db[320], log[320];
    snprintf(http, sizeof http, "127.0.0.1:%d", s->port);
    snprintf(ws, sizeof ws, "127.0.0.1:%d", s->ws_port);
    snprintf(db, sizeof db, "sqlite:%s/aei.db", s->dir);
    snprintf(log, sizeof log, "%s/aeid.log", s->dir);
    s->pid = fork();
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a killed test leaves no aeid behind */
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        setenv("AEI_TOKEN", FIXTURE_TOKEN, 1);
        execl(aeid_path(), "aeid", "--http", http, "--ws", ws, "--db", db, (char *)NULL);
        _exit(127);
    }
}

bool aeid_start(struct aeid *s)
{
    if (!s->dir[0]) {
        snprintf(s->dir, sizeof s->dir, "/tmp/libaei-test-XXXXXX");
        if (!mkdtemp(s->dir))
            return false;
        s->port = free_port();
        s->ws_port = free_port();
        snprintf(s->address, sizeof s->address, "127.0.0.1:%d", s->port);
    }
    spawn(s);
    for (int i = 0; i < 300; i++) { /* 15 s */
        struct body b = {0};
        long status = http_get(s, "/healthz", &b);
        free(b.data);
        if (status == 200)
            return true;
        int wstatus;
        if (waitpid(s->pid, &wstatus, WNOHANG) == s->pid) {
            fprintf(stderr, "aeid (%s) exited; see %s/aeid.log\n", aeid_path(), s->dir);
            s->pid = 0;
            return false;
        }
        nanosleep(&(struct timespec){.tv_nsec = 50000000}, NULL);
    }
    return false;
}

void aeid_kill(struct aeid *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

void aeid_stop(struct aeid *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
    if (s->dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", s->dir);
    }
}
