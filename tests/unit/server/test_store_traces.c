/* test_store_traces.c - decision traces in the store, run on SQLite and (with AEI_TEST_PG_URL)
 * PostgreSQL */
#include "aei/error.h"
#include "common/json.h"
#include "common/time.h"
#include "server/store.h"
#include "store_fixture.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A prefix unique to this run, so that PostgreSQL runs do not see each other's rows. */
static void unique(char *out, size_t n, const char *name)
{
    static int seq;
    snprintf(out, n, "%s-%d-%lld-%d", name, (int)getpid(), (long long)(aei_now_us() % 1000000000),
             seq++);
}

static struct decision make(const char *prefix, const char *id, const char *exec,
                            const char *parent, int64_t ts)
{
    struct decision d = {.server_ts = ts};
    snprintf(d.decision_id, sizeof(d.decision_id), "%s-%s", prefix, id);
    snprintf(d.execution_id, sizeof(d.execution_id), "%s-%s", prefix, exec);
    snprintf(d.agent_id, sizeof(d.agent_id), "%s-agent", prefix);
    if (parent)
        snprintf(d.parent_id, sizeof(d.parent_id), "%s-%s", prefix, parent);
    d.alternatives_json = strdup("[]");
    d.labels_json = strdup("{}");
    return d;
}

static void put(struct store *s, struct decision *ds, size_t n, bool *stored)
{
    struct decision **ptrs = malloc(n * sizeof(*ptrs));
    for (size_t i = 0; i < n; i++)
        ptrs[i] = &ds[i];
    int rc = store_put_decisions(s, ptrs, n, stored);
    free(ptrs);
    cr_assert_eq(rc, 0, "store_put_decisions: %d", rc);
}

static int put_rc(struct store *s, struct decision *ds, size_t n)
{
    struct decision **ptrs = malloc(n * sizeof(*ptrs));
    bool *stored = malloc(n * sizeof(*stored));
    for (size_t i = 0; i < n; i++)
        ptrs[i] = &ds[i];
    int rc = store_put_decisions(s, ptrs, n, stored);
    free(ptrs);
    free(stored);
    return rc;
}

static void clear_all(struct decision *ds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        decision_clear(&ds[i]);
}

static struct execution get_exec(struct store *s, const char *prefix, const char *exec)
{
    char id[256];
    snprintf(id, sizeof(id), "%s-%s", prefix, exec);
    struct execution e;
    cr_assert_eq(store_get_execution(s, id, &e), 0, "get_execution(%s)", id);
    return e;
}

/* The whole tree of an execution, in one read. */
static struct decision *tree(struct store *s, const char *prefix, const char *exec, size_t *n)
{
    char id[256];
    snprintf(id, sizeof(id), "%s-%s", prefix, exec);
    struct decision_query q = {.execution_id = id, .limit = -1};
    struct decision *rows;
    cr_assert_eq(store_list_decisions(s, &q, &rows, n), 0);
    return rows;
}

/* The short name a test gave a decision: its decision_id after the prefix. */
static const char *name_of(const struct decision *d, const char *prefix)
{
    return d->decision_id + strlen(prefix) + 1;
}

Test(store_traces, a_retried_batch_stores_nothing_twice)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-unit-traces");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        char p[96];
        unique(p, sizeof(p), "retry");
        struct decision ds[3] = {make(p, "r", "e", NULL, 1000), make(p, "a", "e", "r", 1001),
                                 make(p, "b", "e", "r", 1002)};
        ds[0].confidence = 80, ds[0].has_confidence = true;
        ds[1].confidence = 60, ds[1].has_confidence = true;
        ds[1].cost_usd = 0.25, ds[1].has_cost = true;
        ds[2].cost_usd = 0.5, ds[2].has_cost = true;
        bool stored[3];
        put(s, ds, 3, stored);
        for (int i = 0; i < 3; i++)
            cr_assert(stored[i], "%s: [%d] is new", urls[u], i);
        struct execution e = get_exec(s, p, "e");
        cr_assert_eq(e.decisions, 3, "%s", urls[u]);
        cr_assert_eq(e.confidence_n, 2);
        cr_assert_float_eq(e.confidence_sum, 140, 1e-9);
        cr_assert_float_eq(e.cost_usd, 0.75, 1e-9);
        cr_assert_eq(e.pending, 0);
        cr_assert_eq(e.status, EXEC_RUNNING);
        cr_assert_eq(e.started, 1000, "started is the first decision's time");
        cr_assert_eq(e.ended, 0);
        char agent[160];
        snprintf(agent, sizeof(agent), "%s-agent", p);
        cr_assert_str_eq(e.agent_id, agent);

        put(s, ds, 3, stored);
        for (int i = 0; i < 3; i++)
            cr_assert_not(stored[i], "%s: [%d] is stored already", urls[u], i);
        struct execution again = get_exec(s, p, "e");
        cr_assert_eq(again.decisions, 3, "%s: figures unchanged", urls[u]);
        cr_assert_eq(again.confidence_n, 2);
        cr_assert_float_eq(again.confidence_sum, 140, 1e-9);
        cr_assert_float_eq(again.cost_usd, 0.75, 1e-9);
        size_t nrows;
        struct decision *rows = tree(s, p, "e", &nrows);
        cr_assert_eq(nrows, 3, "%s", urls[u]);
        store_free_decisions(rows, nrows);
        clear_all(ds, 3);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

