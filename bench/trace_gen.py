#!/usr/bin/env python3
"""trace_gen.py - writes one execution of N decisions as a JSON array that `aei trace import`
posts: a realistic tree (branching, short chains, a few dozen levels deep), reasoning text of a
few hundred bytes (a fifth of it JSON objects), 0-4 alternatives each, and 0.1% of decisions
whose parent never arrives (they and their descendants wait: about 1% of the tree). Deterministic
for a given seed.

Usage: trace_gen.py EXECUTION_ID N OUT.json [SEED]
"""
import json
import random
import sys

WORDS = ("the index is fresher than the web so search it first then rank the results by date "
         "and drop duplicates because the user asked for recent case law only; the previous "
         "step found nothing, widen the range, check the cache, call the summariser, verify "
         "citations against the source, estimate cost before calling the large model").split()
KINDS = ["llm_call", "tool_selection", "refinement", "retrieval", "plan"]


def text(rng, lo, hi):
    out, n = [], rng.randint(lo, hi)
    while sum(len(w) + 1 for w in out) < n:
        out.append(rng.choice(WORDS))
    return " ".join(out)


def main():
    execution, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 42)
    with open(path, "w") as f:
        f.write("[\n")
        for i in range(n):
            if i == 0:
                parent = None
            elif rng.random() < 0.001:
                parent = f"{execution}-lost-{i}"  # never sent: waits for good
            elif i % 50 < 5:
                parent = f"{execution}-{i - 1}"  # a short chain
            else:
                parent = f"{execution}-{(i - 1) // 3}"
            if rng.random() < 0.2:
                reasoning = {"goal": text(rng, 40, 80), "observations": [text(rng, 40, 90)
                             for _ in range(rng.randint(1, 3))], "step": i}
            else:
                reasoning = text(rng, 200, 600)
            d = {
                "decision_id": f"{execution}-{i}",
                "execution_id": execution,
                "agent_id": "bench-agent-1",
                "parent_decision_id": parent,
                "timestamp": "2026-11-24T12:00:00Z",
                "kind": rng.choice(KINDS),
                "reasoning_context": reasoning,
                "confidence_score": round(rng.uniform(30, 99), 1),
                "alternatives_considered": [
                    {"option": text(rng, 10, 30), "reason_rejected": text(rng, 20, 80),
                     "score": round(rng.random(), 2)} for _ in range(rng.randint(0, 4))],
                "selected_outcome": text(rng, 20, 60),
                "labels": {"bench": "export"},
                "duration_ms": round(rng.uniform(1, 2000), 1),
                "tokens": rng.randint(0, 4000),
                "cost_usd": round(rng.uniform(0, 0.02), 4),
            }
            f.write(json.dumps(d, separators=(",", ":")))
            f.write(",\n" if i + 1 < n else "\n")
        f.write("]\n")


if __name__ == "__main__":
    main()
