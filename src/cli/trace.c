/* trace.c - `aei trace export` and `aei trace import`: an execution's decisions to and from a
 * file */
#include "aei/error.h"
#include "cli/cli.h"
#include "cli/net.h"
#include "common/buf.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* POST /api/v0/traces takes at most this many decisions ... */
#define IMPORT_BATCH_MAX 1000
/* ... in a body of at most aeid's --max-body (65536 by default) times 64. */
#define IMPORT_BYTES_DEFAULT (4 * 1024 * 1024)
#define ID_MAX 128

struct common {
    const char *cmd;
    char host[256], port[8], authority[272];
    const char *token;
    int timeout_s;
};

void trace_help(FILE *out)
{
    fputs("Usage: aei trace export <execution_id> [options]\n"
          "       aei trace import <FILE> [options]\n"
          "\n"
          "export  writes an execution's decisions as one document, streamed from\n"
          "        GET /api/v0/executions/{id}/export: JSON (an array of decisions in tree\n"
          "        pre-order, then those waiting for their parent) or Markdown for a GitHub\n"
          "        issue. Goes to stdout unless -o names a file; the file appears only once the\n"
          "        whole document has arrived.\n"
          "import  posts the decisions of a JSON export (FILE, or - for stdin) to\n"
          "        POST /api/v0/traces in batches, in file order, so that parents arrive before\n"
          "        their children. Decisions already stored are left alone: importing twice\n"
          "        stores nothing twice. The file is read a batch at a time.\n"
          "\n"
          "Options:\n"
          "  --server HOST:PORT   aeid's HTTP address (default 127.0.0.1:3000)\n"
          "  --token T            bearer token (default: $AEI_TOKEN)\n"
          "  --timeout SECONDS    for connecting and for each read (default 30)\n"
          "  -h, --help           show this help\n"
          "export:\n"
          "  --format F           json (default) or markdown\n"
          "  -o, --output FILE    write to FILE instead of stdout\n"
          "import:\n"
          "  --batch N            decisions per request, 1 to 1000 (default 1000)\n"
          "  --max-bytes N        largest request body (default 4194304: aeid's limit for\n"
          "                       traces with its default --max-body)\n"
          "\n"
          "Exit status: 0 on success, 1 when the server refused or could not be reached or the\n"
          "document arrived incomplete, 2 on a bad command line.\n",
          out);
}

static int usage_error(const char *cmd, const char *msg, const char *arg)
{
    fprintf(stderr, "%s: %s%s%s%s; run 'aei trace --help' for usage\n", cmd, msg, arg ? " '" : "",
            arg ? arg : "", arg ? "'" : "");
    return CLI_EXIT_USAGE;
}

static bool id_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= ID_MAX &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-") == n;
}

