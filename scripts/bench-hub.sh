#!/usr/bin/env bash
# bench-hub.sh - live-hub benchmark: push latency from heartbeat to WebSocket subscribers, aeid
# next to a plain Node.js relay (bench/peers/ws-relay.mjs), a reconnect storm and a memory soak;
# writes bench/results/hub-<UTC date>.{json,md} and appends a hub section to latest.md.
#
# Run by `make bench` after scripts/bench.sh (BENCH_SUITES="ingest hub"), or on its own after
# `make build`. Benchmarks record numbers and never fail on slow ones; the script exits non-zero
# only when something could not run at all.
#
# Environment (all optional):
#   BENCH_HUB_STORE        aeid's store: sqlite (default) or postgresql
#   BENCH_HUB_DURATION     seconds per rate step (10)      BENCH_HUB_WARMUP  seconds (1)
#   BENCH_HUB_AGENTS       agents posting heartbeats (100) BENCH_HUB_SUBSCRIBERS  (50)
#   BENCH_HUB_RATES        heartbeats/s steps for aeid and the relay, each stepping until a step
#                          misses p99 < 10 ms or drops twice in a row (a failed step is repeated
#                          once: this machine is shared and one bad second fails a step)
#                          ("1000 1500 2000 3000 5000 7500 10000 15000 20000")
#   BENCH_HUB_BAR_RATE     the rate of the seed's bar and of the goal (10000)
#   BENCH_HUB_SLOW         seconds of the slow-subscriber run, 0 to skip (25)
#   BENCH_HUB_SLOW_RATE    heartbeats/s during it (5000)
#   BENCH_HUB_SLOW_RESUME  when the slow subscriber reads again, after it stopped (13: after
#                          aeid's default 10 s slow-consumer timeout, before its 5 s drop)
#   BENCH_STORM_RATE       storm connects/s (1000)         BENCH_STORM_DURATION  seconds (30)
#   BENCH_STORM_HB_RATE    heartbeats/s during the storm (2000)
#   BENCH_SOAK             soak length: 2m (default), 1h, ... or 0 to skip
#   BENCH_SOAK_RATE        heartbeats/s during the soak (2000)
#   BENCH_OUT (bench/results), AEI, AEID, NODE (binaries)
set -euo pipefail

# shellcheck source=scripts/bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
NODE=${NODE:-$(command -v node || echo node)}
STORE=${BENCH_HUB_STORE:-sqlite}
DURATION=${BENCH_HUB_DURATION:-10}
WARMUP=${BENCH_HUB_WARMUP:-1}
AGENTS=${BENCH_HUB_AGENTS:-100}
SUBS=${BENCH_HUB_SUBSCRIBERS:-50}
RATES=${BENCH_HUB_RATES:-1000 1500 2000 3000 5000 7500 10000 15000 20000}
BAR_RATE=${BENCH_HUB_BAR_RATE:-10000}
SLOW=${BENCH_HUB_SLOW:-25}
SLOW_RATE=${BENCH_HUB_SLOW_RATE:-5000}
SLOW_RESUME=${BENCH_HUB_SLOW_RESUME:-13}
PREFILL_RATE=10000
PREFILL_S=8
STORM_RATE=${BENCH_STORM_RATE:-1000}
STORM_DURATION=${BENCH_STORM_DURATION:-30}
STORM_HB_RATE=${BENCH_STORM_HB_RATE:-2000}
SOAK=${BENCH_SOAK:-2m}
SOAK_RATE=${BENCH_SOAK_RATE:-2000}
OUT=${BENCH_OUT:-$ROOT/bench/results}
PEERS=$ROOT/bench/peers

[ -x "$AEI" ] || die "no $AEI; run 'make build' first"
[ -x "$AEID" ] || die "no $AEID; run 'make build' first"
# (Help read whole first: grep -q stops early, and under pipefail aei's SIGPIPE would count.)
grep -q -- --subscribers <<<"$("$AEI" bench --help)" ||
    die "$AEI has no --subscribers; run 'make build' first"
command -v python3 >/dev/null || die "python3 is needed to collect results; run scripts/bootstrap.sh"
# Run on its own, the script measures whatever was built last; say so when that is not the tree.
newer=$(find "$ROOT/src" -name '*.[ch]' -newer "$AEID" -print -quit 2>/dev/null || true)
[ -z "$newer" ] || echo "bench-hub.sh: warning: ${newer#"$ROOT"/} is newer than $AEID; run" \
    "'make build' (make bench does) to measure the current tree" >&2