Test(store_traces, a_repeated_id_in_one_batch_is_stored_once)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-unit-traces");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        char p[96];
        unique(p, sizeof(p), "dup");
        struct decision ds[4] = {make(p, "r", "e", NULL, 1), make(p, "a", "e", "r", 2),
                                 make(p, "a", "e", "r", 3), make(p, "r", "e", NULL, 4)};
        ds[1].outcome = strdup("first");
        ds[2].outcome = strdup("second");
        bool stored[4];
        put(s, ds, 4, stored);
        cr_assert(stored[0] && stored[1], "%s", urls[u]);
        cr_assert_not(stored[2] || stored[3], "%s: repeats are not stored", urls[u]);
        struct execution e = get_exec(s, p, "e");
        cr_assert_eq(e.decisions, 2, "%s", urls[u]);
        size_t nrows;
        struct decision *rows = tree(s, p, "e", &nrows);
        cr_assert_eq(nrows, 2);
        cr_assert_str_eq(rows[1].outcome, "first", "%s: the first of a repeated id wins", urls[u]);
        cr_assert_eq(rows[1].server_ts, 2);
        store_free_decisions(rows, nrows);
        clear_all(ds, 4);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

Test(store_traces, a_child_before_its_parent_waits_then_takes_its_place)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-unit-traces");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        char p[96];
        unique(p, sizeof(p), "late");
        /* A grandchild and a child arrive before the root, in separate batches; a decision
         * naming a parent of another execution waits for good. */
        struct decision g[1] = {make(p, "g", "e", "c", 10)};
        struct decision c[2] = {make(p, "c", "e", "r", 11), make(p, "x", "e2", "r", 12)};
        struct decision r[1] = {make(p, "r", "e", NULL, 13)};
        bool stored[2];
        put(s, g, 1, stored);
        put(s, c, 2, stored);
        struct execution e = get_exec(s, p, "e");
        cr_assert_eq(e.pending, 2, "%s: both wait", urls[u]);
        cr_assert_eq(e.decisions, 2);
        cr_assert_eq(e.started, 10);
        size_t nrows;
        struct decision *rows = tree(s, p, "e", &nrows);
        cr_assert_eq(nrows, 0, "%s: waiting decisions are not listed", urls[u]);
        store_free_decisions(rows, nrows);

        put(s, r, 1, stored);
        e = get_exec(s, p, "e");
        cr_assert_eq(e.pending, 0, "%s: the tree resolved", urls[u]);
        cr_assert_eq(e.decisions, 3);
        rows = tree(s, p, "e", &nrows);
        cr_assert_eq(nrows, 3, "%s", urls[u]);
        const char *order[] = {"r", "c", "g"};
        for (int i = 0; i < 3; i++) {
            cr_assert_str_eq(name_of(&rows[i], p), order[i], "%s: pre-order", urls[u]);
            cr_assert_eq(rows[i].depth, i);
            cr_assert_eq(strlen(rows[i].path), (size_t)(i + 1) * TRACE_KEY_LEN);
        }
        cr_assert_eq(strncmp(rows[2].path, rows[1].path, strlen(rows[1].path)), 0,
                     "a path extends its parent's");
        store_free_decisions(rows, nrows);
        struct execution e2 = get_exec(s, p, "e2");
        cr_assert_eq(e2.pending, 1, "%s: a parent in another execution is not adopted", urls[u]);
        clear_all(g, 1);
        clear_all(c, 2);
        clear_all(r, 1);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

/* The decisions of one execution that wait for their parent, page by page after `after_id`. */
static struct decision *waiting(struct store *s, const char *prefix, const char *exec,
                                int64_t after_id, int limit, size_t *n)
{
    char id[256];
    snprintf(id, sizeof(id), "%s-%s", prefix, exec);
    struct decision_query q = {
        .execution_id = id, .waiting = true, .after_id = after_id, .limit = limit};
    struct decision *rows;
    cr_assert_eq(store_list_decisions(s, &q, &rows, n), 0);
    return rows;
}

Test(store_traces, waiting_decisions_are_listed_apart_in_arrival_order)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-unit-traces");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        char p[96];
        unique(p, sizeof(p), "wait");
        /* A rooted pair, and three decisions whose parents never come, one of them the child of
         * another waiting one; another execution's waiting decision is not listed. */
        struct decision ds[6] = {make(p, "r", "e", NULL, 1),    make(p, "w1", "e", "gone", 2),
                                 make(p, "a", "e", "r", 3),     make(p, "w2", "e", "w1", 4),
                                 make(p, "w3", "e", "lost", 5), make(p, "o", "e2", "gone", 6)};
        bool stored[6];
        put(s, ds, 6, stored);
        size_t nrows;
        struct decision *rows = waiting(s, p, "e", 0, -1, &nrows);
        cr_assert_eq(nrows, 3, "%s: three wait", urls[u]);
        const char *order[] = {"w1", "w2", "w3"};
        for (int i = 0; i < 3; i++) {
            cr_assert_str_eq(name_of(&rows[i], p), order[i], "%s: arrival order", urls[u]);
            cr_assert_null(rows[i].path);
            cr_assert_eq(rows[i].depth, -1);
        }
        cr_assert_str_eq(rows[1].parent_id + strlen(p) + 1, "w1");
        int64_t first = rows[0].id, second = rows[1].id;
        store_free_decisions(rows, nrows);

        /* Keyset pages: after the first, one at a time. */
        rows = waiting(s, p, "e", first, 1, &nrows);
        cr_assert_eq(nrows, 1, "%s", urls[u]);
        cr_assert_str_eq(name_of(&rows[0], p), "w2", "%s: the page after w1", urls[u]);
        store_free_decisions(rows, nrows);
        rows = waiting(s, p, "e", second, 10, &nrows);
        cr_assert_eq(nrows, 1, "%s", urls[u]);
        cr_assert_str_eq(name_of(&rows[0], p), "w3", "%s", urls[u]);
        int64_t last = rows[0].id;
        store_free_decisions(rows, nrows);
        rows = waiting(s, p, "e", last, 10, &nrows);
        cr_assert_eq(nrows, 0, "%s: nothing after the last", urls[u]);
        store_free_decisions(rows, nrows);

        /* Once w1's parent lands, w1 and w2 take their place and only w3 still waits. */
        struct decision late[1] = {make(p, "gone", "e", NULL, 7)};
        put(s, late, 1, stored);
        rows = waiting(s, p, "e", 0, -1, &nrows);
        cr_assert_eq(nrows, 1, "%s", urls[u]);
        cr_assert_str_eq(name_of(&rows[0], p), "w3", "%s", urls[u]);
        store_free_decisions(rows, nrows);
        rows = tree(s, p, "e", &nrows);
        cr_assert_eq(nrows, 5, "%s: the tree has the rest", urls[u]);
        store_free_decisions(rows, nrows);
        clear_all(ds, 6);
        clear_all(late, 1);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

