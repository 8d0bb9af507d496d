#!/usr/bin/env bash
# bench-export.sh - trace export benchmark: loads one execution of 100,000 decisions (a realistic
# tree from bench/trace_gen.py) into aeid with `aei trace import`, then exports it as JSON and as
# Markdown with `aei trace export` a few times while sampling aeid's RSS every 10 ms; records
# export time, bytes and the peak RSS growth over the pre-export baseline (medians) in
# bench/results/trace-export-<UTC date>.{json,md}, on SQLite and on PostgreSQL.
#
# Run by `make bench` (BENCH_SUITES=export), or on its own after `make build`. Benchmarks record
# numbers and never fail on slow ones; the script exits non-zero only when something could not
# run at all (or an export came back incomplete).
#
# Environment (all optional):
#   BENCH_EXPORT_STORES     stores to measure: "sqlite postgresql" (default)
#   BENCH_EXPORT_DECISIONS  decisions in the execution (100000)
#   BENCH_EXPORT_RUNS       exports per format and store; medians are reported (3)
#   BENCH_OUT (bench/results), AEI, AEID (binaries)
set -euo pipefail

# shellcheck source=scripts/bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
STORES=${BENCH_EXPORT_STORES:-sqlite postgresql}
DECISIONS=${BENCH_EXPORT_DECISIONS:-100000}
RUNS=${BENCH_EXPORT_RUNS:-3}
OUT=${BENCH_OUT:-$ROOT/bench/results}
EXECUTION=bench-export
GOAL_MIB=16

[ -x "$AEI" ] || die "no $AEI; run 'make build' first"
[ -x "$AEID" ] || die "no $AEID; run 'make build' first"
"$AEI" trace --help >/dev/null 2>&1 || die "$AEI has no 'trace' command; run 'make build' first"
command -v python3 >/dev/null || die "python3 is needed; run scripts/bootstrap.sh"
newer=$(find "$ROOT/src" -name '*.[ch]' -newer "$AEID" -print -quit 2>/dev/null || true)
[ -z "$newer" ] || echo "bench-export.sh: warning: ${newer#"$ROOT"/} is newer than $AEID; run" \
    "'make build' (make bench does) to measure the current tree" >&2

tmp=$(bench_tmp aei-bench-export)
aeid_pid=""
pg_dir=""
trap 'cleanup "$aeid_pid"' EXIT
trap 'exit 130' INT TERM

AEI_TOKEN=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
export AEI_TOKEN

echo "== generating an execution of $DECISIONS decisions (bench/trace_gen.py)"
python3 "$ROOT/bench/trace_gen.py" "$EXECUTION" "$DECISIONS" "$tmp/trace.json"
echo "   $(stat -c %s "$tmp/trace.json") bytes"

for store in $STORES; do
    case "$store" in
    sqlite) db="sqlite:$tmp/export.db" ;;
    postgresql)
        pg_dir="$tmp/pg"
        pg_base=$("$ROOT/scripts/pg.sh" start "$pg_dir") || die "PostgreSQL did not start"
        psql "$pg_base" -qc "CREATE DATABASE export_bench" >/dev/null
        db="${pg_base%/postgres}/export_bench"
        ;;
    *) die "unknown store '$store' in BENCH_EXPORT_STORES; use sqlite and/or postgresql" ;;
    esac
    port=$(free_port)
    ws_port=$(free_port)
    "$AEID" --http "127.0.0.1:$port" --ws "127.0.0.1:$ws_port" --db "$db" 2>"$tmp/aeid-$store.log" &
    aeid_pid=$!
    wait_ready "$aeid_pid" "$port" /healthz || {
        tail -n 5 "$tmp/aeid-$store.log" >&2
        die "aeid on $store did not become ready"
    }
    echo "== $store: aeid pid $aeid_pid; importing"
    t0=$(date +%s.%N)
    "$AEI" trace import "$tmp/trace.json" --server "127.0.0.1:$port" >"$tmp/import-$store.txt"
    t1=$(date +%s.%N)
    echo "   $(cat "$tmp/import-$store.txt") ($(python3 -c "print(f'{$t1 - $t0:.1f}')") s)"
    python3 -c "print(round($t1 - $t0, 3))" >"$tmp/import-$store.s"
    sleep 1 # let the import's buffers settle before the baseline
    echo "== $store: exporting ($RUNS runs a format)"
    mkdir -p "$tmp/runs/$store"
    python3 "$ROOT/bench/export_measure.py" --aei "$AEI" --pid "$aeid_pid" \
        --server "127.0.0.1:$port" --execution "$EXECUTION" --decisions "$DECISIONS" \
        --runs "$RUNS" --dir "$tmp/runs/$store" --out "$tmp/result-$store.json"
    kill -0 "$aeid_pid" 2>/dev/null || die "aeid on $store exited during the runs"
    stop_pid "$aeid_pid"
    aeid_pid=""
    if [ -n "$pg_dir" ]; then
        "$ROOT/scripts/pg.sh" stop "$pg_dir" >/dev/null 2>&1 || true
        pg_dir=""
    fi
