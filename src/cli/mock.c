/* mock.c - `aei mock`: N simulated agents on libaei, for demos and load. Each sends heartbeats
 * with wandering CPU, memory, token rate and cost, and runs executions of 10-30 decisions whose
 * reasoning, alternatives and moving confidence read like a real model's. An `execute` command
 * runs a short execution under the command's execution_id, as the Python mock agents do. */
#include "aei/agent.h"
#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MOCK_MAX_AGENTS 1000

struct mock_opts {
    unsigned agents;
    const char *server, *token;
    double duration; /* seconds; 0 runs until SIGINT or SIGTERM */
    double every;    /* seconds between one agent's executions */
    double heartbeat;
};

/* One step of reasoning: what the agent weighs, what it picks, what it turns down and why. */
struct step {
    const char *kind, *context, *chosen, *rejected[2], *why[2];
};

static const struct step steps[] = {
    {"llm_call",
     "The user asks for the quarterly revenue trend, but the figures in context stop at Q2. "
     "Summarising from memory would miss a quarter, so fetch the filing first.",
     "fetch the Q3 filing, then summarise",
     {"summarise from context", "ask the user for the figures"},
     {"context ends in Q2; the answer would be stale",
      "the filing is public; asking wastes a turn"}},
    {"tool_selection",
     "Three tools can answer the lookup: web search, the wiki and the SQL warehouse. The question "
     "names a table and a date range, which only the warehouse answers exactly.",
     "query the SQL warehouse",
     {"web search", "internal wiki"},
     {"public pages do not hold internal figures", "the wiki copy is a month old"}},
    {"refinement",
     "The draft cites two sources that disagree on the launch date by a week. Check the primary "
     "announcement and correct the draft before replying.",
     "check the primary announcement and correct the draft",
     {"reply with both dates", "drop the date"},
     {"contradictions erode trust", "the date is what the user asked for"}},
    {"planning",
     "Four parts: requirements, schema, migrations, tests on both stores. Tests depend on all of "
     "them; handing them to a child agent keeps the critical path short.",
     "spawn a tester child agent after the migrations",
     {"do all four in sequence", "test before writing migrations"},
     {"slower by the whole testing time", "nothing to test yet"}},
    {"code_edit",
     "The failing test expects UTC timestamps but the parser keeps the local offset. The smallest "
     "fix normalises in the parser; the callers already assume UTC.",
     "normalise to UTC in the parser",
     {"convert in every caller", "relax the test"},
     {"six call sites, easy to miss one", "the test states the documented contract"}},
    {"review",
     "The patch adds a retry loop without a bound. Under a dead dependency it would spin forever "
     "and hold a worker; ask for a cap and backoff before approving.",
     "request changes: bound the retries with backoff",
     {"approve as is", "rewrite it myself"},
     {"an unbounded loop is an outage waiting to happen", "the author learns more fixing it"}},
};
#define NSTEPS (sizeof steps / sizeof steps[0])

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct sim {
    const struct mock_opts *o;
    char agent_id[32], run[9];
    uint64_t rng;
    double end_at; /* monotonic; 0 for no end */
    struct aei_agent *agent;
    double cpu, mem, tokens_per_min, cost;
    unsigned executions, failed_executions;
    /* Executions asked for by execute commands. They run on libaei's heartbeat thread, so they
     * have their own random state and count; the summary reads the count after the agent is
     * stopped. */
    uint64_t command_rng;
    unsigned commanded;
    /* Executions running now, of either kind: the last one to end reports the agent idle. */
    atomic_int busy;
    int error;  /* a start or end that was refused */
    int unsent; /* stopped with decisions unsent */
};

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static double uniform_with(uint64_t *rng, double lo, double hi)
{
    return lo + (hi - lo) * (double)(rng_next(rng) >> 11) / 9007199254740992.0;
}

static double uniform(struct sim *s, double lo, double hi)
{
    return uniform_with(&s->rng, lo, hi);
}

static bool over(const struct sim *s)
{
    return interrupted || (s->end_at > 0 && mono_now() >= s->end_at);
}