Test(store_traces, a_shuffled_tree_in_one_batch_resolves)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-unit-traces");
    enum { N = 60 };
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        char p[96];
        unique(p, sizeof(p), "shuf");
        /* Node i hangs under (i - 1) / 3: a ternary tree, given leaves first. */
        int depth[N], parent[N];
        struct decision ds[N];
        for (int i = 0; i < N; i++) {
            parent[i] = i ? (i - 1) / 3 : -1;
            depth[i] = i ? depth[parent[i]] + 1 : 0;
        }
        for (int k = 0; k < N; k++) {
            int i = N - 1 - k;
            char id[16], par[16];
            snprintf(id, sizeof(id), "n%d", i);
            snprintf(par, sizeof(par), "n%d", (i - 1) / 3);
            ds[k] = make(p, id, "e", i ? par : NULL, 100 + k);
        }
        bool stored[N];
        put(s, ds, N, stored);
        struct execution e = get_exec(s, p, "e");
        cr_assert_eq(e.pending, 0, "%s", urls[u]);
        cr_assert_eq(e.decisions, N);
        size_t nrows;
        struct decision *rows = tree(s, p, "e", &nrows);
        cr_assert_eq(nrows, N, "%s", urls[u]);
        char *path_of[N] = {0};
        for (size_t k = 0; k < nrows; k++) {
            int i = atoi(name_of(&rows[k], p) + 1);
            cr_assert_null(path_of[i], "listed once");
            path_of[i] = rows[k].path;
            cr_assert_eq(rows[k].depth, depth[i], "%s: depth of n%d", urls[u], i);
            if (k)
                cr_assert_lt(strcmp(rows[k - 1].path, rows[k].path), 0, "ascending paths");
            if (parent[i] >= 0) {
                /* Pre-order: the parent came before, and the path extends the parent's. */
                cr_assert_not_null(path_of[parent[i]], "%s: n%d before n%d", urls[u], parent[i], i);
                cr_assert_eq(strncmp(rows[k].path, path_of[parent[i]], strlen(path_of[parent[i]])),
                             0);
            }
        }
        store_free_decisions(rows, nrows);
        clear_all(ds, N);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

/* r1 { a { a1 a2 } b } r2 { c }, stored in an order that is not pre-order. */
static void put_known_tree(struct store *s, const char *p)
{
    struct decision ds[7] = {make(p, "r1", "e", NULL, 1), make(p, "a", "e", "r1", 2),
                             make(p, "b", "e", "r1", 3),  make(p, "a1", "e", "a", 4),
                             make(p, "r2", "e", NULL, 5), make(p, "c", "e", "r2", 6),
                             make(p, "a2", "e", "a", 7)};
    bool stored[7];
    for (int i = 0; i < 7; i++)
        put(s, &ds[i], 1, stored);
    clear_all(ds, 7);
}

Test(store_traces, pre_order_with_depths_on_a_known_tree)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-unit-traces");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        char p[96];
        unique(p, sizeof(p), "known");
        put_known_tree(s, p);
        size_t nrows;
        struct decision *rows = tree(s, p, "e", &nrows);
        const char *order[] = {"r1", "a", "a1", "a2", "b", "r2", "c"};
        int depth[] = {0, 1, 2, 2, 1, 0, 1};
        cr_assert_eq(nrows, 7, "%s", urls[u]);
        for (int i = 0; i < 7; i++) {
            cr_assert_str_eq(name_of(&rows[i], p), order[i], "%s: [%d]", urls[u], i);
            cr_assert_eq(rows[i].depth, depth[i], "%s: depth of %s", urls[u], order[i]);
        }
        cr_assert_str_eq(rows[0].parent_id, "", "a root has no parent");
        store_free_decisions(rows, nrows);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

Test(store_traces, lazy_children_page_in_order)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-unit-traces");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        char p[96], exec[160], parent[160];
        unique(p, sizeof(p), "lazy");
        put_known_tree(s, p);
        /* A waiting child of a1 is not listed among its children. */
        struct decision w[1] = {make(p, "w", "e", "nobody", 8)};
        bool stored[1];
        put(s, w, 1, stored);
        clear_all(w, 1);
        snprintf(exec, sizeof(exec), "%s-e", p);

        snprintf(parent, sizeof(parent), "%s-r1", p);
        struct decision_query q = {.execution_id = exec, .parent_id = parent, .limit = 1};
        struct decision *rows;
        size_t nrows;
        cr_assert_eq(store_list_decisions(s, &q, &rows, &nrows), 0);
        cr_assert_eq(nrows, 1, "%s", urls[u]);
        cr_assert_str_eq(name_of(&rows[0], p), "a");
        cr_assert_eq(rows[0].depth, 1);
        char after[512];
        snprintf(after, sizeof(after), "%s", rows[0].path);
        store_free_decisions(rows, nrows);
        q.after_path = after;
        q.limit = 10;
        cr_assert_eq(store_list_decisions(s, &q, &rows, &nrows), 0);
        cr_assert_eq(nrows, 1, "%s: only the children, not the grandchildren", urls[u]);
        cr_assert_str_eq(name_of(&rows[0], p), "b");
        store_free_decisions(rows, nrows);

        q = (struct decision_query){.execution_id = exec, .parent_id = "", .limit = 10};
        cr_assert_eq(store_list_decisions(s, &q, &rows, &nrows), 0);
        cr_assert_eq(nrows, 2, "%s: parent \"\" lists the roots", urls[u]);
        cr_assert_str_eq(name_of(&rows[0], p), "r1");
        cr_assert_str_eq(name_of(&rows[1], p), "r2");
        store_free_decisions(rows, nrows);

        snprintf(parent, sizeof(parent), "%s-a1", p);
        q = (struct decision_query){.execution_id = exec, .parent_id = parent, .limit = 10};
        cr_assert_eq(store_list_decisions(s, &q, &rows, &nrows), 0);
        cr_assert_eq(nrows, 0, "%s: a leaf has no children", urls[u]);
        store_free_decisions(rows, nrows);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

