#!/usr/bin/env bash
# bench-retention.sh - does retention hold up heartbeat ingest? For each store, fills a store with
# BENCH_ROWS old heartbeats (8 to 15 days old, 100 agents), then measures ingest latency with
# `aei bench` at BENCH_RATE heartbeats/s three times: with retention finding nothing to do (its
# clock moved 30 days back with the test-only AEI_TEST_RETENTION_CLOCK_OFFSET), while retention
# rolls those rows up, and while it deletes them; BENCH_REPEATS times, as the machine is noisy. Writes
# bench/results/retention-<UTC date>.{json,md}.
#
# Run after `make build`. Environment (all optional): BENCH_ROWS (1000000), BENCH_RATE (1000),
# BENCH_DURATION (seconds per run, 10), BENCH_REPEATS (2), BENCH_AGENTS (100),
# BENCH_STORES ("sqlite postgresql"),
# BENCH_OUT (bench/results), AEI, AEID.
set -euo pipefail

# shellcheck source=scripts/bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
ROWS=${BENCH_ROWS:-1000000}
RATE=${BENCH_RATE:-1000}
DURATION=${BENCH_DURATION:-10}
REPEATS=${BENCH_REPEATS:-2}
AGENTS=${BENCH_AGENTS:-100}
STORES=${BENCH_STORES:-sqlite postgresql}
OUT=${BENCH_OUT:-$ROOT/bench/results}

[ -x "$AEI" ] || die "no $AEI; run 'make build' first"
[ -x "$AEID" ] || die "no $AEID; run 'make build' first"

tmp=$(bench_tmp aei-bench-retention)
aeid_pid=""
pg_dir=""
trap 'cleanup "$aeid_pid"' EXIT
trap 'exit 130' INT TERM

AEI_TOKEN=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
export AEI_TOKEN
today=$(($(date -u +%s) / 86400))
first_day=$((today - 15)) # 8 days, all older than the 7 kept
days=8

# start_aeid STORE DB OFFSET_SECONDS [OPTION...]: starts aeid with a retention run every second.
start_aeid() {
    local store=$1 db=$2 offset=$3
    shift 3
    port=$(free_port)
    AEI_TEST_RETENTION_CLOCK_OFFSET=$offset "$AEID" --http "127.0.0.1:$port" \
        --ws "127.0.0.1:$(free_port)" --db "$db" --retention-interval 1 "$@" \
        2>>"$tmp/aeid-$store.log" &
    aeid_pid=$!
    wait_ready "$aeid_pid" "$port" /healthz || die "aeid did not start on $store: $(tail -n 3 "$tmp/aeid-$store.log")"
}

metrics() {
    python3 -c 'import os, sys, urllib.request as u
r = u.Request(sys.argv[1], headers={"Authorization": "Bearer " + os.environ["AEI_TOKEN"]})
print(u.urlopen(r, timeout=5).read().decode())' "http://127.0.0.1:$port/metrics"
}

# fill STORE DB: the old heartbeats, spread evenly over the 8 days, straight into the table.
fill() {
    local us_per_row=$((days * 86400000000 / ROWS)) start=$((first_day * 86400000000))
    case "$1" in
    sqlite)
        python3 - "${2#sqlite:}" "$ROWS" "$start" "$us_per_row" <<'PY'
import sqlite3, sys
path, rows, start, step = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
c = sqlite3.connect(path)
c.execute("""WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < ?)
INSERT INTO heartbeats (agent_id, server_ts, status, cpu_pct, mem_pct, tokens_per_min, cost_usd,
                        child_agent_ids, labels)
SELECT 'old-' || (i % 100), ? + i * ?, 'processing', i % 100, 50, 1000, (i / 100) * 0.001,
       '[]', '{}' FROM s""", (rows - 1, start, step))
# Index them as the writer would have (migrations/sqlite/0009_history_in_bulk.sql), so that the
# first measured batch does not index a million rows.
c.execute("""INSERT OR IGNORE INTO heartbeat_history
SELECT agent_id, server_ts, id FROM heartbeats ORDER BY agent_id, server_ts, id""")
c.execute("UPDATE heartbeat_history_state SET indexed_id = (SELECT max(id) FROM heartbeats)")
c.commit()
# Fold the WAL into the database now rather than during the first measured run.
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
PY
        ;;
    postgresql)
        psql "$2" -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