command -v "$NODE" >/dev/null || die "node is needed for the relay peer; run scripts/bootstrap.sh"
if [ ! -f "$PEERS/node_modules/ws/package.json" ]; then
    echo "== installing the relay's dependencies (npm ci in bench/peers)"
    (cd "$PEERS" && npm ci --no-audit --no-fund --loglevel=error) ||
        die "npm ci failed in bench/peers; the relay peer needs the ws package"
fi

tmp=$(bench_tmp aei-bench-hub)
: >"$tmp/manifest"
: >"$tmp/servers"
aeid_pid=""
relay_pid=""
pg_dir=""
failed=0

trap 'cleanup "$aeid_pid" "$relay_pid"' EXIT
trap 'exit 130' INT TERM

AEI_TOKEN=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
export AEI_TOKEN

# The store for the n-th fresh aeid: a new SQLite file, or a new database in one PostgreSQL
# cluster.
db_url() {
    local db_n=$1
    case "$STORE" in
    sqlite) echo "sqlite:$tmp/hub-$db_n.db" ;;
    postgresql)
        psql "$pg_base" -qc "CREATE DATABASE hub_$db_n" >/dev/null || return 1
        echo "${pg_base%/postgres}/hub_$db_n"
        ;;
    esac
}
case "$STORE" in
sqlite) ;;
postgresql)
    [ -x "$ROOT/scripts/pg.sh" ] || die "no scripts/pg.sh for BENCH_HUB_STORE=postgresql"
    pg_dir="$tmp/pg"
    pg_base=$("$ROOT/scripts/pg.sh" start "$pg_dir") || die "PostgreSQL did not start"
    ;;
*) die "unknown BENCH_HUB_STORE '$STORE'; use sqlite or postgresql" ;;
esac

# start_aeid NAME: a fresh aeid on free ports; sets aeid_pid, aeid_http, aeid_ws.
aeid_n=0
start_aeid() {
    local name=$1 db
    aeid_n=$((aeid_n + 1))
    db=$(db_url "$aeid_n") || die "cannot create a database for $name"
    aeid_http=$(free_port)
    aeid_ws=$(free_port)
    local cmd=("${AEID#"$ROOT"/}" --http "127.0.0.1:$aeid_http" --ws "127.0.0.1:$aeid_ws"
        --db "$db")
    "$AEID" "${cmd[@]:1}" 2>"$tmp/aeid-$name.log" &
    aeid_pid=$!
    if ! wait_ready "$aeid_pid" "$aeid_http" /healthz; then
        tail -n 5 "$tmp/aeid-$name.log" >&2 || true
        die "aeid ($name) did not become ready"
    fi
    printf '%s\t%s\n' "$name" "${cmd[*]/$tmp/\$TMP}" >>"$tmp/servers"
    echo "== aeid ($name): ${cmd[*]}"
}

stop_aeid() {
    if [ -n "$aeid_pid" ] && ! kill -0 "$aeid_pid" 2>/dev/null; then
        echo "bench-hub.sh: aeid exited during the runs; its log ends with:" >&2
        tail -n 5 "$tmp"/aeid-*.log >&2 || true
        failed=1
    fi
    stop_pid "$aeid_pid"
    aeid_pid=""
}