Test(store_traces, tree_pages_cover_each_node_once_while_decisions_arrive)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-unit-traces");
    enum { N = 111, MORE = 40 }; /* 1 + 10 + 100: ten children a node */
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        char p[96], exec[160];
        unique(p, sizeof(p), "pages");
        snprintf(exec, sizeof(exec), "%s-e", p);
        struct decision ds[N];
        for (int i = 0; i < N; i++) {
            char id[16], par[16];
            snprintf(id, sizeof(id), "n%d", i);
            snprintf(par, sizeof(par), "n%d", (i - 1) / 10);
            ds[i] = make(p, id, "e", i ? par : NULL, i);
        }
        bool stored[N];
        put(s, ds, N, stored);
        clear_all(ds, N);

        int seen[N + MORE] = {0};
        int added = 0;
        char after[TRACE_KEY_LEN * (TRACE_DEPTH_MAX + 1) + 1] = "";
        struct decision_query q = {.execution_id = exec, .limit = 7};
        for (int page = 0; page < 100; page++) {
            struct decision *rows;
            size_t nrows;
            cr_assert_eq(store_list_decisions(s, &q, &rows, &nrows), 0);
            for (size_t k = 0; k < nrows; k++) {
                int i = atoi(name_of(&rows[k], p) + 1);
                cr_assert(i >= 0 && i < N + MORE);
                seen[i]++;
                cr_assert_eq(seen[i], 1, "%s: n%d listed twice", urls[u], i);
                if (q.after_path)
                    cr_assert_gt(strcmp(rows[k].path, q.after_path), 0);
            }
            if (nrows)
                snprintf(after, sizeof(after), "%s", rows[nrows - 1].path);
            q.after_path = after;
            store_free_decisions(rows, nrows);
            if (nrows < 7)
                break;
            /* Between pages, new decisions land before, inside and after the cursor: a child
             * of an early node, of a late node, and a new root. */
            for (int j = 0; j < 2 && added < MORE; j++, added++) {
                char id[16], par[16];
                snprintf(id, sizeof(id), "n%d", N + added);
                snprintf(par, sizeof(par), "n%d", (added * 37) % N);
                struct decision more = make(p, id, "e", added % 5 == 4 ? NULL : par, 1000 + added);
                bool one;
                put(s, &more, 1, &one);
                decision_clear(&more);
            }
        }
        for (int i = 0; i < N; i++)
            cr_assert_eq(seen[i], 1, "%s: n%d seen %d times", urls[u], i, seen[i]);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

Test(store_traces, executions_page_by_agent_and_status)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-unit-traces");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        char p[96], other[96];
        unique(p, sizeof(p), "execs");
        unique(other, sizeof(other), "execs-other");
        /* Five executions of one agent (two starting at the same time), two of another. */
        int64_t base = aei_now_us() + 1000000000LL * (u + 1);
        struct decision ds[7] = {
            make(p, "d0", "x0", NULL, base + 1),     make(p, "d1", "x1", NULL, base + 2),
            make(p, "d2", "x2", NULL, base + 2),     make(p, "d3", "x3", NULL, base + 3),
            make(p, "d4", "x4", NULL, base + 4),     make(other, "d5", "y0", NULL, base + 2),
            make(other, "d6", "y1", NULL, base + 5),
        };
        bool stored[7];
        put(s, ds, 7, stored);
        clear_all(ds, 7);
        char agent[160];
        snprintf(agent, sizeof(agent), "%s-agent", p);
        /* Newest first: x4, x3, then x2 before x1 (same time, id descending), x0. */
        const char *want[] = {"x4", "x3", "x2", "x1", "x0"};
        struct exec_query q = {.agent_id = agent, .status = -1, .limit = 2};
        int got = 0;
        char before_id[160];
        for (int page = 0; page < 5; page++) {
            struct execution *rows;
            size_t nrows;
            cr_assert_eq(store_list_executions(s, &q, &rows, &nrows), 0);
            for (size_t k = 0; k < nrows; k++) {
                char id[160];
                snprintf(id, sizeof(id), "%s-%s", p, want[got]);
                cr_assert_str_eq(rows[k].execution_id, id, "%s: [%d]", urls[u], got);
                cr_assert_str_eq(rows[k].agent_id, agent);
                got++;
            }
            if (nrows) {
                q.before_started = rows[nrows - 1].started;
                snprintf(before_id, sizeof(before_id), "%s", rows[nrows - 1].execution_id);
                q.before_id = before_id;
            }
            store_free_executions(rows, nrows);
            if (nrows < 2)
                break;
        }
        cr_assert_eq(got, 5, "%s", urls[u]);

        /* Every agent, running: ours come newest first among all the others. */
        q = (struct exec_query){.status = EXEC_RUNNING, .limit = -1};
        struct execution *rows;
        size_t nrows;
        cr_assert_eq(store_list_executions(s, &q, &rows, &nrows), 0);
        int mine = 0;
        for (size_t k = 0; k < nrows; k++) {
            cr_assert_eq(rows[k].status, EXEC_RUNNING);
            if (k)
                cr_assert(rows[k - 1].started > rows[k].started ||
                              (rows[k - 1].started == rows[k].started &&
                               strcmp(rows[k - 1].execution_id, rows[k].execution_id) > 0),
                          "%s: newest first", urls[u]);
            mine += strncmp(rows[k].execution_id, p, strlen(p)) == 0 ||
                    strncmp(rows[k].execution_id, other, strlen(other)) == 0;
        }
        cr_assert_eq(mine, 7, "%s", urls[u]);
        store_free_executions(rows, nrows);

        q = (struct exec_query){.agent_id = agent, .status = EXEC_COMPLETED, .limit = 10};
        cr_assert_eq(store_list_executions(s, &q, &rows, &nrows), 0);
        cr_assert_eq(nrows, 0, "%s: none completed", urls[u]);
        store_free_executions(rows, nrows);

        struct execution e;
        cr_assert_eq(store_get_execution(s, "no-such-execution-xyz", &e), AEI_ENOTFOUND);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