SELECT aei_heartbeat_partition(d) FROM generate_series($first_day, $((first_day + days - 1))) d;
INSERT INTO heartbeats (agent_id, server_ts, status, cpu_pct, mem_pct, tokens_per_min, cost_usd,
                        child_agent_ids, labels)
SELECT 'old-' || (i % 100), $start + i * $us_per_row, 'processing', i % 100, 50, 1000,
       (i / 100) * 0.001, '[]', '{}' FROM generate_series(0::bigint, $ROWS - 1) i;
ANALYZE heartbeats;
SQL
        ;;
    esac
}

# run_bench STORE SCENARIO: one recorded run against the aeid on $port.
run_bench() {
    local label="$1-$2"
    echo "== $label"
    "$AEI" bench --server "127.0.0.1:$port" --agents "$AGENTS" --rate "$RATE" \
        --duration "$DURATION" --warmup 1 --label "$label" --quiet --json "$tmp/runs/$label.json"
}

for store in $STORES; do
    if [ "$store" = postgresql ]; then
        pg_dir="$tmp/pg"
        pg_url=$("$ROOT/scripts/pg.sh" start "$pg_dir") || die "PostgreSQL did not start"
    elif [ "$store" != sqlite ]; then
        die "unknown store '$store' in BENCH_STORES; use sqlite and/or postgresql"
    fi
    for rep in $(seq 1 "$REPEATS"); do
        # A fresh store each time, as retention empties it.
        if [ "$store" = sqlite ]; then
            db="sqlite:$tmp/bench-$rep.db"
        else
            psql "$pg_url" -qc "CREATE DATABASE retention_$rep" >/dev/null
            db="${pg_url%/postgres}/retention_$rep"
        fi
        start_aeid "$store" "$db" -2592000 # migrates
        stop_pid "$aeid_pid"
        echo "== $store #$rep: filling $ROWS old heartbeats"
        fill "$store" "$db"
        # Idle: retention runs every second but, its clock 30 days back, finds nothing to do.
        start_aeid "$store" "$db" -2592000
        run_bench "$store" "idle-$rep"
        metrics >"$tmp/runs/$store-idle-$rep.metrics"
        stop_pid "$aeid_pid"
        # Rolling up: the same store, retention at the real time but keeping every raw row, so
        # that the run only rolls up; it starts as the load does and is still at work when the
        # load ends (see the rows it got through). Then let it finish.
        start_aeid "$store" "$db" 0 --heartbeat-retention-days 36500
        run_bench "$store" "rollup-$rep"
        metrics >"$tmp/runs/$store-rollup-$rep.metrics"
        for _ in $(seq 1 600); do
            grep -q '^aei_retention_runs_total{outcome="ok"} [1-9]' <<<"$(metrics)" && break
            sleep 1
        done
        stop_pid "$aeid_pid"
        # Deleting: everything is rolled up; the run deletes the old rows (SQLite) or drops
        # their partitions (PostgreSQL) as the load starts.
        start_aeid "$store" "$db" 0
        run_bench "$store" "delete-$rep"
        metrics >"$tmp/runs/$store-delete-$rep.metrics"
        stop_pid "$aeid_pid"
        aeid_pid=""
        [ "$store" = sqlite ] && rm -f "${db#sqlite:}"*
    done
    if [ "$store" = postgresql ]; then
        "$ROOT/scripts/pg.sh" stop "$pg_dir" >/dev/null 2>&1 || true
        pg_dir=""
    fi
done

mkdir -p "$OUT"
run_stamp
python3 - "$tmp/runs" "$OUT" "$day" "$commit" "$cpu" "$ROWS" "$RATE" "$DURATION" "$AGENTS" \
    "$STORES" "$REPEATS" <<'PY'
import json, os, re, statistics, sys
runs_dir, out, day, commit, cpu, rows, rate, duration, agents, stores, repeats = sys.argv[1:12]

