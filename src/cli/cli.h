/* cli.h - commands of the `aei` command-line tool */
#ifndef AEI_CLI_CLI_H
#define AEI_CLI_CLI_H

#include "server/store.h"

#include <stdbool.h>
#include <stdio.h>

/* Exit statuses shared by all commands. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1  /* the command ran but could not do its job */
#define CLI_EXIT_USAGE 2 /* bad command line */

/*
 * Each command takes its own argv (argv[0] is the command name) and returns an exit status.
 * Its help function prints the full usage text to `out`.
 */
int bench_main(int argc, char **argv);
void bench_help(FILE *out);
int mock_main(int argc, char **argv);
void mock_help(FILE *out);
int trace_main(int argc, char **argv);
void trace_help(FILE *out);
int token_main(int argc, char **argv);
void token_help(FILE *out);
int audit_main(int argc, char **argv);
void audit_help(FILE *out);

/* Opens the store at db and reads its audit key (key_file, or the default next to it; created
 * when create is set and it is missing), saying what went wrong on stderr as cmd. Returns
 * CLI_EXIT_OK with *s (caller closes) and key, or the exit status to return. */
int cli_open_audit(const char *cmd, const char *db, const char *key_file, bool create,
                   struct store **s, uint8_t key[AUDIT_KEY_LEN]);

#endif