/* A chain EXEC-c[from] <- ... <- EXEC-c[from + len - 1], deepest first; c0 is a root. */
Test(store_traces, an_execution_ends_once_and_keeps_its_failure)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-unit-traces");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        char p[96], id[160];
        unique(p, sizeof(p), "end");
        struct decision ds[1] = {make(p, "r", "e", NULL, 1000)};
        bool stored[1];
        put(s, ds, 1, stored);
        snprintf(id, sizeof(id), "%s-e", p);

        struct execution e;
        bool changed;
        const char *failure = "{\"error\":\"tool timed out\",\"attempts\":3}";
        cr_assert_eq(store_end_execution(s, id, EXEC_FAILED, 5000, failure, &e, &changed), 0);
        cr_assert(changed, "%s: it was running", urls[u]);
        cr_assert_eq(e.status, EXEC_FAILED);
        cr_assert_eq(e.ended, 5000);
        cr_assert_eq(e.decisions, 1);
        json_t *got = json_loads(e.failure_json, 0, NULL), *want = json_loads(failure, 0, NULL);
        cr_assert(json_equal(got, want), "%s: failure %s", urls[u], e.failure_json);
        json_decref(got);
        json_decref(want);
        execution_clear(&e);

        /* An ended execution keeps how it ended. */
        cr_assert_eq(store_end_execution(s, id, EXEC_COMPLETED, 9000, NULL, &e, &changed), 0);
        cr_assert_not(changed, "%s: it had ended", urls[u]);
        cr_assert_eq(e.status, EXEC_FAILED);
        cr_assert_eq(e.ended, 5000);
        cr_assert_not_null(e.failure_json);
        execution_clear(&e);

        struct exec_query q = {.status = EXEC_FAILED, .limit = -1};
        struct execution *rows;
        size_t nrows;
        cr_assert_eq(store_list_executions(s, &q, &rows, &nrows), 0);
        bool listed = false;
        for (size_t k = 0; k < nrows; k++)
            listed = listed || (strcmp(rows[k].execution_id, id) == 0 && rows[k].failure_json);
        cr_assert(listed, "%s: listed as failed, with its failure", urls[u]);
        store_free_executions(rows, nrows);

        cr_assert_eq(
            store_end_execution(s, "no-such-execution-xyz", EXEC_COMPLETED, 1, NULL, &e, &changed),
            AEI_ENOTFOUND);
        clear_all(ds, 1);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

static struct decision *chain(const char *p, const char *exec, int len, int from)
{
    struct decision *ds = calloc((size_t)len, sizeof(*ds));
    for (int k = 0; k < len; k++) {
        int i = from + len - 1 - k;
        char id[64], par[64];
        snprintf(id, sizeof(id), "%s-c%d", exec, i);
        snprintf(par, sizeof(par), "%s-c%d", exec, i - 1);
        ds[k] = make(p, id, exec, i ? par : NULL, i);
    }
    return ds;
}

Test(store_traces, deeper_than_the_limit_fails_the_batch)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-unit-traces");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        char p[96], exec[160];
        unique(p, sizeof(p), "deep");
        snprintf(exec, sizeof(exec), "%s-ok", p);

        /* Depths 0 to TRACE_DEPTH_MAX fit. */
        struct decision *ok = chain(p, "ok", TRACE_DEPTH_MAX + 1, 0);
        cr_assert_eq(put_rc(s, ok, TRACE_DEPTH_MAX + 1), 0, "%s", urls[u]);
        clear_all(ok, TRACE_DEPTH_MAX + 1);
        free(ok);
        struct decision_query q = {.execution_id = exec, .after_path = NULL, .limit = -1};
        struct decision *rows;
        size_t nrows;
        cr_assert_eq(store_list_decisions(s, &q, &rows, &nrows), 0);
        cr_assert_eq(nrows, TRACE_DEPTH_MAX + 1);
        cr_assert_eq(rows[nrows - 1].depth, TRACE_DEPTH_MAX);
        store_free_decisions(rows, nrows);

        /* One more level, in one batch: nothing of it is stored. */
        struct decision *bad = chain(p, "bad", TRACE_DEPTH_MAX + 2, 0);
        cr_assert_eq(put_rc(s, bad, TRACE_DEPTH_MAX + 2), AEI_EINVAL, "%s", urls[u]);
        clear_all(bad, TRACE_DEPTH_MAX + 2);
        free(bad);
        struct execution e;
        char id[160];
        snprintf(id, sizeof(id), "%s-bad", p);
        cr_assert_eq(store_get_execution(s, id, &e), AEI_ENOTFOUND, "%s: rolled back", urls[u]);

        /* Under a stored parent at the limit. */
        struct decision under[1] = {make(p, "under", "ok", "ok-c255", 9)};
        cr_assert_eq(put_rc(s, under, 1), AEI_EINVAL, "%s", urls[u]);
        clear_all(under, 1);

        /* A waiting chain that the late root would push too deep: the root's batch fails. */
        struct decision *waiting = chain(p, "late", TRACE_DEPTH_MAX + 1, 1);
        cr_assert_eq(put_rc(s, waiting, TRACE_DEPTH_MAX + 1), 0, "%s", urls[u]);
        clear_all(waiting, TRACE_DEPTH_MAX + 1);
        free(waiting);
        struct decision root[2] = {make(p, "other", "late", NULL, 1),
                                   make(p, "late-c0", "late", NULL, 0)};
        cr_assert_eq(put_rc(s, root, 2), AEI_EINVAL, "%s", urls[u]);
        clear_all(root, 2);
        e = get_exec(s, p, "late");
        cr_assert_eq(e.decisions, TRACE_DEPTH_MAX + 1, "%s: nothing of the batch", urls[u]);
        cr_assert_eq(e.pending, TRACE_DEPTH_MAX + 1);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

