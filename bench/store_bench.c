/* store_bench.c - how fast a store commits heartbeat batches, without HTTP in the way */
#include "aei/error.h"
#include "cli/proc.h"
#include "common/time.h"
#include "server/store.h"

#include <libpq-fe.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: store-bench DB_URL [BATCH [AGENTS [SECONDS]]]\n"
    "\n"
    "Commits batches of BATCH heartbeats (default 25) spread over AGENTS agents (default 100)\n"
    "to the store at DB_URL (sqlite:PATH or postgresql://...) for SECONDS (default 5), the way\n"
    "aeid's writer thread does, and prints heartbeats/s, the time per commit and the CPU time\n"
    "per heartbeat: this process's and, on PostgreSQL, its server process's (read from /proc\n"
    "when the server runs on this machine).\n";

/* The CPU seconds of the PostgreSQL server process serving `store`; -1 when not PostgreSQL or
 * not readable here (a server on another machine). */
static double backend_cpu_s(struct store *store)
{
    PGconn *c = store_pg_conn(store);
    double secs;
    if (!c || proc_cpu_tree(PQbackendPID(c), &secs, NULL) < 0)
        return -1;
    return secs;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    int batch = argc > 2 ? atoi(argv[2]) : 25;
    int agents = argc > 3 ? atoi(argv[3]) : 100;
    double seconds = argc > 4 ? atof(argv[4]) : 5;
    if (batch < 1 || batch > 1024 || agents < 1 || seconds <= 0) {
        fputs("store-bench: BATCH is 1-1024, AGENTS at least 1, SECONDS above 0\n", stderr);
        return 2;
    }
    mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024); /* as aeid's main() does */
    struct store *store;
    char err[256];
    if (store_open(argv[1], &store, err, sizeof(err)) != 0) {
        fprintf(stderr, "store-bench: %s\n", err);
        return 1;
    }
    struct heartbeat *hbs = calloc((size_t)batch, sizeof(*hbs));
    struct heartbeat **ptrs = calloc((size_t)batch, sizeof(*ptrs));
    if (!hbs || !ptrs)
        abort();
    long long n = 0, commits = 0;
    double cpu0 = proc_own_cpu_s(), backend0 = backend_cpu_s(store);
    int64_t start = aei_mono_us(), end = start + (int64_t)(seconds * 1e6), ts = aei_now_us();
    while (aei_mono_us() < end) {
        for (int i = 0; i < batch; i++) {
            struct heartbeat *hb = &hbs[i];
            memset(hb, 0, sizeof(*hb));
            snprintf(hb->agent_id, sizeof(hb->agent_id), "bench-%06lld", (n + i) % agents);
            hb->status = (enum hb_status)((n + i) % HB_STATUS_COUNT);
            for (int m = 0; m < HB_METRIC_COUNT; m++) {
                hb->metric[m] = (double)((n + i + m) % 100);
                hb->has_metric[m] = true;
            }
            hb->children_json = "[]";
            hb->labels_json = "{\"role\":\"bench\"}";
            hb->server_ts = ++ts;
            ptrs[i] = hb;
        }
        int rc = store_put_heartbeats(store, ptrs, (size_t)batch);
        if (rc) {
            fprintf(stderr, "store-bench: commit failed: %s\n", aei_strerror(rc));
            return 1;
        }
        n += batch;
        commits++;
    }
    double secs = (double)(aei_mono_us() - start) / 1e6;
    double cpu_us = (proc_own_cpu_s() - cpu0) * 1e6 / (double)n, backend1 = backend_cpu_s(store);
    printf("%s: %lld heartbeats in %lld commits of %d over %d agents in %.2f s: "
           "%.0f heartbeats/s, %.3f ms per commit; CPU %.1f us a heartbeat",
           argv[1], n, commits, batch, agents, secs, (double)n / secs, secs * 1e3 / (double)commits,
           cpu_us);
    if (backend0 >= 0 && backend1 >= backend0)
        printf(" here and %.1f in the server", (backend1 - backend0) * 1e6 / (double)n);
    putchar('\n');
    store_close(store);
    free(hbs);
    free(ptrs);
    return 0;
}