/* Sleeps up to `seconds`, waking early when the run is over. */
static void wait_for(const struct sim *s, double seconds)
{
    double until = mono_now() + seconds;
    while (!over(s) && mono_now() < until) {
        double left = fmin(0.1, until - mono_now());
        nanosleep(&(struct timespec){.tv_nsec = (long)(fmax(left, 0) * 1e9)}, NULL);
    }
}

/* Moves the figures a heartbeat reports: a random walk, busier while processing. */
static void wander(struct sim *s, bool busy)
{
    s->cpu = fmin(98, fmax(2, s->cpu + uniform(s, -8, 8) + (busy ? 3 : -3)));
    s->mem = fmin(95, fmax(10, s->mem + uniform(s, -3, 3)));
    s->tokens_per_min = busy ? uniform(s, 800, 4000) : uniform(s, 0, 150);
    s->cost += s->tokens_per_min / 60.0 * 0.002 / 1000.0 * 60; /* about a minute's worth */
    aei_agent_set_metric(s->agent, "cpu_pct", s->cpu);
    aei_agent_set_metric(s->agent, "mem_pct", s->mem);
    aei_agent_set_metric(s->agent, "tokens_per_min", s->tokens_per_min);
    aei_agent_set_metric(s->agent, "cost_usd", s->cost);
}

/* Queues one decision; `reasoning`, when given, replaces the step's own (to quote a prompt). */
static void emit_step(struct sim *s, uint64_t *rng, const char *exec, const char *parent,
                      double confidence, const char *reasoning, char id[AEI_ID_LEN])
{
    const struct step *st = &steps[rng_next(rng) % NSTEPS];
    struct aei_alternative alts[2] = {
        {st->rejected[0], st->why[0], uniform_with(rng, 0.1, 0.6)},
        {st->rejected[1], st->why[1], uniform_with(rng, 0.05, 0.4)},
    };
    double tokens = floor(uniform_with(rng, 200, 2500));
    struct aei_decision d = {
        .execution_id = exec,
        .parent_decision_id = parent,
        .reasoning = reasoning ? reasoning : st->context,
        .confidence = confidence,
        .alternatives = alts,
        .n_alternatives = 2,
        .outcome = st->chosen,
        .kind = st->kind,
        .duration_ms = floor(uniform_with(rng, 40, 1800)),
        .tokens = tokens,
        .cost_usd = tokens * 0.002 / 1000,
    };
    aei_trace_emit(s->agent, &d, id); /* a full queue is counted in the stats */
}

/* One execution of 10-30 decisions: a tree whose confidence moves and mostly rises. Once the
 * run is over the remaining decisions go without pauses, so that it still ends cleanly. A pause
 * command holds it between decisions; terminate ends it as abandoned (libaei acknowledges
 * every command). */
static void run_execution(struct sim *s)
{
    char exec[96];
    snprintf(exec, sizeof exec, "%s-%s-%u", s->agent_id, s->run, s->executions + 1);
    unsigned n = 10 + (unsigned)(rng_next(&s->rng) % 21);
    char ids[30][AEI_ID_LEN];
    double confidence = uniform(s, 45, 70);
    atomic_fetch_add(&s->busy, 1);
    aei_agent_set_status(s->agent, "processing");
    bool terminated = false;
    for (unsigned i = 0; i < n && !terminated; i++) {
        while (!over(s) && aei_agent_is_paused(s->agent))
            aei_agent_wait_if_paused(s->agent, 0.2);
        if ((terminated = aei_agent_is_terminated(s->agent)))
            break;
        const char *parent = i ? ids[(i - 1) / 3] : NULL;
        confidence = fmin(99, fmax(15, confidence + uniform(s, -9, 12)));
        emit_step(s, &s->rng, exec, parent, round(confidence * 10) / 10, NULL, ids[i]);
        aei_agent_set_metric(s->agent, "confidence", confidence);
        wander(s, true);
        if (!over(s))
            wait_for(s, uniform(s, 0.05, 0.25));
    }
    bool fail = !terminated && rng_next(&s->rng) % 10 == 0;
    struct aei_error err;
    int rc = aei_execution_end(
        s->agent, exec,
        terminated ? "abandoned"
        : fail     ? "failed"
                   : "completed",
        terminated ? "{\"reason\":\"terminated\"}"
        : fail ? "{\"reason\":\"the warehouse query timed out twice\",\"step\":\"tool_selection\"}"
               : NULL,
        &err);
    if (rc != AEI_OK) {
        fprintf(stderr, "aei mock: %s: ending %s failed: %s %s\n", s->agent_id, exec, err.code,
                err.message);
        s->error = 1;
    }
    s->executions++;
    s->failed_executions += fail;
    if (atomic_fetch_sub(&s->busy, 1) == 1 || fail)
        aei_agent_set_status(s->agent, fail ? "error" : "idle");
}

