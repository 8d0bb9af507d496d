/* trace_gen.h - realistic decision traces for `aei bench --traces`: batches of decisions as the
 * JSON body of POST /api/v0/traces */
#ifndef AEI_CLI_TRACE_GEN_H
#define AEI_CLI_TRACE_GEN_H

#include <stddef.h>
#include <stdint.h>

/* The most bytes one generated decision takes in a body. */
#define TRACE_GEN_DECISION_MAX 1024

/* One agent's stream of decisions: executions of `execution_size` decisions each, every
 * decision's parent chosen so that the tree is four-way branching (depth about log4 of the
 * size) and ids unique to the run. */
struct trace_gen {
    char run[17];   /* hex nonce of the run: ids never collide with an earlier run's */
    unsigned agent; /* bench agent number */
    uint64_t size;  /* decisions per execution */
    uint64_t next;  /* decisions generated so far */
    uint64_t rng;   /* xorshift state, never 0 */
};

/* Writes a JSON array of `n` decisions into out (cap bytes, at least
 * n * TRACE_GEN_DECISION_MAX + 2); returns its length, or 0 when it does not fit. */
size_t trace_gen_batch(struct trace_gen *g, unsigned n, char *out, size_t cap);

/* Writes the id of the execution that holds the `i`-th decision of agent `agent` in run `run`
 * into out (at least 64 bytes). */
void trace_gen_execution_id(const char *run, unsigned agent, uint64_t i, uint64_t size, char *out,
                            size_t cap);

#endif
