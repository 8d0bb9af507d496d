/* test_mock.c - `aei mock` (the build directory's aei, or $AEI) against a real aeid. */
#include "aeid_fixture.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AEI_BUILD_DIR
#define AEI_BUILD_DIR "build"
#endif

static struct aeid srv;

static void up(void)
{
    memset(&srv, 0, sizeof srv);
    cr_assert(aeid_start(&srv), "aeid did not start (%s)", aeid_path());
}

static void down(void)
{
    aeid_stop(&srv);
}

static const char *aei_path(void)
{
    const char *env = getenv("AEI");
    return env && *env ? env : AEI_BUILD_DIR "/src/cli/aei";
}

/* Runs aei with argv (NULL-terminated, after "aei"); returns its exit status and leaves its
 * stdout and stderr in out (cap bytes). */
static int run_aei(const char *token, char *const args[], char *out, size_t cap)
{
    char path[320];
    snprintf(path, sizeof path, "%s/aei.out", srv.dir);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        if (token)
            setenv("AEI_TOKEN", token, 1);
        else
            unsetenv("AEI_TOKEN");
        char *argv[16] = {"aei"};
        for (int i = 0; args[i] && i < 14; i++)
            argv[i + 1] = args[i];
        execv(aei_path(), argv);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(out, 1, cap - 1, f) : 0;
    out[n] = '\0';
    if (f)
        fclose(f);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

Test(mock, five_agents_for_five_seconds_show_up_with_executions, .init = up, .fini = down,
     .timeout = 120)
{
    char out[8192];
    char *args[] = {"mock", "--agents",    "5", "--duration", "5",         "--every",
                    "1",    "--heartbeat", "1", "--server",   srv.address, NULL};
    int rc = run_aei(FIXTURE_TOKEN, args, out, sizeof out);
    cr_assert_eq(rc, 0, "aei mock exited %d:\n%s", rc, out);
    cr_expect(strstr(out, "dropped         0"), "%s", out);

    json_t *agents = aeid_get(&srv, "/api/v0/agents");
    cr_assert(agents);
    size_t i;
    json_t *a;
    int mocks = 0;
    json_array_foreach(json_object_get(agents, "agents"), i, a)
    {
        const char *id = json_string_value(json_object_get(a, "agent_id"));
        mocks += strncmp(id, "mock-", 5) == 0;
        cr_expect(json_number_value(json_object_get(json_object_get(a, "metrics"), "cpu_pct")) > 0,
                  "%s reports its CPU", id);
    }
    cr_expect_eq(mocks, 5);
    json_decref(agents);

    json_t *execs = aeid_get(&srv, "/api/v0/executions?limit=1000");
    cr_assert(execs);
    json_t *list = json_object_get(execs, "executions");
    cr_expect_geq(json_array_size(list), 5, "every agent ran an execution");
    json_t *e;
    json_array_foreach(list, i, e)
    {
        const char *status = json_string_value(json_object_get(e, "status"));
        json_int_t n = json_integer_value(json_object_get(e, "decisions"));
        cr_expect(strcmp(status, "completed") == 0 || strcmp(status, "failed") == 0, "%s", status);
        cr_expect(n >= 10 && n <= 30, "%lld decisions", (long long)n);
    }
    json_decref(execs);
}

Test(mock, a_bad_token_or_server_is_named, .init = up, .fini = down)
{
    char out[4096];
    char *bad_token[] = {"mock", "--duration", "1", "--server", srv.address, NULL};
    cr_expect_eq(run_aei("wrong-token-0123456789", bad_token, out, sizeof out), 1);
    cr_expect(strstr(out, "refused the token"), "%s", out);

    char nobody[64];
    snprintf(nobody, sizeof nobody, "127.0.0.1:%d", free_port());
    char *bad_server[] = {"mock", "--duration", "1", "--server", nobody, NULL};
    cr_expect_eq(run_aei(FIXTURE_TOKEN, bad_server, out, sizeof out), 1);
    cr_expect(strstr(out, "cannot use the server"), "%s", out);

    char *no_token[] = {"mock", "--server", srv.address, NULL};
    cr_expect_eq(run_aei(NULL, no_token, out, sizeof out), 2);
    cr_expect(strstr(out, "no token"), "%s", out);

    char *bad_agents[] = {"mock", "--agents", "many", "--server", srv.address, NULL};
    cr_expect_eq(run_aei(FIXTURE_TOKEN, bad_agents, out, sizeof out), 2);
    cr_expect(strstr(out, "--agents"), "%s", out);
}

struct mock_run {
    char out[8192];
    int rc;
};

static void *run_mock(void *arg)
{
    struct mock_run *m = arg;
    char *args[] = {"mock", "--agents", "2", "--duration", "4",         "--heartbeat",
                    "0.2",  "--every",  "1", "--server",   srv.address, NULL};
    m->rc = run_aei(FIXTURE_TOKEN, args, m->out, sizeof m->out);
    return NULL;
}

/* The status of mock-001's command of this action, from GET .../commands (NULL if none). */
static char *command_status(const char *action)
{
    json_t *page = aeid_get(&srv, "/api/v0/agents/mock-001/commands?limit=100");
    char *status = NULL;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(page, "commands"), i, c)
    {
        if (strcmp(json_string_value(json_object_get(c, "action")), action) == 0)
            status = strdup(json_string_value(json_object_get(c, "status")));
    }
    json_decref(page);
    return status;
}

Test(mock, acknowledges_commands_and_obeys_pause, .init = up, .fini = down, .timeout = 120)
{
    struct mock_run m = {0};
    pthread_t t;
    pthread_create(&t, NULL, run_mock, &m);
    json_t *agent = NULL;
    for (int i = 0; i < 100 && !agent; i++) { /* registered within 10 s */
        nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL);
        agent = aeid_get(&srv, "/api/v0/agents/mock-001");
    }
    cr_assert(agent, "mock-001 did not register");
    json_decref(agent);
    long status;
    json_decref(aeid_post(&srv, "/api/v0/agents/mock-001/pause", "{\"reason\":\"test\"}", &status));
    cr_assert_eq(status, 202);
    nanosleep(&(struct timespec){.tv_sec = 1}, NULL);
    json_decref(aeid_post(&srv, "/api/v0/agents/mock-001/resume", NULL, &status));
    cr_assert_eq(status, 202);
    pthread_join(t, NULL);
    cr_assert_eq(m.rc, 0, "aei mock exited %d:\n%s", m.rc, m.out);
    cr_expect(strstr(m.out, "commands        2 (acknowledged 2, failed acks 0)"), "%s", m.out);
    for (int k = 0; k < 2; k++) {
        char *st = command_status(k ? "resume" : "pause");
        cr_expect(st && strcmp(st, "succeeded") == 0, "%s: %s", k ? "resume" : "pause",
                  st ? st : "(none)");
        free(st);
    }
}