Test(store_traces, batches_in_one_commit_succeed_or_fail_each_on_its_own)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-unit-traces");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        char p[96];
        unique(p, sizeof(p), "group");
        /* Three requests' batches: a good one, one too deep, and a good one under the first. */
        struct decision first[2] = {make(p, "a", "e1", NULL, 10), make(p, "b", "e1", "a", 11)};
        struct decision *deep = chain(p, "deep", TRACE_DEPTH_MAX + 2, 0);
        struct decision third[2] = {make(p, "c", "e1", "b", 12), make(p, "a", "e1", NULL, 13)};
        struct decision *p1[2] = {&first[0], &first[1]}, *p3[2] = {&third[0], &third[1]};
        struct decision **p2 = malloc((TRACE_DEPTH_MAX + 2) * sizeof(*p2));
        for (int k = 0; k < TRACE_DEPTH_MAX + 2; k++)
            p2[k] = &deep[k];
        bool s1[2], s2[TRACE_DEPTH_MAX + 2], s3[2];
        struct decision_batch b[3] = {{.ds = p1, .n = 2, .stored = s1, .rc = -1},
                                      {.ds = p2, .n = TRACE_DEPTH_MAX + 2, .stored = s2, .rc = -1},
                                      {.ds = p3, .n = 2, .stored = s3, .rc = -1}};
        cr_assert_eq(store_put_decision_batches(s, b, 3), 0, "%s", urls[u]);
        cr_assert_eq(b[0].rc, 0, "%s", urls[u]);
        cr_assert_eq(b[1].rc, AEI_EINVAL, "%s: the deep batch alone fails", urls[u]);
        cr_assert_eq(b[2].rc, 0, "%s", urls[u]);
        cr_assert(s1[0] && s1[1] && s3[0], "%s", urls[u]);
        cr_assert_not(s3[1], "%s: a repeats the first batch's a", urls[u]);

        size_t nrows;
        struct decision *rows = tree(s, p, "e1", &nrows);
        cr_assert_eq(nrows, 3, "%s", urls[u]);
        cr_assert_eq(rows[2].depth, 2, "%s: c under b under a", urls[u]);
        store_free_decisions(rows, nrows);
        char id[160];
        struct execution e;
        snprintf(id, sizeof(id), "%s-deep", p);
        cr_assert_eq(store_get_execution(s, id, &e), AEI_ENOTFOUND, "%s", urls[u]);
        e = get_exec(s, p, "e1");
        cr_assert_eq(e.decisions, 3, "%s", urls[u]);

        clear_all(first, 2);
        clear_all(third, 2);
        clear_all(deep, TRACE_DEPTH_MAX + 2);
        free(deep);
        free(p2);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

Test(store_traces, strings_and_numbers_round_trip)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-unit-traces");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        char p[96];
        unique(p, sizeof(p), "strings");
        const char *outcome = "say \"hi\" \\ it's 'quoted'\n\ttabbed, é 漢字 🚀";
        const char *context = "{\"prompt\":\"a \\\"quoted\\\" ünïcode 🚀\",\"n\":[1,2.5,null]}";
        const char *alts = "[{\"option\":\"l'autre \\\"voie\\\"\",\"reason_rejected\":\"日本\","
                           "\"score\":0.25}]";
        const char *labels = "{\"k\\\"ey\":\"v'al ü\"}";
        struct decision ds[2] = {make(p, "full", "e", NULL, 42), make(p, "bare", "e", NULL, 43)};
        ds[0].outcome = strdup(outcome);
        ds[0].kind = strdup("llm_call");
        ds[0].context_json = strdup(context);
        free(ds[0].alternatives_json);
        ds[0].alternatives_json = strdup(alts);
        free(ds[0].labels_json);
        ds[0].labels_json = strdup(labels);
        ds[0].agent_ts = 1234567890123456LL, ds[0].has_agent_ts = true;
        ds[0].confidence = 73.125, ds[0].has_confidence = true;
        ds[0].duration_ms = 1500.5, ds[0].has_duration = true;
        ds[0].tokens = 4096, ds[0].has_tokens = true;
        ds[0].cost_usd = 0.000123456789, ds[0].has_cost = true;
        free(ds[1].alternatives_json);
        free(ds[1].labels_json);
        ds[1].alternatives_json = ds[1].labels_json = NULL; /* defaults: [] and {} */
        ds[1].context_json = strdup("\"just a string\"");
        bool stored[2];
        put(s, ds, 2, stored);
        size_t nrows;
        struct decision *rows = tree(s, p, "e", &nrows);
        cr_assert_eq(nrows, 2, "%s", urls[u]);
        const struct decision *d = &rows[0], *b = &rows[1];
        cr_assert_str_eq(d->decision_id, ds[0].decision_id);
        cr_assert_str_eq(d->execution_id, ds[0].execution_id);
        cr_assert_str_eq(d->agent_id, ds[0].agent_id);
        cr_assert_str_eq(d->outcome, outcome, "%s", urls[u]);
        cr_assert_str_eq(d->kind, "llm_call");
        struct {
            const char *got, *want;
        } js[] = {{d->context_json, context}, {d->alternatives_json, alts},
                  {d->labels_json, labels},   {b->alternatives_json, "[]"},
                  {b->labels_json, "{}"},     {b->context_json, "\"just a string\""}};
        for (size_t i = 0; i < sizeof(js) / sizeof(js[0]); i++) {
            cr_assert_not_null(js[i].got, "%s: JSON [%zu]", urls[u], i);
            json_t *x = json_loads(js[i].got, JSON_DECODE_ANY, NULL);
            json_t *y = json_loads(js[i].want, JSON_DECODE_ANY, NULL);
            cr_assert(x && y && json_equal(x, y), "%s: %s != %s", urls[u], js[i].got, js[i].want);
            json_decref(x);
            json_decref(y);
        }
        cr_assert_eq(d->server_ts, 42);
        cr_assert(d->has_agent_ts && d->agent_ts == 1234567890123456LL);
        cr_assert(d->has_confidence && d->confidence == 73.125);
        cr_assert(d->has_duration && d->duration_ms == 1500.5);
        cr_assert(d->has_tokens && d->tokens == 4096);
        cr_assert(d->has_cost && d->cost_usd == 0.000123456789, "%s: %.17g", urls[u], d->cost_usd);
        cr_assert_gt(d->id, 0);
        cr_assert_not(b->has_agent_ts || b->has_confidence || b->has_duration || b->has_tokens ||
                          b->has_cost,
                      "%s: absent numbers stay absent", urls[u]);
        cr_assert_null(b->outcome);
        cr_assert_null(b->kind);
        store_free_decisions(rows, nrows);
        clear_all(ds, 2);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