/* Parses a whole number from min to max. */
static bool number_ok(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

enum { OPT_SERVER = 256, OPT_TOKEN, OPT_TIMEOUT, OPT_FORMAT, OPT_BATCH, OPT_MAX_BYTES };

/* Options both commands take; returns 0, 1 when handled (help), or an exit status. */
static int common_option(struct common *c, int opt, const char *arg)
{
    long v;
    switch (opt) {
    case OPT_SERVER:
        return cli_parse_server(c->cmd, "--server", arg, c->host, c->port, c->authority)
                   ? CLI_EXIT_USAGE
                   : 0;
    case OPT_TOKEN:
        c->token = arg;
        return 0;
    case OPT_TIMEOUT:
        if (!number_ok(arg, 1, 3600, &v))
            return usage_error(c->cmd, "--timeout: expected seconds from 1 to 3600, got", arg);
        c->timeout_s = (int)v;
        return 0;
    default:
        return usage_error(c->cmd, "unknown option or missing value", NULL);
    }
}

static void common_init(struct common *c, const char *cmd)
{
    memset(c, 0, sizeof(*c));
    c->cmd = cmd;
    snprintf(c->host, sizeof(c->host), "127.0.0.1");
    snprintf(c->port, sizeof(c->port), "3000");
    snprintf(c->authority, sizeof(c->authority), "127.0.0.1:3000");
    c->token = getenv("AEI_TOKEN");
    c->timeout_s = 30;
}

/* Writes a request's head into b. */
static void request_head(struct buf *b, const struct common *c, const char *method,
                         const char *target, size_t body_len)
{
    buf_reset(b);
    buf_printf(b, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: aei\r\nConnection: close\r\n", method,
               target, c->authority);
    if (c->token && *c->token)
        buf_printf(b, "Authorization: Bearer %s\r\n", c->token);
    if (body_len)
        buf_printf(b, "Content-Type: application/json\r\nContent-Length: %zu\r\n", body_len);
    buf_puts(b, "\r\n");
}

/* Sends a request and reads its answer's head. Returns 0 or an exit status. */
static int roundtrip(struct cli_http *h, const struct common *c, const char *method,
                     const char *target, const char *body, size_t len)
{
    if (cli_http_open(h, c->cmd, c->host, c->port, c->authority, c->timeout_s))
        return CLI_EXIT_FAIL;
    struct buf req = {0};
    request_head(&req, c, method, target, len);
    int rc = cli_http_send(h, req.data, req.len);
    if (rc == 0 && len)
        rc = cli_http_send(h, body, len);
    buf_free(&req);
    if (rc == 0)
        rc = cli_http_read_head(h);
    if (rc) {
        fprintf(stderr, "%s: the connection to %s failed before an answer came\n", c->cmd,
                c->authority);
        cli_http_close(h);
        return CLI_EXIT_FAIL;
    }
    return 0;
}

/* Reads a refusal's body and says what it was. */
static int refused(struct cli_http *h, const struct common *c)
{
    char *body = cli_http_read_all(h, 65536);
    cli_http_report(c->cmd, h->status, body);
    free(body);
    cli_http_close(h);
    return CLI_EXIT_FAIL;
}

/* ---- export ---- */

static int export_main(int argc, char **argv)
{
    struct common c;
    common_init(&c, "aei trace export");
    const char *format = "json", *output = NULL;
    static const struct option longopts[] = {
        {"server", required_argument, NULL, OPT_SERVER},
        {"token", required_argument, NULL, OPT_TOKEN},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt, rc;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "ho:", longopts, NULL)) != -1) {
        if (opt == 'h') {
            trace_help(stdout);
            return CLI_EXIT_OK;
        } else if (opt == 'o') {
            output = optarg;
        } else if (opt == OPT_FORMAT) {
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "markdown") != 0)
                return usage_error(c.cmd, "--format: expected json or markdown, got", optarg);
            format = optarg;
        } else if (opt == '?') {
            return usage_error(c.cmd, "unknown option or missing value", argv[optind - 1]);
        } else if ((rc = common_option(&c, opt, optarg)) != 0) {
            return rc;
        }
    }
    if (optind != argc - 1)
        return usage_error(c.cmd, "expected one execution id", NULL);
    const char *id = argv[optind];
    if (!id_ok(id))
        return usage_error(
            c.cmd, "an execution id has 1-128 characters from A-Z a-z 0-9 . _ : -, got", id);

    char target[256], part[4096];
    snprintf(target, sizeof(target), "/api/v0/executions/%s/export?format=%s", id, format);
    struct cli_http h;
    if ((rc = roundtrip(&h, &c, "GET", target, NULL, 0)) != 0)
        return rc;
    if (h.status != 200)
        return refused(&h, &c);

    FILE *out = stdout;
    if (output) {
        /* The file appears whole or not at all. */
        snprintf(part, sizeof(part), "%s.part", output);
        out = fopen(part, "w");
        if (!out) {
            fprintf(stderr, "%s: cannot write %s: %s\n", c.cmd, part, strerror(errno));
            cli_http_close(&h);
            return CLI_EXIT_FAIL;
        }
    }
    char piece[65536];
    long n;
    long long total = 0;
    while ((n = cli_http_read_body(&h, piece, sizeof(piece))) > 0) {
        if (fwrite(piece, 1, (size_t)n, out) != (size_t)n)
            break;
        total += n;
    }
    cli_http_close(&h);
    bool complete = n == 0 && h.done;
    bool written = fflush(out) == 0 && !ferror(out);
    if (output && fclose(out) != 0)
        written = false;
    if (!complete)
        fprintf(stderr,
                "%s: the export arrived incomplete (%lld bytes, then the connection ended); "
                "try again\n",
                c.cmd, total);
    else if (!written)
        fprintf(stderr, "%s: cannot write %s: %s\n", c.cmd, output ? part : "stdout",
                strerror(errno));
    if (output && complete && written && rename(part, output) != 0) {
        fprintf(stderr, "%s: cannot rename %s to %s: %s\n", c.cmd, part, output, strerror(errno));
        written = false;
    }
    if (output && !(complete && written))
        unlink(part);
    return complete && written ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* ---- import ---- */