def metric(text, name):
    m = re.search("^" + re.escape(name) + r" ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0

runs = []
for store in stores.split():
    for rep in range(1, int(repeats) + 1):
        for scenario in ("idle", "rollup", "delete"):
            r = json.load(open(f"{runs_dir}/{store}-{scenario}-{rep}.json"))
            mt = open(f"{runs_dir}/{store}-{scenario}-{rep}.metrics").read()
            steps = metric(mt, "aei_retention_step_duration_seconds_count")
            runs.append({
                "store": store, "retention": scenario, "repeat": rep, "rps": r["rps"],
                "requests": r["requests"], "errors": r["errors"]["total"],
                "p50_ms": r["latency_ms"]["p50"], "p99_ms": r["latency_ms"]["p99"],
                "p999_ms": r["latency_ms"]["p999"], "max_ms": r["latency_ms"]["max"],
                "rolled_up": int(metric(mt, "aei_retention_heartbeats_rolled_up_total")),
                "rows_deleted": int(metric(
                    mt, 'aei_retention_rows_deleted_total{kind="heartbeats"}')),
                "partitions_dropped": int(metric(mt, "aei_retention_partitions_dropped_total")),
                "retention_steps": int(steps),
                "step_mean_ms": 1000 * metric(mt, "aei_retention_step_duration_seconds_sum")
                                / steps if steps else None,
            })
doc = {"benchmark": "retention", "date": day, "command": "scripts/bench-retention.sh",
       "machine": {"nproc": os.cpu_count(), "cpu": cpu, "git_commit": commit},
       "old_rows": int(rows), "rate": int(rate), "duration_s": int(duration),
       "agents": int(agents), "repeats": int(repeats), "runs": runs}
json.dump(doc, open(f"{out}/retention-{day}.json", "w"), indent=2)
lines = [f"# Retention beside ingest, {day}", "",
         f"`scripts/bench-retention.sh` on {os.cpu_count()} cores ({cpu}, shared with other "
         f"work), commit {commit}. Each repeat fills a fresh store with {int(rows):,} heartbeats "
         f"8 to 15 days old, then runs `aei bench` at {rate} heartbeats/s from {agents} agents "
         f"for {duration} s three times: with retention idle (its clock 30 days back), while a "
         "retention run rolls those rows up (`rollup`, raw rows kept), and, once they are all rolled "
         "up, while a run deletes them (`delete`; steps of at most 250 rows on SQLite and "
         "1,000 on PostgreSQL, each "
         "followed by a pause of twice its length; on SQLite in the writer between heartbeat "
         "batches, on PostgreSQL on a connection of its own). The retention columns say how far "
         "the run got during the load (the `rollup` runs do not get through all of it).", "",
         "| store | retention | repeat | p50 ms | p99 ms | p99.9 ms | max ms | errors | "
         "rolled up | rows deleted | partitions dropped | steps (mean ms) |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|"]
for x in runs:
    steps = (f"{x['retention_steps']} ({x['step_mean_ms']:.1f})" if x["step_mean_ms"] else "-")
    lines.append(f"| {x['store']} | {x['retention']} | {x['repeat']} | {x['p50_ms']:.2f} | "
                 f"{x['p99_ms']:.2f} | {x['p999_ms']:.2f} | {x['max_ms']:.2f} | {x['errors']} "
                 f"| {x['rolled_up']:,} | {x['rows_deleted']:,} | {x['partitions_dropped']} "
                 f"| {steps} |")
lines += ["", "Medians over the repeats:", "",
          "| store | retention | p50 ms | p99 ms | p99.9 ms |", "|---|---|---|---|---|"]
for store in stores.split():
    for scenario in ("idle", "rollup", "delete"):
        sel = [x for x in runs if x["store"] == store and x["retention"] == scenario]
        med = lambda k: statistics.median(x[k] for x in sel)
        lines.append(f"| {store} | {scenario} | {med('p50_ms'):.2f} | {med('p99_ms'):.2f} | "
                     f"{med('p999_ms'):.2f} |")
open(f"{out}/retention-{day}.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