/* Puts one decision for agent `agent` into execution `exec` as the sender b describes; returns
 * the batch's rc. */
static int put_as(struct store *s, struct decision_batch *b, const char *prefix, const char *id,
                  const char *exec, const char *agent)
{
    struct decision d = make(prefix, id, exec, NULL, aei_now_us());
    snprintf(d.agent_id, sizeof(d.agent_id), "%s-%s", prefix, agent);
    struct decision *one[1] = {&d};
    bool stored;
    b->ds = one;
    b->n = 1;
    b->stored = &stored;
    int rc = store_put_decision_batch(s, b);
    decision_clear(&d);
    return rc;
}

static void register_agent(struct store *s, const char *prefix, const char *agent, const char *team)
{
    struct heartbeat hb = {.status = HB_IDLE, .server_ts = aei_now_us()};
    snprintf(hb.agent_id, sizeof(hb.agent_id), "%s-%s", prefix, agent);
    snprintf(hb.team_id, sizeof(hb.team_id), "%s", team);
    hb.children_json = strdup("[]");
    hb.labels_json = strdup("{}");
    struct heartbeat *one[1] = {&hb};
    cr_assert_eq(store_put_heartbeats(s, one, 1), 0);
    hb_clear(&hb);
}

Test(store_traces, a_batch_adds_only_to_executions_in_its_scope_under_their_own_agent)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-unit-traces");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        char p[96];
        unique(p, sizeof(p), "owners");
        register_agent(s, p, "a1", "red");
        register_agent(s, p, "a2", "red");
        register_agent(s, p, "b1", "blue");
        struct decision_batch red_a1 = {.team = "red", .scope_team = "red", .scope_agent = NULL};
        cr_assert_eq(put_as(s, &red_a1, p, "d1", "ea", "a1"), 0, "%s", urls[u]);
        struct decision_batch red_a2 = {.team = "red", .scope_team = "red"};
        cr_assert_eq(put_as(s, &red_a2, p, "d2", "ea2", "a2"), 0, "%s", urls[u]);

        /* Another team's execution is as good as absent, whatever agent the decision names. */
        struct decision_batch blue = {.team = "blue", .scope_team = "blue"};
        cr_assert_eq(put_as(s, &blue, p, "x1", "ea", "b1"), AEI_ENOTFOUND, "%s", urls[u]);
        cr_assert_eq(blue.refused, 0);
        cr_assert_str_empty(blue.owner, "%s: the owner does not show", urls[u]);
        cr_assert_eq(put_as(s, &blue, p, "x2", "ea", "a1"), AEI_ENOTFOUND, "%s", urls[u]);
        /* So is another agent's, for an agent's token. */
        struct decision_batch agent_a1 = {.team = "red", .scope_team = "red", .scope_agent = ""};
        char a1[128];
        snprintf(a1, sizeof(a1), "%s-a1", p);
        agent_a1.scope_agent = a1;
        cr_assert_eq(put_as(s, &agent_a1, p, "x3", "ea2", "a1"), AEI_ENOTFOUND, "%s", urls[u]);
        /* A decision naming another agent than the execution's is a conflict, for anyone who
         * may see the execution: the owner is named. */
        cr_assert_eq(put_as(s, &red_a1, p, "x4", "ea", "a2"), AEI_ECONFLICT, "%s", urls[u]);
        cr_assert_str_eq(red_a1.owner, a1, "%s", urls[u]);
        struct decision_batch admin = {.team = "default"};
        cr_assert_eq(put_as(s, &admin, p, "x5", "ea", "b1"), AEI_ECONFLICT, "%s", urls[u]);
        cr_assert_eq(put_as(s, &admin, p, "d3", "ea", "a1"), 0, "%s: admins add to any", urls[u]);
        cr_assert_eq(put_as(s, &agent_a1, p, "d4", "ea", "a1"), 0, "%s", urls[u]);
        struct execution e = get_exec(s, p, "ea");
        cr_assert_eq(e.decisions, 3, "%s: d1, d3 and d4 alone", urls[u]);
        cr_assert_str_eq(e.team_id, "red");
        execution_clear(&e);

        /* In one batch: the first refusal by index, a hidden execution before a conflict, and
         * nothing of the batch stored; a new execution belongs to its first decision's agent. */
        struct decision ds[4] = {make(p, "y0", "fresh", NULL, 10), make(p, "y1", "fresh", NULL, 11),
                                 make(p, "y2", "ea", NULL, 12), make(p, "y3", "ea2", NULL, 13)};
        snprintf(ds[1].agent_id, sizeof(ds[1].agent_id), "%s-a1", p);
        snprintf(ds[2].agent_id, sizeof(ds[2].agent_id), "%s-a2", p);
        snprintf(ds[3].agent_id, sizeof(ds[3].agent_id), "%s-a2", p);
        struct decision *ptrs[4] = {&ds[0], &ds[1], &ds[2], &ds[3]};
        bool stored[4];
        struct decision_batch b = {.ds = ptrs, .n = 4, .stored = stored, .team = "red"};
        cr_assert_eq(store_put_decision_batch(s, &b), AEI_ECONFLICT, "%s", urls[u]);
        cr_assert_eq(b.refused, 1, "%s: y1 names a1 for fresh, which y0 began as %s", urls[u],
                     ds[0].agent_id);
        cr_assert_str_eq(b.owner, ds[0].agent_id);
        /* As a1's token: y3's execution ea2 is a2's, hidden, which comes before the conflicts
         * of y1 and y2. */
        b.scope_agent = a1;
        cr_assert_eq(store_put_decision_batch(s, &b), AEI_ENOTFOUND, "%s", urls[u]);
        cr_assert_eq(b.refused, 3, "%s", urls[u]);
        char id[160];
        snprintf(id, sizeof(id), "%s-fresh", p);
        cr_assert_eq(store_get_execution(s, id, &e), AEI_ENOTFOUND, "%s: nothing stored", urls[u]);
        clear_all(ds, 4);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

