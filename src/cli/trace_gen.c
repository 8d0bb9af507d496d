/* trace_gen.c - realistic decision traces for `aei bench --traces` */
#include "cli/trace_gen.h"
#include "cli/bench_util.h"

#include <stdio.h>
#include <string.h>

/* What an agent weighs at a step: the chosen action and two it turned down, with why. */
struct step {
    const char *kind, *context, *chosen, *rejected[2], *why[2];
};
static const struct step steps[] = {
    {"llm_call",
     "The user asks for the quarterly revenue trend. The figures in context end in Q2, so a "
     "summary from memory would miss a quarter; the cheapest reliable route is to fetch the "
     "filing first and then summarise it with the larger model.",
     "fetch the Q3 filing, then summarise",
     {"summarise from context", "ask the user for the figures"},
     {"context ends in Q2; the answer would be stale",
      "the filing is public; asking wastes a turn"}},
    {"tool_selection",
     "Three tools can answer the lookup: web search, the internal wiki and the SQL warehouse. "
     "The question names a table and a date range, which the warehouse answers exactly and "
     "the others only approximately.",
     "query the SQL warehouse",
     {"web search", "internal wiki"},
     {"public pages do not hold internal figures", "the wiki copy is updated monthly"}},
    {"refinement",
     "The draft answer cites two sources that disagree on the launch date by a week. Before "
     "replying, check the primary announcement and correct the draft; confidence rises if the "
     "announcement settles it.",
     "check the primary announcement and correct the draft",
     {"reply with both dates", "drop the date"},
     {"contradictions erode trust", "the date is what the user asked for"}},
    {"planning",
     "The task has four parts: gather requirements, sketch the schema, write migrations, and "
     "test them on both stores. Parts two and three depend on one; testing depends on all. "
     "Delegating the tests to a child agent keeps the critical path short.",
     "spawn a tester child agent after the migrations",
     {"do all four in sequence", "test before writing migrations"},
     {"slower by the whole testing time", "nothing to test yet"}},
};

void trace_gen_execution_id(const char *run, unsigned agent, uint64_t i, uint64_t size, char *out,
                            size_t cap)
{
    snprintf(out, cap, "bx%s-%06u-%llu", run, agent, (unsigned long long)(i / size));
}

static void decision_id(const struct trace_gen *g, uint64_t i, char *out, size_t cap)
{
    snprintf(out, cap, "bd%s-%06u-%llu", g->run, g->agent, (unsigned long long)i);
}

size_t trace_gen_batch(struct trace_gen *g, unsigned n, char *out, size_t cap)
{
    if (cap < (size_t)n * TRACE_GEN_DECISION_MAX + 2)
        return 0;
    size_t len = 0;
    out[len++] = '[';
    for (unsigned k = 0; k < n; k++, g->next++) {
        uint64_t i = g->next, in_exec = i % g->size;
        char id[64], exec[64], parent[72] = "null";
        decision_id(g, i, id, sizeof(id));
        trace_gen_execution_id(g->run, g->agent, i, g->size, exec, sizeof(exec));
        if (in_exec > 0) {
            char pid[64];
            decision_id(g, i - in_exec + (in_exec - 1) / 4, pid, sizeof(pid));
            snprintf(parent, sizeof(parent), "\"%s\"", pid);
        }
        uint64_t r = bench_rng_next(&g->rng);
        const size_t nsteps = sizeof(steps) / sizeof(steps[0]);
        const struct step *s = &steps[r % nsteps];
        double confidence = 40 + (double)((r >> 8) % 600) / 10.0;
        int w = snprintf(
            out + len, cap - len,
            "%s{\"decision_id\":\"%s\",\"execution_id\":\"%s\",\"agent_id\":\"bench-%06u\","
            "\"parent_decision_id\":%s,\"kind\":\"%s\",\"reasoning_context\":\"%s\","
            "\"confidence_score\":%.1f,\"alternatives_considered\":[{\"option\":\"%s\","
            "\"reason_rejected\":\"%s\",\"score\":%.2f},{\"option\":\"%s\",\"reason_rejected\":"
            "\"%s\"}],\"selected_outcome\":\"%s\",\"duration_ms\":%u,\"tokens\":%u,"
            "\"cost_usd\":%.5f}",
            k ? "," : "", id, exec, g->agent, parent, s->kind, s->context, confidence,
            s->rejected[0], s->why[0], (double)((r >> 20) % 100) / 100.0, s->rejected[1], s->why[1],
            s->chosen, (unsigned)(50 + (r >> 28) % 2000), (unsigned)(100 + (r >> 40) % 4000),
            (double)((r >> 48) % 500) / 100000.0);
        if (w < 0 || (size_t)w >= cap - len)
            return 0;
        len += (size_t)w;
    }
    if (len + 1 >= cap)
        return 0;
    out[len++] = ']';
    out[len] = '\0';
    return len;
}