/* Splits a JSON array into its elements' text as it is read: no element is parsed here (the
 * server validates them), only strings and nesting are followed. */
struct splitter {
    FILE *in;
    int depth; /* 0 before the array, 1 between elements, more inside one */
    bool in_string, escaped;
    long long line; /* for messages */
};

/* Appends the next element's text to b. Returns 1 when there was one, 0 at the array's end, or
 * AEI_EINVAL when the text is not a JSON array. */
static int next_element(struct splitter *sp, struct buf *b)
{
    int ch;
    while ((ch = getc(sp->in)) != EOF) {
        char c = (char)ch;
        if (c == '\n')
            sp->line++;
        if (sp->depth == 0) {
            if (c == '[')
                sp->depth = 1;
            else if (!strchr(" \t\r\n", c))
                return AEI_EINVAL;
            continue;
        }
        if (sp->depth == 1 && !sp->in_string) {
            if (strchr(" \t\r\n,", c))
                continue;
            if (c == ']')
                return 0;
            if (c != '{')
                return AEI_EINVAL; /* every element is a decision object */
        }
        buf_append(b, &c, 1);
        if (sp->in_string) {
            if (sp->escaped)
                sp->escaped = false;
            else if (c == '\\')
                sp->escaped = true;
            else if (c == '"')
                sp->in_string = false;
        } else if (c == '"') {
            sp->in_string = true;
        } else if (c == '{' || c == '[') {
            sp->depth++;
        } else if (c == '}' || c == ']') {
            sp->depth--;
        }
        if (sp->depth == 1 && !sp->in_string && (c == '}' || c == ']'))
            return 1;
        if (sp->depth < 1)
            return AEI_EINVAL;
    }
    return AEI_EINVAL; /* the file ended inside the array */
}

struct import_totals {
    long long sent, stored, duplicates, batches;
};

/* Posts one batch ("[a,b,...]" in body) whose first decision is number `first` of the file. */
static int post_batch(const struct common *c, const struct buf *body, long long first, long count,
                      struct import_totals *t)
{
    struct cli_http h;
    int rc = roundtrip(&h, c, "POST", "/api/v0/traces", body->data, body->len);
    if (rc)
        return rc;
    char *answer = cli_http_read_all(&h, 1 << 20);
    cli_http_close(&h);
    json_t *doc = answer ? json_loads(answer, 0, NULL) : NULL;
    if (h.status != 200) {
        json_t *errors = json_object_get(json_object_get(doc, "error"), "errors");
        cli_http_report(c->cmd, h.status, answer);
        size_t i;
        json_t *e;
        json_array_foreach(errors, i, e)
        {
            fprintf(stderr, "%s: decision %lld of the file (counting from 0): %s\n", c->cmd,
                    first + (long long)json_integer_value(json_object_get(e, "index")),
                    json_string_value(json_object_get(e, "message")));
        }
        fprintf(stderr, "%s: the %lld decisions before it were imported; the rest were not\n",
                c->cmd, first);
        rc = CLI_EXIT_FAIL;
    } else {
        t->stored += json_integer_value(json_object_get(doc, "stored"));
        t->duplicates += json_integer_value(json_object_get(doc, "duplicates"));
        t->sent += count;
        t->batches++;
    }
    json_decref(doc);
    free(answer);
    return rc;
}