Test(store_traces, an_execution_takes_its_sender_s_team_until_its_agent_registers)
{
    char urls[2][512];
    int n = store_fixture_urls(urls, "aei-unit-traces");
    for (int u = 0; u < n; u++) {
        struct store *s = store_fixture_open(urls[u]);
        char p[96];
        unique(p, sizeof(p), "early");
        struct decision_batch red = {.team = "red", .scope_team = "red"};
        cr_assert_eq(put_as(s, &red, p, "d1", "e1", "new"), 0, "%s", urls[u]);
        struct execution e = get_exec(s, p, "e1");
        cr_assert_str_eq(e.team_id, "red", "%s: not default", urls[u]);
        execution_clear(&e);
        /* An unscoped write of an unknown agent keeps the old fallback. */
        cr_assert_eq(put_as(s, &(struct decision_batch){0}, p, "d2", "e2", "other"), 0);
        e = get_exec(s, p, "e2");
        cr_assert_str_eq(e.team_id, "default", "%s", urls[u]);
        execution_clear(&e);
        /* Registering takes the executions along into the agent's team. */
        register_agent(s, p, "new", "red");
        register_agent(s, p, "other", "blue");
        e = get_exec(s, p, "e1");
        cr_assert_str_eq(e.team_id, "red", "%s", urls[u]);
        execution_clear(&e);
        e = get_exec(s, p, "e2");
        cr_assert_str_eq(e.team_id, "blue", "%s", urls[u]);
        execution_clear(&e);
        /* A registered agent's new execution is its team's, whoever sends it. */
        cr_assert_eq(put_as(s, &(struct decision_batch){.team = "green"}, p, "d3", "e3", "other"),
                     0);
        e = get_exec(s, p, "e3");
        cr_assert_str_eq(e.team_id, "blue", "%s", urls[u]);
        execution_clear(&e);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}

/* Migration 0010 files the executions that 0007's trigger misfiled under "default" (a decision
 * before the agent's first heartbeat) under their agent's team; those of agents still unknown
 * stay where they are. */
static const char OLD_ROWS[] =
    "INSERT INTO agents (agent_id, status, first_seen, last_heartbeat, team_id) "
    "VALUES ('late-agent', 'idle', 1, 1, 'search');"
    "INSERT INTO executions (execution_id, agent_id, started, team_id) VALUES "
    "('misfiled', 'late-agent', 1, 'default'), ('unknown', 'nobody', 2, 'default');";

Test(store_traces, migration_0010_files_old_executions_under_their_agent_s_team)
{
    char urls[2][512];
    int n = store_fixture_fresh_urls(urls, "aei_unit_mig10");
    for (int u = 0; u < n; u++) {
        if (u == 0) {
            sqlite3 *db;
            cr_assert_eq(sqlite3_open(urls[0] + strlen("sqlite:"), &db), SQLITE_OK);
            cr_assert_eq(sqlite3_exec(db,
                                      "CREATE TABLE schema_migrations (version INTEGER PRIMARY "
                                      "KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
            for (int i = 0; i < 9; i++) {
                char *msg = NULL, sql[128];
                cr_assert_eq(sqlite3_exec(db, store_sqlite_migrations[i].sql, NULL, NULL, &msg),
                             SQLITE_OK, "%s", msg);
                snprintf(sql, sizeof(sql), "INSERT INTO schema_migrations VALUES (%d, 'old', 0)",
                         i + 1);
                cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
            }
            char *msg = NULL;
            cr_assert_eq(sqlite3_exec(db, OLD_ROWS, NULL, NULL, &msg), SQLITE_OK, "%s", msg);
            sqlite3_close(db);
        } else {
            PGconn *c = PQconnectdb(urls[1]);
            cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
            PGresult *res = PQexec(c, "CREATE TABLE schema_migrations (version INTEGER PRIMARY "
                                      "KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)");
            cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
            PQclear(res);
            for (int i = 0; i < 9; i++) {
                char sql[128];
                res = PQexec(c, store_pg_migrations[i].sql);
                cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
                PQclear(res);
                snprintf(sql, sizeof(sql), "INSERT INTO schema_migrations VALUES (%d, 'old', 0)",
                         i + 1);
                res = PQexec(c, sql);
                cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
                PQclear(res);
            }
            res = PQexec(c, OLD_ROWS);
            cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
            PQclear(res);
            PQfinish(c);
        }
        struct store *s = store_fixture_open(urls[u]);
        struct execution e;
        cr_assert_eq(store_get_execution(s, "misfiled", &e), 0, "%s", urls[u]);
        cr_assert_str_eq(e.team_id, "search", "%s: the agent's team", urls[u]);
        execution_clear(&e);
        cr_assert_eq(store_get_execution(s, "unknown", &e), 0, "%s", urls[u]);
        cr_assert_str_eq(e.team_id, "default", "%s: left alone", urls[u]);
        execution_clear(&e);
        store_close(s);
        store_fixture_remove(urls[u]);
    }
}
