#!/usr/bin/env bash
# bench-actions.sh - audited actions over HTTP: `aei bench --actions pause,resume` against a real
# aeid on SQLite and PostgreSQL. Each answer comes after the action, its audit row and the
# agent's new state are committed (SQLite WAL with synchronous=FULL, PostgreSQL with
# synchronous_commit on), so every counted action is durable. After the runs the chains are
# verified through GET /api/v0/audit/verify. Writes bench/results/actions-<UTC date>.{json,md}.
#
# Run by `make bench` (suite "actions") after `make build`. Records numbers and never fails on
# slow ones; exits non-zero only when something could not run at all.
#
# Environment (all optional): BENCH_ACTIONS_AGENTS (64 agents = connections),
# BENCH_ACTIONS_DURATION (10 s per run), BENCH_ACTIONS_RUNS (3), BENCH_STORES
# ("sqlite postgresql"), BENCH_OUT (bench/results).
set -euo pipefail

# shellcheck source=scripts/bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
AGENTS=${BENCH_ACTIONS_AGENTS:-64}
DURATION=${BENCH_ACTIONS_DURATION:-10}
RUNS=${BENCH_ACTIONS_RUNS:-3}
STORES=${BENCH_STORES:-sqlite postgresql}
OUT=${BENCH_OUT:-$ROOT/bench/results}

[ -x "$AEID" ] && [ -x "$AEI" ] || die "no $AEID or $AEI; run 'make build' first"
command -v python3 >/dev/null || die "python3 is needed; run scripts/bootstrap.sh"
export AEI_TOKEN=${AEI_TOKEN:-bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')}

tmp=$(bench_tmp aei-bench-actions)
pg_dir=""
aeid_pid=""
trap 'cleanup "$aeid_pid"' EXIT

for store in $STORES; do
    store_up "$store" || exit 1
    port=$(free_port)
    ws_port=$(free_port)
    "$AEID" --http "127.0.0.1:$port" --ws "127.0.0.1:$ws_port" --db "$db" \
        --audit-key "$tmp/audit-$store.key" 2>"$tmp/aeid-$store.log" &
    aeid_pid=$!
    wait_ready "$aeid_pid" "$port" /healthz || {
        tail -n 5 "$tmp/aeid-$store.log" >&2
        die "aeid did not become ready on $store"
    }
    echo "== $store: registering $AGENTS agents" >&2
    "$AEI" bench --server "127.0.0.1:$port" --agents "$AGENTS" --duration 1 --warmup 0 --quiet \
        --json /dev/null >/dev/null || die "registering the agents failed on $store"
    for run in $(seq 1 "$RUNS"); do
        cmd=(aei bench --server "127.0.0.1:$port" --agents "$AGENTS" --actions pause,resume
            --duration "$DURATION" --warmup 1 --label "$store-actions-$run")
        echo "== $store: ${cmd[*]}" >&2
        "$AEI" "${cmd[@]:1}" --quiet --json "$tmp/runs/$store-$run.json" >/dev/null ||
            die "the actions run failed on $store"
        printf '%s\n' "${cmd[*]}" >"$tmp/runs/$store.cmd"
    done
    python3 -c 'import sys, urllib.request as u
r = u.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
open(sys.argv[3], "w").write(u.urlopen(r, timeout=600).read().decode())' \
        "http://127.0.0.1:$port/api/v0/audit/verify" "$AEI_TOKEN" "$tmp/runs/$store-verify.json" ||
        die "verifying the chains failed on $store"
    stop_pid "$aeid_pid"
    aeid_pid=""
    store_down "$store"
done

mkdir -p "$OUT"
run_stamp
python3 - "$tmp/runs" "$OUT/actions-$day" "$day" "$commit" "${overrides% }" "$cpu" "$RUNS" \
    "$STORES" <<'PY'
import json, os, platform, statistics, sys
runs, out, day, commit, overrides, cpu, n, stores = sys.argv[1:9]
GOAL = 5000
doc = {"benchmark": "actions", "date": day, "commit": commit, "overrides": overrides,
       "machine": {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release()},
       "goal_actions_per_s_sqlite": GOAL, "stores": {}}
md = [f"# Audited actions over HTTP, {day}", "",
      f"Commit `{commit}`, CPU {cpu}, {os.cpu_count()} cores shared with other work. "
      "`scripts/bench-actions.sh` (`make bench` suite \"actions\"): a real `aeid`, agents "
      "registered by a heartbeat run, then `aei bench --actions pause,resume`: each connection "
      "pauses and resumes its own agent in turn, closed loop. Every 2xx answer came after the "
      "command, its audit row and the agent's new control state were committed in one "
      "transaction (SQLite WAL with synchronous=FULL; PostgreSQL synchronous_commit on); the "
      "writer thread commits what queued meanwhile together (group commit). After the runs "
      "GET /api/v0/audit/verify walked every chain.", "",
      "| store | runs | actions/s (median) | all runs | p50 ms | p99 ms | errors | chain verified (rows) |",
      "| --- | ---: | ---: | --- | ---: | ---: | ---: | --- |"]
for store in stores.split():
    rs = [json.load(open(f"{runs}/{store}-{i}.json")) for i in range(1, int(n) + 1)]
    rates = [r["ok_rps"] for r in rs]
    med = statistics.median(rates)
    mid = sorted(rs, key=lambda r: r["ok_rps"])[len(rs) // 2]
    verify = json.load(open(f"{runs}/{store}-verify.json"))
    s = {"command": open(f"{runs}/{store}.cmd").read().strip(), "runs": rates,
         "median_actions_per_s": med, "latency_ms": mid["latency_ms"],
         "errors": sum(r["errors"]["total"] for r in rs), "verify": verify}
    if store == "sqlite":
        s["goal_met"] = med >= GOAL and s["errors"] == 0 and verify.get("ok") is True
    doc["stores"][store] = s
    md.append(f"| {store} | {len(rs)} | {med:,.0f} | {', '.join(f'{x:,.0f}' for x in rates)} | "
              f"{mid['latency_ms']['p50']:.2f} | {mid['latency_ms']['p99']:.2f} | {s['errors']} | "
              f"{verify.get('ok')} ({verify.get('rows_checked')}) |")
sq = doc["stores"].get("sqlite")
if sq:
    md += ["", f"Goal: >= {GOAL:,} durable audited actions/s on SQLite: "
           f"**{'met' if sq['goal_met'] else 'not met'}** (median {sq['median_actions_per_s']:,.0f})."]
md += ["", "Command per run: `" + next(iter(doc["stores"].values()))["command"] + "`.", ""]
json.dump(doc, open(out + ".json", "w"), indent=2)
open(out + ".md", "w").write("\n".join(md))
print("\n".join(md))
PY
