/* audit.c - `aei audit verify`: walks the audit log's chains straight from the store, and the
 * opening of a store and its audit key that `aei token` shares */
#include "aei/error.h"
#include "cli/cli.h"
#include "common/json.h"
#include "common/log.h"
#include "server/store.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void audit_help(FILE *out)
{
    fputs("Usage: aei audit verify --db URL [--key FILE] [--checkpoint FILE] [--team T] [--json]\n"
          "\n"
          "Checks every audit row of the store (or one team's): the sequence has no gaps, each\n"
          "row links to the one before it, each row's keyed hash matches its content, and the\n"
          "chains reach the heads the checkpoint file recorded. Reports the rows checked and,\n"
          "for the first bad row, its id and why: hash_mismatch, broken_link, sequence_gap,\n"
          "shorter_than_checkpoint or checkpoint_mismatch (docs/audit.md).\n"
          "\n"
          "Options:\n"
          "  --db URL           sqlite:PATH or postgres://... (default: $AEI_DATABASE_URL)\n"
          "  --key FILE         the audit key aeid uses (default: $AEI_AUDIT_KEY_FILE, else\n"
          "                     PATH.audit-key next to a SQLite file, else the state directory)\n"
          "  --checkpoint FILE  the checkpoint file aeid appends to; it must exist (default:\n"
          "                     $AEI_AUDIT_CHECKPOINT; none if unset)\n"
          "  --team T           verify one team's chain only\n"
          "  --json             print the report as one JSON object\n"
          "  -h, --help         show this help\n"
          "\n"
          "Exit status: 0 when every row verifies, 1 when one does not or the store cannot be\n"
          "read, 2 on a bad command line, such as a --checkpoint file that does not exist or a\n"
          "--team with no audit rows.\n",
          out);
}

int cli_open_audit(const char *cmd, const char *db, const char *key_file, bool create,
                   struct store **s, uint8_t key[AUDIT_KEY_LEN])
{
    if (!db || !*db) {
        fprintf(stderr, "%s: no store: give --db URL or set AEI_DATABASE_URL\n", cmd);
        return CLI_EXIT_USAGE;
    }
    char err[512] = "";
    if (store_open_existing(db, s, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", cmd, err);
        return CLI_EXIT_FAIL;
    }
    struct audit_key k;
    if (audit_key_open(*s, db, key_file, "--key", create, &k, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", cmd, err);
        store_close(*s);
        return CLI_EXIT_FAIL;
    }
    memcpy(key, k.bytes, AUDIT_KEY_LEN);
    if (k.created)
        fprintf(stderr, "%s: created the audit key %s (mode 0600); give it to aeid too\n", cmd,
                k.path);
    return CLI_EXIT_OK;
}

/* Prints the verifier's report (with_checkpoint: whether a checkpoint file was read); returns
 * the exit status it means. */
static int report(const struct audit_verifier *v, bool with_checkpoint, bool as_json)
{
    if (as_json) {
        /* The fields of GET /api/v0/audit/verify's answer, but for its timing. */
        json_t *doc =
            json_pack("{s:b,s:I,s:b,s:n}", "ok", v->fault == AUDIT_FAULT_NONE, "rows_checked",
                      (json_int_t)v->checked, "checkpoint", with_checkpoint, "first_bad");
        if (v->fault)
            json_object_set_new(doc, "first_bad",
                                json_pack("{s:I,s:s,s:I,s:s,s:s}", "id", (json_int_t)v->bad_id,
                                          "team_id", v->bad_team, "seq", (json_int_t)v->bad_seq,
                                          "reason", audit_fault_names[v->fault], "message",
                                          v->why));
        char *text = json_render(doc);
        puts(text);
        free(text);
    } else if (v->fault) {
        printf("checked %lld rows: FAILED at row %lld (team %s, seq %lld): %s\n  %s\n",
               (long long)v->checked, (long long)v->bad_id, v->bad_team, (long long)v->bad_seq,
               audit_fault_names[v->fault], v->why);
    } else {
        printf("checked %lld rows: every chain verifies\n", (long long)v->checked);
    }
    return v->fault ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

static int verify_main(int argc, char **argv)
{
    const char *db = getenv("AEI_DATABASE_URL"), *key_file = getenv("AEI_AUDIT_KEY_FILE");
    const char *cp_file = getenv("AEI_AUDIT_CHECKPOINT"), *team = NULL;
    bool as_json = false;
    static const struct option longopts[] = {{"db", required_argument, NULL, 'd'},
                                             {"key", required_argument, NULL, 'k'},
                                             {"checkpoint", required_argument, NULL, 'c'},
                                             {"team", required_argument, NULL, 't'},
                                             {"json", no_argument, NULL, 'j'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            db = optarg;
            break;
        case 'k':
            key_file = optarg;
            break;
        case 'c':
            cp_file = optarg;
            break;
        case 't':
            team = optarg;
            break;
        case 'j':
            as_json = true;
            break;
        case 'h':
            audit_help(stdout);
            return CLI_EXIT_OK;
        default:
            fputs("aei audit verify: run 'aei audit --help' for usage\n", stderr);
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "aei audit verify: unexpected argument '%s'\n", argv[optind]);
        return CLI_EXIT_USAGE;
    }
    if (team && !id_is_valid(team)) {
        fprintf(stderr, "aei audit verify: --team '%s' is not a team id ([A-Za-z0-9._:-])\n", team);
        return CLI_EXIT_USAGE;
    }
    /* A checkpoint file that was named must be there: read as empty, a mistyped path would
     * turn the check for removed rows off and still report success. */
    struct audit_head *heads = NULL;
    size_t nheads = 0;
    char err[512];
    bool with_checkpoint = cp_file && *cp_file;
    if (with_checkpoint) {
        int crc = audit_checkpoint_read(cp_file, &heads, &nheads, err, sizeof(err));
        if (crc) {
            fprintf(stderr, "aei audit verify: %s\n", err);
            return crc == AEI_ENOTFOUND ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
        }
    }
    struct store *s;
    uint8_t key[AUDIT_KEY_LEN];
    int rc = cli_open_audit("aei audit verify", db, key_file, false, &s, key);
    if (rc) {
        free(heads);
        return rc;
    }
    if (team) { /* only that team's head counts */
        size_t k = 0;
        for (size_t i = 0; i < nheads; i++)
            if (strcmp(heads[i].team_id, team) == 0)
                heads[k++] = heads[i];
        nheads = k;
    }
    struct audit_verifier v;
    audit_verify_init(&v, key, heads, nheads);
    rc = store_verify_audit(s, team, &v);
    store_close(s);
    free(heads);
    if (rc) {
        fprintf(stderr, "aei audit verify: reading the audit log: %s\n", aei_strerror(rc));
        return CLI_EXIT_FAIL;
    }
    /* Nothing checked is no proof: a mistyped team id must not read as a whole chain. */
    if (team && v.checked == 0 && !v.fault) {
        fprintf(stderr,
                "aei audit verify: team %s has no audit rows, so nothing was verified; check "
                "the team id (aei token list shows the teams)\n",
                team);
        return CLI_EXIT_USAGE;
    }
    return report(&v, with_checkpoint, as_json);
}

int audit_main(int argc, char **argv)
{
    log_set_level(LOG_WARN);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        audit_help(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "verify") == 0)
        return verify_main(argc - 1, argv + 1);
    fprintf(stderr, "aei audit: unknown subcommand '%s'; run 'aei audit --help'\n", argv[1]);
    return CLI_EXIT_USAGE;
}