done

run_stamp
mkdir -p "$OUT"
python3 - "$tmp" "$OUT" "$day" "$commit" "$cpu" "$DECISIONS" "$RUNS" "$GOAL_MIB" "$overrides" \
    $STORES <<'PY'
import json, os, sys
tmp, out, day, commit, cpu, n, runs, goal, overrides = sys.argv[1:10]
stores = sys.argv[10:]
n, runs, goal = int(n), int(runs), float(goal)
doc = {"suite": "trace-export", "date": day, "commit": commit, "cpu": cpu, "decisions": n,
       "runs": runs, "goal_peak_growth_mib": goal, "overrides": overrides.strip(),
       "input_bytes": os.path.getsize(os.path.join(tmp, "trace.json")), "stores": {}}
for s in stores:
    r = json.load(open(os.path.join(tmp, f"result-{s}.json")))
    r["import_seconds"] = float(open(os.path.join(tmp, f"import-{s}.s")).read())
    r["import_summary"] = open(os.path.join(tmp, f"import-{s}.txt")).read().strip()
    doc["stores"][s] = r
base = os.path.join(out, f"trace-export-{day}")
json.dump(doc, open(base + ".json", "w"), indent=1)
mib = lambda kib: kib / 1024
lines = [f"# Trace export, {day}", "",
         f"One execution of {n:,} decisions from `bench/trace_gen.py` (a tree branching three ways "
         "with short chains, a few dozen levels deep, reasoning of 200-600 bytes or a small JSON object, 0-4 "
         "alternatives, about 1% waiting for a parent that never came), "
         f"{doc['input_bytes'] / 1e6:.0f} MB as JSON, loaded with `aei trace import` and exported "
         f"{runs} times per format with `aei trace export -o FILE` (`scripts/bench-export.sh`, "
         f"commit `{commit}`, {cpu}). Server memory: aeid's VmRSS sampled every 10 ms; growth is the "
         "highest sample during an export minus the median just before it. Medians of the runs; "
         f"raw runs in [trace-export-{day}.json](trace-export-{day}.json).", "",
         "| store | format | bytes | time | MB/s | peak RSS growth | max of runs | RSS before |",
         "|---|---|---:|---:|---:|---:|---:|---:|"]
worst = 0
for s in stores:
    for fmt, m in doc["stores"][s]["formats"].items():
        worst = max(worst, m["max_peak_growth_kib"])
        lines.append(f"| {s} | {fmt} | {m['median_bytes'] / 1e6:.1f} MB | {m['median_seconds']:.2f} s | "
                     f"{m['median_bytes'] / 1e6 / m['median_seconds']:.1f} | "
                     f"{mib(m['median_peak_growth_kib']):.1f} MiB | {mib(m['max_peak_growth_kib']):.1f} MiB | "
                     f"{mib(m['median_baseline_rss_kib']):.1f} MiB |")
lines += ["", f"Goal: peak memory growth under {goal:.0f} MiB while exporting {n:,} decisions: "
          f"**{'met' if mib(worst) < goal else 'not met'}** (worst run {mib(worst):.1f} MiB). "
          "aeid reads and renders 500 decisions at a time and reads the next page only once the "
          "last is written to the socket, so memory does not depend on the execution's size.", "",
          "Import (`aei trace import`, batches of 1,000 in file order, one connection each): " +
          "; ".join(f"{s}: {doc['stores'][s]['import_seconds']:.1f} s "
                    f"({n / doc['stores'][s]['import_seconds']:,.0f} decisions/s)" for s in stores) +
          ".", ""]
open(base + ".md", "w").write("\n".join(lines))
print(f"== wrote {base}.md and .json")
PY