static int import_main(int argc, char **argv)
{
    struct common c;
    common_init(&c, "aei trace import");
    long batch = IMPORT_BATCH_MAX, max_bytes = IMPORT_BYTES_DEFAULT;
    static const struct option longopts[] = {
        {"server", required_argument, NULL, OPT_SERVER},
        {"token", required_argument, NULL, OPT_TOKEN},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"batch", required_argument, NULL, OPT_BATCH},
        {"max-bytes", required_argument, NULL, OPT_MAX_BYTES},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt, rc;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (opt == 'h') {
            trace_help(stdout);
            return CLI_EXIT_OK;
        } else if (opt == OPT_BATCH) {
            if (!number_ok(optarg, 1, IMPORT_BATCH_MAX, &batch))
                return usage_error(c.cmd, "--batch: expected a number from 1 to 1000, got", optarg);
        } else if (opt == OPT_MAX_BYTES) {
            if (!number_ok(optarg, 1024, 1L << 30, &max_bytes))
                return usage_error(c.cmd, "--max-bytes: expected a number of bytes from 1024, got",
                                   optarg);
        } else if (opt == '?') {
            return usage_error(c.cmd, "unknown option or missing value", argv[optind - 1]);
        } else if ((rc = common_option(&c, opt, optarg)) != 0) {
            return rc;
        }
    }
    if (optind != argc - 1)
        return usage_error(c.cmd, "expected one file (- for stdin)", NULL);
    const char *path = argv[optind];
    struct splitter sp = {.in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r"), .line = 1};
    if (!sp.in) {
        fprintf(stderr, "%s: cannot read %s: %s\n", c.cmd, path, strerror(errno));
        return CLI_EXIT_FAIL;
    }
    struct buf body = {0}, next = {0};
    struct import_totals t = {0};
    long count = 0;
    rc = CLI_EXIT_OK;
    buf_puts(&body, "[");
    for (;;) {
        buf_reset(&next);
        int got = next_element(&sp, &next);
        if (got < 0) {
            fprintf(stderr, "%s: %s: not a JSON array of decisions (line %lld)\n", c.cmd, path,
                    sp.line);
            rc = CLI_EXIT_FAIL;
            break;
        }
        /* A full batch goes before the element that would overfill it. */
        bool full = count == batch || (count > 0 && body.len + next.len + 2 > (size_t)max_bytes);
        if (count > 0 && (full || got == 0)) {
            buf_puts(&body, "]");
            if ((rc = post_batch(&c, &body, t.sent, count, &t)) != 0)
                break;
            buf_reset(&body);
            buf_puts(&body, "[");
            count = 0;
        }
        if (got == 0)
            break;
        if (count > 0)
            buf_puts(&body, ",");
        buf_append(&body, next.data, next.len);
        count++;
    }
    if (sp.in != stdin)
        fclose(sp.in);
    buf_free(&body);
    buf_free(&next);
    if (rc == CLI_EXIT_OK)
        printf("imported %lld decision%s in %lld request%s: %lld stored, %lld already there\n",
               t.sent, t.sent == 1 ? "" : "s", t.batches, t.batches == 1 ? "" : "s", t.stored,
               t.duplicates);
    return rc;
}

int trace_main(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("aei trace", "expected a subcommand, export or import", NULL);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        trace_help(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "export") == 0)
        return export_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "import") == 0)
        return import_main(argc - 1, argv + 1);
    return usage_error("aei trace", "unknown subcommand (use export or import):", argv[1]);
}
