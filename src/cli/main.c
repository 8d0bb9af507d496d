/* main.c - `aei`, the AEI command-line tool: dispatches to one command per subcommand */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

#ifndef AEI_VERSION
#define AEI_VERSION "0.0.0"
#endif

struct subcommand {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
    void (*help)(FILE *out);
};

/* New commands (mock, token, audit, trace) slot in here, in the order `aei --help` lists them. */
static const struct subcommand commands[] = {
    {"bench", "load-test a server with simulated agents' heartbeats", bench_main, bench_help},
    {"mock", "run simulated agents (heartbeats, executions) on libaei against a server", mock_main,
     mock_help},
    {"trace", "export an execution's decisions (JSON, Markdown) or import a JSON export",
     trace_main, trace_help},
    {"token", "create, list and revoke users' and agents' tokens (audited)", token_main,
     token_help},
    {"audit", "verify the audit log's hash chains against the key and checkpoint", audit_main,
     audit_help},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct subcommand *find(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void usage(FILE *out)
{
    fputs("Usage: aei <command> [options]\n"
          "       aei help <command> | aei --help | aei --version\n"
          "\n"
          "Commands:\n",
          out);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fputs("\n"
          "Run 'aei help <command>' or 'aei <command> --help' for its options.\n",
          out);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *arg = argv[1];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(arg, "--version") == 0 || strcmp(arg, "-V") == 0) {
        printf("aei %s\n", AEI_VERSION);
        return CLI_EXIT_OK;
    }
    if (strcmp(arg, "help") == 0) {
        if (argc == 2) {
            usage(stdout);
            return CLI_EXIT_OK;
        }
        const struct subcommand *c = find(argv[2]);
        if (!c || argc > 3) {
            fprintf(stderr, "aei: %s '%s'; run 'aei --help' for the list of commands\n",
                    c ? "unexpected argument" : "unknown command", argv[c ? 3 : 2]);
            return CLI_EXIT_USAGE;
        }
        c->help(stdout);
        return CLI_EXIT_OK;
    }
    if (arg[0] == '-') {
        fprintf(stderr, "aei: unknown option '%s'; run 'aei --help' for usage\n", arg);
        return CLI_EXIT_USAGE;
    }
    const struct subcommand *c = find(arg);
    if (!c) {
        fprintf(stderr, "aei: unknown command '%s'; run 'aei --help' for the list of commands\n",
                arg);
        return CLI_EXIT_USAGE;
    }
    return c->run(argc - 1, argv + 1);
}