/* An execute command, on libaei's heartbeat thread: a run of 4-8 decisions under the command's
 * params.execution_id, the first quoting params.prompt, ended before the acknowledgement so that
 * `succeeded` means the trace is complete. The run is short because heartbeats wait for it. A
 * paused or terminated agent starts nothing new and rejects it, as docs/commands.md asks. */
static enum aei_command_status on_command(const char *command_json, char *result,
                                          size_t result_size, void *user)
{
    struct sim *s = user;
    json_t *cmd = json_loads(command_json, 0, NULL);
    const char *action = json_string_value(json_object_get(cmd, "action"));
    json_t *params = json_object_get(cmd, "params");
    const char *exec = json_string_value(json_object_get(params, "execution_id"));
    const char *prompt = json_string_value(json_object_get(params, "prompt"));
    const char *refusal = NULL;
    enum aei_command_status status = AEI_COMMAND_SUCCEEDED;
    json_t *out = NULL;
    if (!action || strcmp(action, "execute") != 0) {
        /* libaei has already obeyed pause, resume and terminate; the rest need no work here. */
    } else if (!exec || !*exec) {
        refusal = "the command has no params.execution_id";
    } else if (aei_agent_is_terminated(s->agent)) {
        refusal = "terminated: resume the agent first";
    } else if (aei_agent_is_paused(s->agent)) {
        refusal = "paused: resume the agent first";
    } else if (over(s)) {
        refusal = "the mock is stopping";
    } else {
        atomic_fetch_add(&s->busy, 1);
        aei_agent_set_status(s->agent, "processing");
        unsigned n = 4 + (unsigned)(rng_next(&s->command_rng) % 5), done = 0;
        char ids[8][AEI_ID_LEN], asked[512];
        snprintf(asked, sizeof asked, "Asked: %.300s. %s", prompt ? prompt : "(no prompt)",
                 steps[0].context);
        double confidence = uniform_with(&s->command_rng, 50, 70);
        for (; done < n && !over(s); done++) {
            confidence = fmin(99, fmax(15, confidence + uniform_with(&s->command_rng, -6, 12)));
            emit_step(s, &s->command_rng, exec, done ? ids[(done - 1) / 2] : NULL,
                      round(confidence * 10) / 10, done ? NULL : asked, ids[done]);
            aei_agent_set_metric(s->agent, "confidence", confidence);
            nanosleep(&(struct timespec){.tv_nsec = 20000000}, NULL);
        }
        bool complete = done == n;
        struct aei_error err;
        int rc = aei_execution_end(s->agent, exec, complete ? "completed" : "abandoned",
                                   complete ? NULL : "{\"reason\":\"the mock is stopping\"}", &err);
        if (rc != AEI_OK || !complete) {
            status = AEI_COMMAND_FAILED;
            out = json_pack("{s:s,s:s}", "execution_id", exec, "error",
                            rc != AEI_OK ? err.message : "stopped mid-way; ended as abandoned");
        } else {
            out = json_pack("{s:s,s:s,s:i}", "execution_id", exec, "status", "completed",
                            "decisions", (int)done);
        }
        s->commanded++;
        if (atomic_fetch_sub(&s->busy, 1) == 1)
            aei_agent_set_status(s->agent, "idle");
    }
    if (refusal) {
        status = AEI_COMMAND_REJECTED;
        out = json_pack("{s:s}", "reason", refusal);
    }
    char *text = out ? json_dumps(out, JSON_COMPACT) : NULL;
    if (text && strlen(text) < result_size)
        strcpy(result, text);
    free(text);
    json_decref(out);
    json_decref(cmd);
    return status;
}