# run_bench PEER SCENARIO PID [aei bench options...]: one recorded run; PID is sampled for RSS.
seq_no=0
run_bench() {
    local peer=$1 scenario=$2 pid=$3
    shift 3
    seq_no=$((seq_no + 1))
    local label="$peer-$scenario"
    local file
    file=$(printf '%s/runs/%02d-%s.json' "$tmp" "$seq_no" "$label")
    local cmd=("${AEI#"$ROOT"/}" bench --agents "$AGENTS" --warmup "$WARMUP" --label "$label" "$@"
        --memory-pid PID)
    echo "== $label: ${cmd[*]}"
    cmd[${#cmd[@]} - 1]=$pid
    "$AEI" "${cmd[@]:1}" --quiet --json "$file" >"$file.txt" || {
        echo "bench-hub.sh: run $label failed (exit $?)" >&2
        failed=1
        return 0
    }
    cmd[${#cmd[@]} - 1]=PID
    printf '%s\t%s\t%s\t%s\n' "$file" "$peer" "$scenario" "${cmd[*]}" >>"$tmp/manifest"
}

# Prints "pass" when the last recorded run of PEER kept up (all sent, all 2xx, no dropped delta)
# with a p99 push latency under 10 ms.
last_passed() {
    local file
    file=$(awk -F'\t' -v p="$1" '$2 == p { f = $1 } END { print f }' "$tmp/manifest")
    [ -n "$file" ] || return 0
    python3 - "$file" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ws = r.get("ws") or {}
ok = (r["unsent"] * 100 <= r["requests"] + r["unsent"] and r["errors"]["total"] == 0
      and ws.get("deltas_expected", 0) > 0 and ws.get("drops", 1) <= 0
      and ws.get("push_latency_ms", {}).get("p99", 1e9) < 10.0)
print("pass" if ok else "fail")
PY
}

# prefill: brings a fresh aeid to its steady memory before a run that watches its RSS: 80,000
# heartbeats fill the hub's replay buffer (the last 65,536 updates) and every agent's state.
prefill() {
    local cmd=("${AEI#"$ROOT"/}" bench --server "127.0.0.1:$aeid_http" --agents "$AGENTS"
        --rate "$PREFILL_RATE" --duration "$PREFILL_S" --warmup 0)
    echo "== prefill: ${cmd[*]}"
    "$AEI" "${cmd[@]:1}" --quiet >/dev/null || {
        echo "bench-hub.sh: the prefill failed" >&2
        failed=1
    }
    grep -q $'^prefill\t' "$tmp/servers" || printf 'prefill\t%s\n' "${cmd[*]}" >>"$tmp/servers"
}

# metrics FILE: appends aeid's WebSocket counters from GET /metrics as one JSON line to FILE.
metrics() {
    python3 - "$aeid_http" >>"$1" <<'PY' || echo null >>"$1"
import json, os, sys, urllib.request
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/metrics",
                             headers={"Authorization": "Bearer " + os.environ["AEI_TOKEN"]})
out = {}
for line in urllib.request.urlopen(req, timeout=5).read().decode().splitlines():
    if line.startswith("aei_ws_") and not line.startswith("aei_ws_push_latency"):
        name, _, value = line.rpartition(" ")
        out[name] = float(value)
print(json.dumps(out))
PY
}

aeid_opts() {
    echo --server "127.0.0.1:$aeid_http" --ws "127.0.0.1:$aeid_ws" --subscribers "$SUBS"
}

# ---- the steps: aeid and the relay side by side at each rate ----
start_aeid steps
relay_port=$(free_port)
relay_cmd=("$NODE" "${PEERS#"$ROOT"/}/ws-relay.mjs" --port "$relay_port")
"$NODE" "$PEERS/ws-relay.mjs" --port "$relay_port" >"$tmp/relay.log" 2>&1 &
relay_pid=$!
wait_ready "$relay_pid" "$relay_port" || die "the relay did not start: $(tail -n 3 "$tmp/relay.log")"
printf '%s\t%s\n' relay "node ${relay_cmd[*]:1}" >>"$tmp/servers"
echo "== relay: node ${relay_cmd[*]:1} (ws $(cd "$PEERS" && "$NODE" -p 'require("ws/package.json").version'))"

# step PEER RATE: one step, repeated once if it fails; sets step_passed to 1 or 0.
step() {
    local peer=$1 rate=$2 try
    step_passed=0
    for try in "" -retry; do
        if [ "$peer" = aeid ]; then
            # shellcheck disable=SC2046
            run_bench aeid "steady-${rate}hz$try" "$aeid_pid" $(aeid_opts) --rate "$rate" \
                --duration "$DURATION"
        else
            run_bench relay "steady-${rate}hz$try" "$relay_pid" \
                --server "127.0.0.1:$relay_port" --ws "127.0.0.1:$relay_port" --no-subscribe \
                --subscribers "$SUBS" --rate "$rate" --duration "$DURATION"
        fi
        if [ "$(last_passed "$peer")" = pass ]; then
            step_passed=1
            return 0
        fi
    done
}

# Each peer steps up until a step fails (twice): higher steps would only pile up backlogs.
# aeid always runs the bar's rate, which (a) and (b) are judged on.
steps=$(printf '%s\n' $RATES "$BAR_RATE" | sort -n -u | tr '\n' ' ')
aeid_going=1
relay_going=1
for rate in $steps; do
    if [ "$aeid_going" = 1 ] || [ "$rate" = "$BAR_RATE" ]; then
        step aeid "$rate"
        [ "$step_passed" = 1 ] || aeid_going=0
    fi
    if [ "$relay_going" = 1 ]; then
        step relay "$rate"
        [ "$step_passed" = 1 ] || relay_going=0
    fi
done
stop_pid "$relay_pid"
relay_pid=""

# ---- one subscriber stops reading: is it closed with 4008, and do the others notice? ----
if [ "$SLOW" != 0 ]; then
    # shellcheck disable=SC2046
    metrics "$tmp/slow-metrics"
    # shellcheck disable=SC2046
    run_bench aeid slow-subscriber "$aeid_pid" $(aeid_opts) --scenario slow-subscriber \
        --slow-resume "$SLOW_RESUME" --rate "$SLOW_RATE" --duration "$SLOW"
    metrics "$tmp/slow-metrics"
fi
stop_aeid

# ---- reconnect storm, on a fresh aeid so that its memory starts from a clean baseline ----
start_aeid storm
prefill
# shellcheck disable=SC2046
run_bench aeid "reconnect-storm-${STORM_RATE}cps" "$aeid_pid" $(aeid_opts) \
    --scenario reconnect-storm --storm-rate "$STORM_RATE" --rate "$STORM_HB_RATE" \
    --duration "$STORM_DURATION"
stop_aeid

# ---- soak ----
if [ "$SOAK" != 0 ] && [ "$SOAK" != off ]; then
    start_aeid soak
    prefill
    # shellcheck disable=SC2046
    run_bench aeid "soak-$SOAK" "$aeid_pid" $(aeid_opts) --scenario soak --rate "$SOAK_RATE" \
        --duration "$SOAK"
    stop_aeid
fi
if [ -n "$pg_dir" ]; then
    "$ROOT/scripts/pg.sh" stop "$pg_dir" >/dev/null 2>&1 || true
    pg_dir=""
fi

# ---- results ----
[ -s "$tmp/manifest" ] || die "no run produced a result; see the output above"
mkdir -p "$OUT"
run_stamp
node_version=$("$NODE" --version 2>/dev/null || echo unknown)
ws_version=$(cd "$PEERS" && "$NODE" -p 'require("ws/package.json").version' 2>/dev/null || echo unknown)

touch "$tmp/slow-metrics"
python3 - "$tmp/manifest" "$tmp/servers" "$OUT" "$day" "$commit" "${overrides% }" "$STORE" \
    "$BAR_RATE" "$node_version" "$ws_version" "$tmp/slow-metrics" "$cpu" <<'EOF'
import json, os, platform, re, sys

(manifest, servers, out, day, commit, overrides, store, bar_rate, node_version,
 ws_version, slow_metrics, cpu) = sys.argv[1:13]
bar_rate = float(bar_rate)
GOAL_MS, BAR_MS = 10.0, 100.0

runs = []
for line in open(manifest):
    path, peer, scenario, cmd = line.rstrip("\n").split("\t")
    r = json.load(open(path))
    ws, mem = r.get("ws") or {}, r.get("memory") or {}
    push = ws.get("push_latency_ms", {})
    run = {
        "label": r["label"], "peer": peer, "scenario": scenario, "command": cmd,
        "ws_scenario": ws.get("scenario"), "agents": r["agents"], "rate": r["rate"],
        "subscribers": ws.get("subscribers"), "duration_s": r["duration_s"],
        "heartbeats_per_s": ws.get("heartbeats_per_s", r["ok_rps"]),
        "deltas_per_s": ws.get("deltas_per_s"), "deltas_expected": ws.get("deltas_expected"),
        "deltas_delivered": ws.get("deltas_delivered"), "drops": ws.get("drops"),
        "snapshots": ws.get("snapshots"), "push_p50_ms": push.get("p50"),
        "push_p90_ms": push.get("p90"), "push_p99_ms": push.get("p99"),
        "push_max_ms": push.get("max"), "http_p99_ms": r["latency_ms"]["p99"],
        "http_errors": r["errors"]["total"], "unsent": r["unsent"], "requests": r["requests"],
        "ws_errors": (ws.get("errors") or {}).get("total"),
        "client_cpu_s": ws.get("client_cpu_s"),
        "rss_start_kib": mem.get("start_kib"), "rss_end_kib": mem.get("end_kib"),
        "rss_max_kib": mem.get("max_kib"), "rss_slope_kib_per_min": mem.get("slope_kib_per_min"),
        "rss_idle_kib": mem.get("idle_kib"),
        "rss_slope_second_half_kib_per_min": mem.get("slope_second_half_kib_per_min"),
    }
    # Kept up: the rate was sent (unsent <= 1%), every heartbeat answered 2xx, no delta lost.
    run["kept_up"] = (r["unsent"] * 100 <= r["requests"] + r["unsent"]
                      and r["errors"]["total"] == 0 and (ws.get("drops") or 0) <= 0
                      and ws.get("deltas_expected", 0) > 0)
    if "slow" in ws:
        run["slow"] = ws["slow"]
    if "storm" in ws:
        run["storm"] = ws["storm"]
    if mem.get("samples") and ws.get("scenario") == "soak":
        run["rss_samples"] = mem["samples"]
    runs.append(run)

def steps(peer):
    return sorted((r for r in runs if r["peer"] == peer and r["ws_scenario"] == "steady"),
                  key=lambda r: r["rate"])

summary = {}
# A step that failed was run once more; the bar and the goal are judged on its better attempt.
bar_runs = [r for r in steps("aeid") if r["rate"] == bar_rate]
aeid_bar = min(bar_runs, key=lambda r: (not r["kept_up"], r["push_p99_ms"]), default=None)
if aeid_bar:
    p99 = aeid_bar["push_p99_ms"]
    summary["bar"] = {"rate": bar_rate, "subscribers": aeid_bar["subscribers"], "p99_ms": p99,
                      "drops": aeid_bar["drops"], "kept_up": aeid_bar["kept_up"],
                      "attempts": len(bar_runs), "run": aeid_bar["label"],
                      "met": p99 < BAR_MS and aeid_bar["kept_up"]}
    summary["goal"] = {"rate": bar_rate, "subscribers": aeid_bar["subscribers"], "p99_ms": p99,
                       "drops": aeid_bar["drops"], "kept_up": aeid_bar["kept_up"],
                       "met": p99 < GOAL_MS and aeid_bar["kept_up"]}
sustained = {}
for peer in ("aeid", "relay"):
    ok = [r for r in steps(peer) if r["kept_up"] and r["push_p99_ms"] < GOAL_MS]
    best = max(ok, key=lambda r: r["rate"]) if ok else None
    sustained[peer] = {
        "rate": best["rate"] if best else 0,
        "deltas_per_s": best["deltas_per_s"] if best else 0,
        "p99_ms": best["push_p99_ms"] if best else None,
        "steps": [{"rate": r["rate"], "p99_ms": r["push_p99_ms"], "drops": r["drops"],
                   "kept_up": r["kept_up"]} for r in steps(peer)],
    }
a, b = sustained["aeid"]["deltas_per_s"], sustained["relay"]["deltas_per_s"]
summary["sustained_p99_under_10ms"] = sustained
summary["ratio_aeid_to_relay"] = round(a / b, 3) if b else None
storm = next((r for r in runs if r.get("storm")), None)
if storm:
    s = storm["storm"]
    rss = s.get("rss_kib") or {}
    st = s["steady_push_latency_ms"]
    back = None
    if rss:
        back = rss["after"] <= rss["before"] * 1.10
    summary["storm"] = {
        "rate": s["rate"], "duration_s": s["duration_s"], "attempted": s["attempted"],
        "subscribed": s["subscribed"], "errors": s["errors"]["total"],
        "skipped": s["skipped"], "connect_to_snapshot_p99_ms": s["connect_to_snapshot_ms"]["p99"],
        "steady_p99_ms": {k: st[k]["p99"] for k in ("before", "during", "after")},
        "rss_kib": rss or None, "rss_back_to_baseline": back,
        "drops": storm["drops"],
    }
slow = next((r for r in runs if r.get("slow")), None)
if slow:
    s = slow["slow"]
    summary["slow_subscriber"] = {
        "closed_4008": s["closed_4008"], "end": s["end"], "close_code": s["close_code"],
        "paused_at_s": s["paused_at_s"], "resumed_at_s": s["resumed_at_s"],
        "close_seen_at_s": s["close_seen_at_s"],
        "fast_p99_ms": slow["push_p99_ms"], "fast_drops": slow["drops"],
        "rate": slow["rate"]}
    # aeid's own count, from GET /metrics before and after the run.
    m = [json.loads(l) for l in open(slow_metrics) if l.strip()]
    if len(m) == 2 and m[0] and m[1]:
        summary["slow_subscriber"]["server_counters"] = {
            k: m[1][k] - m[0].get(k, 0) for k in m[1]
            if "slow_consumer" in k or "snapshots_sent" in k}
soak = next((r for r in runs if r["ws_scenario"] == "soak"), None)
if soak:
    summary["soak"] = {"duration_s": soak["duration_s"], "rate": soak["rate"],
                       "p99_ms": soak["push_p99_ms"], "drops": soak["drops"],
                       "rss_start_kib": soak["rss_start_kib"], "rss_end_kib": soak["rss_end_kib"],
                       "rss_max_kib": soak["rss_max_kib"],
                       "slope_kib_per_min": soak["rss_slope_kib_per_min"],
                       "slope_second_half_kib_per_min":
                           soak["rss_slope_second_half_kib_per_min"]}

server_cmds = [l.rstrip("\n").split("\t") for l in open(servers)]
command = "scripts/bench-hub.sh" + (f" ({overrides})" if overrides else "")
doc = {
    "benchmark": "hub-push",
    "date": day,
    "command": command,
    "store": store,
    "machine": {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
                "git_commit": commit, "node": node_version, "ws": ws_version},
    "servers": {name: cmd for name, cmd in server_cmds},
    "criteria": {"bar_p99_ms": BAR_MS, "goal_p99_ms": GOAL_MS,
                 "kept_up": "unsent <= 1% of requests, no HTTP error, no dropped delta"},
    "summary": summary,
    "runs": runs,
}
base = os.path.join(out, f"hub-{day}")
with open(base + ".json", "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")

def fmt(x, d=2):
    return "-" if x is None else f"{x:.{d}f}"

def mib(k):
    return "-" if k is None else f"{k / 1024:.1f}"

m = doc["machine"]
lines = [
    f"# Live hub benchmark, {day}",
    "",
    f"Produced by `{command}` at commit `{commit}` on {m['nproc']} x {m['cpu']}, kernel "
    f"{m['kernel']}; aeid on {store}; relay: Node.js {node_version}, ws {ws_version}. Client, "
    "servers and database share the machine over loopback; see bench/README.md. Push latency "
    "is from each heartbeat's scheduled send to the frame holding its delta (aeid) or the "
    "relayed heartbeat (relay) being received, over every subscriber.",
    "",
    "| peer | scenario | subs | target hb/s | hb/s | deltas/s | push p50 ms | p90 ms | p99 ms "
    "| max ms | drops | snapshots | unsent | http p99 ms | RSS start → end MiB | client CPU s |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
]
for r in runs:
    lines.append(
        f"| {r['peer']} | {r['scenario']} | {r['subscribers']} | {r['rate']:.0f} "
        f"| {r['heartbeats_per_s']:.0f} | {fmt(r['deltas_per_s'], 0)} | {fmt(r['push_p50_ms'])} "
        f"| {fmt(r['push_p90_ms'])} | {fmt(r['push_p99_ms'])} | {fmt(r['push_max_ms'])} "
        f"| {r['drops']} | {r['snapshots']} | {r['unsent']} | {fmt(r['http_p99_ms'])} "
        f"| {mib(r['rss_start_kib'])} → {mib(r['rss_end_kib'])} | {fmt(r['client_cpu_s'], 1)} |")
lines.append("")
bullets = []
if "bar" in summary:
    s = summary["bar"]
    bullets.append(
        f"- **Seed's bar** ({s['subscribers']} subscribers, {s['rate']:.0f} heartbeats/s, "
        f"p99 < {BAR_MS:.0f} ms): p99 {fmt(s['p99_ms'])} ms, drops {s['drops']}: "
        f"**{'met' if s['met'] else 'not met'}**"
        + (f" (better of {s['attempts']} attempts)" if s["attempts"] > 1 else "") + ".")
    g = summary["goal"]
    bullets.append(
        f"- **Goal** (p99 < {GOAL_MS:.0f} ms at {g['rate']:.0f} updates/s to "
        f"{g['subscribers']} subscribers): p99 {fmt(g['p99_ms'])} ms: "
        f"**{'met' if g['met'] else 'not met'}**.")
sa, sr = sustained["aeid"], sustained["relay"]
ratio = summary["ratio_aeid_to_relay"]
bullets.append(
    f"- **Sustained at p99 < {GOAL_MS:.0f} ms, no drops**: aeid {sa['rate']:.0f} heartbeats/s "
    f"({sa['deltas_per_s']:.0f} deltas/s), relay {sr['rate']:.0f} heartbeats/s "
    f"({sr['deltas_per_s']:.0f} deltas/s): **aeid / relay = "
    f"{'n/a' if ratio is None else f'{ratio:.2f}'}** (the highest step that passed; steps run: "
    f"aeid " + ", ".join(f"{x['rate']:.0f}" for x in sa["steps"]) + "; relay "
    + ", ".join(f"{x['rate']:.0f}" for x in sr["steps"])
    + "; a failed step is run once more).")
if "slow_subscriber" in summary:
    s = summary["slow_subscriber"]
    counters = s.get("server_counters") or {}
    closes = counters.get("aei_ws_slow_consumer_closes_total")
    bullets.append(
        f"- **Slow subscriber** (1 of {slow['subscribers']} stops reading at "
        f"{fmt(s['paused_at_s'], 1)} s, reads again at {fmt(s['resumed_at_s'], 1)} s, "
        f"{s['rate']:.0f} hb/s): close frame 4008 read: "
        f"**{'yes' if s['closed_4008'] else 'no'}**"
        + (f" at {fmt(s['close_seen_at_s'], 1)} s" if s["closed_4008"] else "")
        + f" ({s['end']}); aeid counted "
        + ("?" if closes is None else f"{closes:.0f}")
        + f" slow-consumer close(s); the others' p99 {fmt(s['fast_p99_ms'])} ms, drops "
        f"{s['fast_drops']}.")
if "storm" in summary:
    s = summary["storm"]
    r = s["rss_kib"] or {}
    bullets.append(
        f"- **Reconnect storm** ({s['rate']:.0f} connects/s for {s['duration_s']:.0f} s: "
        f"{s['attempted']} attempted, {s['subscribed']} subscribed, {s['errors']} errors): "
        f"steady p99 before {fmt(s['steady_p99_ms']['before'])} ms, during "
        f"{fmt(s['steady_p99_ms']['during'])} ms, after {fmt(s['steady_p99_ms']['after'])} ms; "
        f"RSS before {mib(r.get('before'))} MiB, max during {mib(r.get('during_max'))} MiB, "
        f"{fmt(r.get('after_measured_s_after_storm'), 0)} s after {mib(r.get('after'))} MiB: "
        f"back to baseline (within 10%): "
        f"**{'yes' if s['rss_back_to_baseline'] else 'no'}**.")
if "soak" in summary:
    s = summary["soak"]
    bullets.append(
        f"- **Soak** ({s['duration_s']:.0f} s at {s['rate']:.0f} hb/s): p99 "
        f"{fmt(s['p99_ms'])} ms, drops {s['drops']}; RSS {mib(s['rss_start_kib'])} → "
        f"{mib(s['rss_end_kib'])} MiB (max {mib(s['rss_max_kib'])}), slope "
        f"**{fmt(s['slope_kib_per_min'], 1)} KiB/min** "
        f"({fmt(s['slope_second_half_kib_per_min'], 1)} KiB/min over its second half).")
lines += bullets
lines += ["", "Servers (the storm's and the soak's aeid were first prefilled with the prefill "
          "command, so that the hub's replay buffer is full before their RSS is watched):", ""]
lines += [f"    {name}: {c}" for name, c in server_cmds]
lines += ["", "Commands (AEI_TOKEN in the environment; PID is the server sampled for RSS):", ""]
lines += [f"    {r['command']}" for r in runs]
lines.append("")
with open(base + ".md", "w") as f:
    f.write("\n".join(lines))

# latest.md: keep what the ingest benchmark wrote, replace any earlier hub section.
latest_path = os.path.join(out, "latest.md")
try:
    latest = open(latest_path).read()
except OSError:
    latest = "# Latest benchmark\n"
latest = re.split(r"\n## Live hub\n", latest, maxsplit=1)[0].rstrip("\n") + "\n"
latest += ("\n## Live hub\n\n"
           f"Newest run: [hub-{day}.md](hub-{day}.md) (data: [hub-{day}.json](hub-{day}.json)).\n\n"
           + "\n".join(bullets) + "\n")
with open(latest_path, "w") as f:
    f.write(latest)
print("\n".join(lines))
print(f"bench-hub.sh: wrote {base}.json, {base}.md and {latest_path}")
EOF

[ "$failed" -eq 0 ] || die "some runs could not be made; see the messages above"