static void *simulate(void *arg)
{
    struct sim *s = arg;
    struct aei_error err;
    if (aei_agent_start(s->agent, &err) != AEI_OK) {
        fprintf(stderr, "aei mock: %s: %s %s\n", s->agent_id, err.code, err.message);
        s->error = 1;
        return NULL;
    }
    wander(s, false);
    wait_for(s, uniform(s, 0, 1)); /* staggered, but the first execution comes soon */
    while (!over(s)) {
        if (aei_agent_is_terminated(s->agent)) { /* until a resume */
            wait_for(s, 0.2);
            continue;
        }
        run_execution(s);
        double next = mono_now() + s->o->every;
        while (!over(s) && mono_now() < next) {
            wander(s, false);
            wait_for(s, fmin(1, next - mono_now()));
        }
    }
    /* Stopped here, so that all agents flush at once rather than one after another. */
    s->unsent = aei_agent_stop(s->agent, 10) != AEI_OK;
    return NULL;
}

void mock_help(FILE *out)
{
    fputs("Usage: aei mock --agents N --server HOST:PORT [options]\n"
          "\n"
          "Runs N simulated agents on libaei against an AEI server: heartbeats with varying\n"
          "CPU, memory, tokens and cost, and executions of 10-30 decisions with reasoning,\n"
          "alternatives and moving confidence. Each agent acknowledges the commands it is\n"
          "given; pause holds its execution between decisions, terminate abandons it, and\n"
          "execute runs a short execution under the command's execution_id before it is\n"
          "acknowledged (rejected while the agent is paused or terminated).\n"
          "Prints a summary at the end.\n"
          "\n"
          "Options:\n"
          "  --agents N        simulated agents, 1 to 1000 (default 5)\n"
          "  --server H:P      the server, HOST:PORT or http://HOST:PORT (default 127.0.0.1:3000)\n"
          "  --token T         bearer token (default: $AEI_TOKEN; one of them is required)\n"
          "  --duration S      stop after S seconds (default: run until Ctrl-C)\n"
          "  --every S         seconds between one agent's executions (default 10)\n"
          "  --heartbeat S     seconds between heartbeats (default 5)\n"
          "  -h, --help        this text\n"
          "\n"
          "Exit status: 0 when every heartbeat and decision was accepted and nothing was\n"
          "dropped, 1 otherwise, 2 for a bad command line.\n",
          out);
}

static int parse_seconds(const char *opt, const char *arg, double min, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno || end == arg || *end || !isfinite(v) || v < min) {
        fprintf(stderr, "aei mock: %s: expected a number of seconds of at least %g, got '%s'\n",
                opt, min, arg);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_opts(int argc, char **argv, struct mock_opts *o)
{
    static const struct option longopts[] = {
        {"agents", required_argument, NULL, 'a'}, {"server", required_argument, NULL, 's'},
        {"token", required_argument, NULL, 'T'},  {"duration", required_argument, NULL, 'd'},
        {"every", required_argument, NULL, 'e'},  {"heartbeat", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    *o = (struct mock_opts){.agents = 5, .every = 10, .heartbeat = 5};
    o->token = getenv("AEI_TOKEN");
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        int r = 0;
        char *end;
        switch (c) {
        case 'a':
            errno = 0;
            unsigned long n = strtoul(optarg, &end, 10);
            if (errno || end == optarg || *end || n < 1 || n > MOCK_MAX_AGENTS) {
                fprintf(stderr, "aei mock: --agents: expected 1 to %d, got '%s'\n", MOCK_MAX_AGENTS,
                        optarg);
                r = -1;
            }
            o->agents = (unsigned)n;
            break;
        case 's':
            o->server = optarg;
            break;
        case 'T':
            o->token = optarg;
            break;
        case 'd':
            r = parse_seconds("--duration", optarg, 0, &o->duration);
            break;
        case 'e':
            r = parse_seconds("--every", optarg, 0, &o->every);
            break;
        case 'b':
            r = parse_seconds("--heartbeat", optarg, 0.05, &o->heartbeat);
            break;
        case 'h':
            mock_help(stdout);
            return 1;
        case ':':
            fprintf(stderr, "aei mock: %s needs a value\n", argv[optind - 1]);
            return -1;
        default:
            fprintf(stderr, "aei mock: unknown option '%s'; run 'aei mock --help'\n",
                    argv[optind - 1]);
            return -1;
        }
        if (r)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "aei mock: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!o->server || !*o->server)
        o->server = "127.0.0.1:3000"; /* as aei bench and aei trace */
    if (!o->token || !*o->token) {
        fprintf(stderr, "aei mock: no token: pass --token or set AEI_TOKEN\n");
        return -1;
    }
    return 0;
}

/* Agent errors are counted, not printed one by one: a dead server would flood the terminal. */
static void quiet_log(enum aei_log_level level, const char *message, void *user)
{
    (void)level, (void)message, (void)user;
}

static struct aei_agent_config config_for(const struct mock_opts *o, const char *id,
                                          const char *name)
{
    struct aei_agent_config cfg = aei_agent_config_default();
    cfg.server = o->server;
    cfg.token = o->token;
    cfg.agent_id = id;
    cfg.name = name;
    cfg.heartbeat_interval_s = o->heartbeat;
    cfg.retry_cap_s = 5;
    /* A request gives up after about 3 s of retries (the trace thread then tries its batch
     * again; nothing is lost), so that a dead server cannot hold an agent's thread forever. */
    cfg.max_attempts = 6;
    cfg.on_log = quiet_log;
    return cfg;
}

/* One heartbeat, one try: a bad server or token is named before anything starts. */
static int probe(const struct mock_opts *o, const char *first_id)
{
    struct aei_agent_config cfg = config_for(o, first_id, NULL);
    cfg.max_attempts = 1;
    struct aei_error err;
    struct aei_agent *a = aei_agent_new(&cfg, &err);
    if (!a) {
        fprintf(stderr, "aei mock: %s\n", err.message);
        return CLI_EXIT_USAGE;
    }
    int rc = aei_agent_heartbeat(a, &err);
    aei_agent_free(a);
    if (rc == AEI_EREFUSED && (err.http_status == 401 || err.http_status == 403)) {
        fprintf(stderr,
                "aei mock: the server refused the token (HTTP %d %s: %s); check --token "
                "or AEI_TOKEN\n",
                err.http_status, err.code, err.message);
        return CLI_EXIT_FAIL;
    }
    if (rc != AEI_OK) {
        fprintf(stderr, "aei mock: cannot use the server at %s: %s%s%s\n", o->server,
                err.http_status ? err.code : "", err.http_status ? ": " : "", err.message);
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

static const char *const ROLES[] = {"Researcher", "Coder", "Planner", "Reviewer", "Orchestrator"};

static int make_agents(const struct mock_opts *o, struct sim *sims, char (*names)[48])
{
    char run_id[AEI_ID_LEN];
    aei_uuid4(run_id);
    double end_at = o->duration > 0 ? mono_now() + o->duration : 0;
    for (unsigned i = 0; i < o->agents; i++) {
        struct sim *s = &sims[i];
        *s = (struct sim){.o = o, .end_at = end_at, .cpu = 20, .mem = 35};
        snprintf(s->agent_id, sizeof s->agent_id, "mock-%03u", i + 1);
        snprintf(s->run, sizeof s->run, "%.8s", run_id);
        snprintf(names[i], 48, "Mock %s %u", ROLES[i % 5], i + 1);
        s->rng = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)time(NULL) << 20) ^ (i * 7919ULL + 1);
        s->command_rng = s->rng ^ 0xd1b54a32d192ed03ULL;
        struct aei_agent_config cfg = config_for(o, s->agent_id, names[i]);
        cfg.on_command = on_command;
        cfg.user = s;
        struct aei_error err;
        s->agent = aei_agent_new(&cfg, &err);
        if (!s->agent) {
            fprintf(stderr, "aei mock: %s\n", err.message);
            return -1;
        }
    }
    return 0;
}

static int summarise(const struct mock_opts *o, struct sim *sims, double elapsed)
{
    struct aei_stats sum = {0};
    unsigned executions = 0, failed = 0, errors = 0;
    uint64_t unsent = 0;
    for (unsigned i = 0; i < o->agents; i++) {
        struct aei_stats st;
        if (!sims[i].agent)
            continue;
        errors += (unsigned)sims[i].unsent;
        aei_agent_stats(sims[i].agent, &st);
        sum.heartbeats += st.heartbeats;
        sum.heartbeat_failures += st.heartbeat_failures;
        sum.decisions_sent += st.decisions_sent;
        sum.duplicates += st.duplicates;
        sum.retries += st.retries;
        sum.dropped += st.dropped;
        sum.refused += st.refused;
        sum.commands += st.commands;
        sum.acks += st.acks;
        sum.ack_failures += st.ack_failures;
        unsent += st.queued;
        executions += sims[i].executions + sims[i].commanded;
        failed += sims[i].failed_executions;
        errors += (unsigned)sims[i].error;
    }
    printf("aei mock: %u agents for %.1f s\n"
           "  heartbeats      %llu (failed %llu)\n"
           "  executions      %u (%u ended as failed, on purpose)\n"
           "  decisions sent  %llu (duplicates %llu)\n"
           "  commands        %llu (acknowledged %llu, failed acks %llu)\n"
           "  retries         %llu\n"
           "  dropped         %llu\n"
           "  refused         %llu\n"
           "  unsent at stop  %llu\n",
           o->agents, elapsed, (unsigned long long)sum.heartbeats,
           (unsigned long long)sum.heartbeat_failures, executions, failed,
           (unsigned long long)sum.decisions_sent, (unsigned long long)sum.duplicates,
           (unsigned long long)sum.commands, (unsigned long long)sum.acks,
           (unsigned long long)sum.ack_failures, (unsigned long long)sum.retries,
           (unsigned long long)sum.dropped, (unsigned long long)sum.refused,
           (unsigned long long)unsent);
    bool clean = !errors && !sum.heartbeat_failures && !sum.dropped && !sum.refused && !unsent &&
                 !sum.ack_failures;
    return clean ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

int mock_main(int argc, char **argv)
{
    struct mock_opts o;
    int r = parse_opts(argc, argv, &o);
    if (r)
        return r > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    int rc = probe(&o, "mock-001");
    if (rc != CLI_EXIT_OK)
        return rc;
    struct sim *sims = calloc(o.agents, sizeof *sims);
    char(*names)[48] = calloc(o.agents, sizeof *names);
    pthread_t *threads = calloc(o.agents, sizeof *threads);
    bool *started = calloc(o.agents, sizeof *started);
    if (!sims || !names || !threads || !started) {
        fprintf(stderr, "aei mock: out of memory\n");
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    double t0 = mono_now();
    rc = CLI_EXIT_FAIL;
    if (make_agents(&o, sims, names) == 0) {
        fprintf(stderr, "aei mock: %u agents on %s%s\n", o.agents, o.server,
                o.duration > 0 ? "" : "; Ctrl-C stops them");
        for (unsigned i = 0; i < o.agents; i++)
            started[i] = pthread_create(&threads[i], NULL, simulate, &sims[i]) == 0;
        for (unsigned i = 0; i < o.agents; i++)
            if (started[i])
                pthread_join(threads[i], NULL);
            else
                sims[i].error = 1;
        rc = summarise(&o, sims, mono_now() - t0);
    }
out:
    for (unsigned i = 0; sims && i < o.agents; i++)
        aei_agent_free(sims[i].agent);
    free(sims);
    free(names);
    free(threads);
    free(started);
    return rc;
}
