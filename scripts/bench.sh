#!/usr/bin/env bash
# bench.sh - heartbeat-ingest benchmark: nginx's 204 as the ceiling, libwebsockets alone
# answering 204 as the floor of aeid's HTTP layer, then aeid on SQLite and PostgreSQL; writes
# bench/results/heartbeat-ingest-<UTC date>.{json,md} and latest.md.
#
# Run by `make bench` after `make build`. Benchmarks record numbers and never fail on slow ones;
# the script exits non-zero only when something could not run at all.
#
# Environment (all optional): BENCH_DURATION (seconds per run, default 10), BENCH_WARMUP (1),
# BENCH_AGENTS (100), BENCH_BAR_RATE (the modest open-loop rate of scenario a, default 1000),
# BENCH_NGINX_REPEATS (nginx runs, median taken, default 3), BENCH_STORES ("sqlite postgresql"),
# BENCH_OUT (bench/results), AEI, AEID, NGINX, LWS_FLOOR (binaries).
set -euo pipefail

# shellcheck source=scripts/bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
STORE_BENCH=${STORE_BENCH:-$ROOT/build/store-bench}
NGINX=${NGINX:-/usr/sbin/nginx}
LWS_FLOOR=${LWS_FLOOR:-$ROOT/build/lws-floor}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-1}
AGENTS=${BENCH_AGENTS:-100}
BAR_RATE=${BENCH_BAR_RATE:-1000}
NGINX_REPEATS=${BENCH_NGINX_REPEATS:-3}
STORES=${BENCH_STORES:-sqlite postgresql}
OUT=${BENCH_OUT:-$ROOT/bench/results}

[ -x "$AEI" ] || die "no $AEI; run 'make build' first"
[ -x "$AEID" ] || die "no $AEID; run 'make build' first"
[ -x "$NGINX" ] || die "no nginx at $NGINX; run scripts/bootstrap.sh (package nginx-light)"
command -v python3 >/dev/null ||
    die "python3 is needed to collect results; run scripts/bootstrap.sh"

tmp=$(bench_tmp aei-bench)
nginx_pid=""
floor_pid=""
aeid_pid=""
pg_dir=""
failed=0

trap 'cleanup "$aeid_pid" "$nginx_pid" "$floor_pid"' EXIT
trap 'exit 130' INT TERM

# run_bench STORE SCENARIO PORT [aei bench options...]: one recorded run, measuring the CPU time
# of the processes in cpu_pids (the server under test) beside the client's.
seq_no=0
cpu_pids=()
run_bench() {
    local store=$1 scenario=$2 port=$3
    shift 3
    seq_no=$((seq_no + 1))
    local label="$store-$scenario"
    local file pid
    file=$(printf '%s/runs/%02d-%s.json' "$tmp" "$seq_no" "$label")
    local cmd=("${AEI#"$ROOT"/}" bench --server "127.0.0.1:$port" --agents "$AGENTS"
        --duration "$DURATION" --warmup "$WARMUP" --label "$label" "$@")
    for pid in "${cpu_pids[@]}"; do
        cmd+=(--cpu-pid "$pid")
    done
    echo "== $label: ${cmd[*]}"
    "$AEI" "${cmd[@]:1}" --quiet --json "$file" || {
        echo "bench.sh: run $label failed (exit $?)" >&2
        failed=1
        return 0
    }
    printf '%s\t%s\t%s\t%s\n' "$file" "$store" "$scenario" "${cmd[*]}" >>"$tmp/manifest"
}

# ---- nginx: the ceiling ----
mkdir -p "$tmp/nginx/tmp"
nginx_port=$(free_port)
sed "s/__PORT__/$nginx_port/" "$ROOT/bench/peers/nginx.conf" >"$tmp/nginx/nginx.conf"
"$NGINX" -p "$tmp/nginx/" -c "$tmp/nginx/nginx.conf" -g 'daemon off;' 2>"$tmp/nginx/stderr" &
nginx_pid=$!
wait_ready "$nginx_pid" "$nginx_port" ||
    die "nginx did not start: $(tail -n 3 "$tmp/nginx/stderr" "$tmp/nginx/error.log" 2>/dev/null)"
# The ceiling sets both the ratio and scenario c's rate, so it is the median of a few runs.
cpu_pids=("$nginx_pid")
for n in $(seq 1 "$NGINX_REPEATS"); do
    run_bench nginx "max-$n" "$nginx_port"
done
[ -s "$tmp/manifest" ] || die "no nginx run produced a result; see the output above"
nginx_rps=$(awk -F '\t' '$2 == "nginx" {print $1}' "$tmp/manifest" | python3 -c 'import json, statistics, sys
print(statistics.median(json.load(open(f.strip()))["rps"] for f in sys.stdin))')
half_rate=$(python3 -c 'import sys; print(max(1, round(float(sys.argv[1]) / 2)))' "$nginx_rps")
echo "== nginx: median $nginx_rps req/s; scenario c targets $half_rate req/s"
# nginx at the goal's rate, open loop: what the client and a server doing nothing use of the
# machine there, i.e. what is left for one that stores each heartbeat.
run_bench nginx half-nginx "$nginx_port" --rate "$half_rate"
stop_pid "$nginx_pid"
nginx_pid=""

# ---- libwebsockets alone (bench/peers/lws_floor.c): what aeid's HTTP layer could reach ----
if [ -x "$LWS_FLOOR" ]; then
    floor_port=$(free_port)
    "$LWS_FLOOR" "$floor_port" 2>"$tmp/lws-floor.log" &
    floor_pid=$!
    cpu_pids=("$floor_pid")
    if wait_ready "$floor_pid" "$floor_port"; then
        for n in $(seq 1 "$NGINX_REPEATS"); do
            run_bench lws-floor "max-$n" "$floor_port"
        done
    else
        echo "bench.sh: lws-floor did not start: $(tail -n 3 "$tmp/lws-floor.log")" >&2
        failed=1
    fi
    stop_pid "$floor_pid"
    floor_pid=""
else
    echo "bench.sh: no $LWS_FLOOR; run 'make build' first (skipping the libwebsockets floor)" >&2
    failed=1
fi

# ---- aeid on each store ----
# start_aeid STORE DB [aeid options...]: starts aeid on a free port (sets port, aeid_pid and
# cpu_pids); returns 1, and marks the run failed, when it does not become ready.
start_aeid() {
    local store=$1 db=$2
    shift 2
    port=$(free_port)
    "$AEID" --http "127.0.0.1:$port" --db "$db" "$@" 2>>"$tmp/aeid-$store.log" &
    aeid_pid=$!
    # On PostgreSQL the server's CPU is aeid's and the database's (the postmaster's tree).
    cpu_pids=("$aeid_pid")
    if [ "$store" = postgresql ] && [ -r "$pg_dir/data/postmaster.pid" ]; then
        cpu_pids+=("$(head -n 1 "$pg_dir/data/postmaster.pid")")
    fi
    if ! wait_ready "$aeid_pid" "$port" /healthz; then
        echo "bench.sh: aeid did not become ready on $store; its log ends with:" >&2
        tail -n 5 "$tmp/aeid-$store.log" >&2 || true
        stop_pid "$aeid_pid"
        aeid_pid=""
        failed=1
        return 1
    fi
}

# stop_aeid STORE: stops it, and marks the run failed if it had exited on its own.
stop_aeid() {
    if ! kill -0 "$aeid_pid" 2>/dev/null; then
        echo "bench.sh: aeid exited during the $1 runs; its log ends with:" >&2
        tail -n 5 "$tmp/aeid-$1.log" >&2 || true
        failed=1
    fi
    stop_pid "$aeid_pid"
    aeid_pid=""
}

AEI_TOKEN=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
export AEI_TOKEN

for store in $STORES; do
    case "$store" in
    sqlite)
        db="sqlite:$tmp/bench.db"
        ;;
    postgresql)
        [ -x "$ROOT/scripts/pg.sh" ] || {
            echo "bench.sh: no scripts/pg.sh; skipping PostgreSQL" >&2
            failed=1
            continue
        }
        pg_dir="$tmp/pg"
        db=$("$ROOT/scripts/pg.sh" start "$pg_dir") || {
            echo "bench.sh: PostgreSQL did not start; skipping it" >&2
            failed=1
            continue
        }
        ;;
    *)
        die "unknown store '$store' in BENCH_STORES; use sqlite and/or postgresql"
        ;;
    esac
    start_aeid "$store" "$db" || continue
    run_bench "$store" "bar-${BAR_RATE}rps" "$port" --rate "$BAR_RATE"
    run_bench "$store" max "$port"
    # The latency at a rate this store sustains: 70% of its own closed-loop maximum.
    max_rps=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["rps"])' \
        "$(tail -n 1 "$tmp/manifest" | cut -f1)" 2>/dev/null || echo 0)
    sustained_rate=$(python3 -c 'import sys; print(max(1, round(float(sys.argv[1]) * 0.7)))' \
        "$max_rps")
    run_bench "$store" sustained-70pct-max "$port" --rate "$sustained_rate"
    run_bench "$store" half-nginx "$port" --rate "$half_rate"
    # A fleet: ten times the agents, each sending one heartbeat a second. What it costs should
    # follow what the agents send, not how many are connected (decision 0013).
    run_bench "$store" fleet-1000-agents "$port" --agents 1000 --rate 1000
    stop_aeid "$store"
    # The same fleet on the epoll loop, which is built for it.
    if start_aeid "$store" "$db" --event-loop epoll; then
        run_bench "$store" fleet-1000-agents-epoll "$port" --agents 1000 --rate 1000
        stop_aeid "$store"
    fi
    # The store alone, committing batches the way the writer thread does: the ceiling that
    # HTTP ingest works under.
    if [ -x "$STORE_BENCH" ]; then
        case "$store" in
        sqlite) sb_db="sqlite:$tmp/store-bench.db" ;;
        postgresql)
            psql "$db" -qc "CREATE DATABASE store_bench" >/dev/null 2>&1 || true
            sb_db="${db%/postgres}/store_bench"
            ;;
        esac
        for batch in 25 100; do
            echo "== $store store-bench, batches of $batch"
            "$STORE_BENCH" "$sb_db" "$batch" "$AGENTS" 5 2>/dev/null | tee -a "$tmp/store-bench.txt" ||
                echo "bench.sh: store-bench failed on $store" >&2
        done
    fi
    if [ "$store" = postgresql ]; then
        "$ROOT/scripts/pg.sh" stop "$pg_dir" >/dev/null 2>&1 || true
        pg_dir=""
    fi
done

# ---- results ----
mkdir -p "$OUT"
run_stamp

touch "$tmp/store-bench.txt"
python3 - "$tmp/manifest" "$OUT" "$day" "$commit" "${overrides% }" "$nginx_rps" "$half_rate" \
    "$tmp/store-bench.txt" "$cpu" <<'EOF'
import json, os, platform, statistics, subprocess, sys

manifest, out, day, commit, overrides, nginx_rps, half_rate, store_bench, cpu = sys.argv[1:10]
nginx_rps = float(nginx_rps)

def version(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=5)
        return (r.stdout + r.stderr).strip().splitlines()[0]
    except Exception:
        return "unknown"

def median(xs):
    return statistics.median(xs) if xs else None

def cpu_us(r):
    """CPU microseconds a request: the client's, and the server's (the sum of the processes
    measured, or None when one ended during the run)."""
    c = r.get("cpu") or {}
    client = (c.get("client") or {}).get("us_per_request")
    procs = c.get("processes") or []
    server = None
    if procs and all("us_per_request" in p for p in procs):
        server = round(sum(p["us_per_request"] for p in procs), 2)
    return server, client

runs = []
for line in open(manifest):
    path, store, scenario, cmd = line.rstrip("\n").split("\t")
    r = json.load(open(path))
    server_us, client_us = cpu_us(r)
    runs.append({"label": r["label"], "store": store, "scenario": scenario, "command": cmd,
                 "mode": r["mode"], "agents": r["agents"], "rate": r["rate"],
                 "duration_s": r["duration_s"], "warmup_s": r["warmup_s"],
                 "requests": r["requests"], "ok": r["ok"], "rps": r["rps"],
                 "p50_ms": r["latency_ms"]["p50"], "p90_ms": r["latency_ms"]["p90"],
                 "p99_ms": r["latency_ms"]["p99"], "p999_ms": r["latency_ms"]["p999"],
                 "max_ms": r["latency_ms"]["max"], "errors": r["errors"],
                 "unsent": r["unsent"], "server_cpu_us": server_us, "client_cpu_us": client_us,
                 "cpu": r.get("cpu")})

command = "make bench" + (f" ({overrides})" if overrides else "")
doc = {
    "benchmark": "heartbeat-ingest",
    "date": day,
    "command": command,
    "machine": {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "git_commit": commit,
        "nginx": version(["/usr/sbin/nginx", "-v"]),
        "postgresql": version(["/usr/lib/postgresql/15/bin/postgres", "--version"]),
        "libwebsockets": version(["dpkg-query", "-W", "-f", "libwebsockets ${Version}",
                                  "libwebsockets17"]),
    },
    "nginx_rps": nginx_rps,
    "nginx_rps_is": "median of the nginx runs",
    "lws_floor_rps": median([r["rps"] for r in runs if r["store"] == "lws-floor"]),
    "lws_floor_rps_is": "median of the runs of bench/peers/lws_floor.c (libwebsockets alone, 204)",
    "half_nginx_rate": int(half_rate),
    "runs": runs,
}

def cores(r):
    """The cores client and server used together in a run, or None without both."""
    if r["server_cpu_us"] is None or r["client_cpu_us"] is None:
        return None
    return (r["server_cpu_us"] + r["client_cpu_us"]) * r["rps"] / 1e6

summary = {}
at_goal = next((r for r in runs if r["store"] == "nginx" and r["scenario"] == "half-nginx"), None)
if at_goal and at_goal["server_cpu_us"] is not None and at_goal["client_cpu_us"] is not None:
    # The CPU a request leaves for a server at the goal's rate, on this machine with this client.
    left = os.cpu_count() * 1e6 / at_goal["rate"] - at_goal["client_cpu_us"]
    summary["nginx_at_goal"] = {"rate": at_goal["rate"], "p99_ms": at_goal["p99_ms"],
                                "nginx_cpu_us": at_goal["server_cpu_us"],
                                "client_cpu_us": at_goal["client_cpu_us"],
                                "cores": round(cores(at_goal), 3),
                                "server_budget_us": round(left, 2)}
for store in ("sqlite", "postgresql"):
    by = {r["scenario"]: r for r in runs if r["store"] == store}
    if not by:
        continue
    s = {}
    mx = by.get("max")
    if mx:
        s["max_rps"] = mx["rps"]
        s["max_server_cpu_us"] = mx["server_cpu_us"]
        s["max_p99_ms"] = mx["p99_ms"]
        s["ratio_to_nginx"] = round(mx["rps"] / nginx_rps, 3) if nginx_rps else None
    half = by.get("half-nginx")
    if half:
        s["half_nginx_rps"] = half["rps"]
        s["half_nginx_server_cpu_us"] = half["server_cpu_us"]
        s["half_nginx_p99_ms"] = half["p99_ms"]
        s["goal_met"] = (half["p99_ms"] < 10.0 and half["unsent"] * 100 <= half["requests"]
                         and half["errors"]["total"] == 0)
    sus = by.get("sustained-70pct-max")
    if sus:
        s["sustained_rps"] = sus["rps"]
        s["sustained_p99_ms"] = sus["p99_ms"]
        s["sustained_ratio_to_nginx"] = round(sus["rps"] / nginx_rps, 3) if nginx_rps else None
    bar = [r for k, r in by.items() if k.startswith("bar-")]
    if bar:
        s["bar_rate"] = bar[0]["rate"]
        s["bar_p99_ms"] = bar[0]["p99_ms"]
    summary[store] = s
doc["summary"] = summary
store_lines = [l.strip() for l in open(store_bench) if l.strip()]
doc["store_bench"] = store_lines

base = os.path.join(out, f"heartbeat-ingest-{day}")
with open(base + ".json", "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")

m = doc["machine"]
lines = [
    f"# Heartbeat ingest benchmark, {day}",
    "",
    f"Produced by `{command}` (scripts/bench.sh) at commit `{commit}` on {m['nproc']} x "
    f"{m['cpu']}, kernel {m['kernel']}; {m['nginx']}; {m['postgresql']}; {m['libwebsockets']}. "
    "Client, server and database share the machine over loopback; see bench/README.md.",
    "",
    "| store | scenario | mode | agents | target req/s | req/s | p50 ms | p90 ms | p99 ms "
    "| max ms | errors | unsent | server CPU µs/req | client CPU µs/req |",
    "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
]
def us(v):
    return "–" if v is None else f"{v:.1f}"
for r in runs:
    rate = f"{r['rate']:.0f}" if r["mode"] == "open" else "closed loop"
    lines.append(
        f"| {r['store']} | {r['scenario']} | {r['mode']} | {r['agents']} | {rate} "
        f"| {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} "
        f"| {r['max_ms']:.2f} | {r['errors']['total']} | {r['unsent']} "
        f"| {us(r['server_cpu_us'])} | {us(r['client_cpu_us'])} |")
lines.append("")
for store, s in summary.items():
    if store == "nginx_at_goal":
        continue
    parts = []
    if "max_rps" in s:
        parts.append(f"max {s['max_rps']:.0f} req/s = **{s['ratio_to_nginx']:.2f} x nginx** "
                     f"({nginx_rps:.0f} req/s), p99 {s['max_p99_ms']:.2f} ms")
        if s["max_server_cpu_us"] is not None:
            parts.append(f"{s['max_server_cpu_us']:.1f} µs of the server's CPU a request there")
    if "bar_p99_ms" in s:
        parts.append(f"p99 {s['bar_p99_ms']:.2f} ms at {s['bar_rate']:.0f} req/s")
    if "sustained_p99_ms" in s:
        parts.append(f"p99 {s['sustained_p99_ms']:.2f} ms at {s['sustained_rps']:.0f} req/s "
                     f"({s['sustained_ratio_to_nginx']:.2f} x nginx, 70% of its max)")
    if "half_nginx_p99_ms" in s:
        verdict = "met" if s["goal_met"] else "not met"
        parts.append(f"p99 {s['half_nginx_p99_ms']:.2f} ms at {int(half_rate)} req/s "
                     f"(50% of nginx): goal p99 < 10 ms {verdict}")
    lines.append(f"- **{store}**: " + "; ".join(parts) + ".")
nginx_each = ", ".join("%.0f" % r["rps"] for r in runs
                       if r["store"] == "nginx" and r["scenario"].startswith("max-"))
lines.append(f"- **nginx**: {nginx_rps:.0f} req/s, the median of closed-loop runs at "
             f"{nginx_each} req/s.")
g = summary.get("nginx_at_goal")
if g:
    lines.append(
        f"- **CPU at the goal's rate** ({g['rate']:.0f} req/s, open loop): nginx used "
        f"{g['nginx_cpu_us']:.1f} µs a request and the client {g['client_cpu_us']:.1f} "
        f"({g['cores']:.2f} of {os.cpu_count()} cores, p99 {g['p99_ms']:.2f} ms); the client "
        f"leaves **{g['server_budget_us']:.1f} µs a request** for a server, its store included, "
        "to keep up on this machine.")
floor = doc["lws_floor_rps"]
if floor:
    floor_each = ", ".join("%.0f" % r["rps"] for r in runs if r["store"] == "lws-floor")
    lines.append(f"- **libwebsockets alone** (204, one thread, no JSON or store): {floor:.0f} "
                 f"req/s = {floor / nginx_rps:.2f} x nginx, the median of runs at {floor_each} "
                 "req/s: the most aeid's HTTP layer could reach.")
if store_lines:
    lines += ["", "The store alone (`build/store-bench URL BATCH AGENTS 5`, no HTTP): the most "
              "heartbeats/s a writer thread commits in batches of that size, and the CPU it "
              "spends (with PostgreSQL's server process) a heartbeat.", ""]
    lines += [f"- {l}" for l in store_lines]
lines += ["", "Commands (AEI_TOKEN in the environment):", ""]
lines += [f"    {r['command']}" for r in runs]
lines.append("")
with open(base + ".md", "w") as f:
    f.write("\n".join(lines))

latest = [
    "# Latest benchmark",
    "",
    f"Newest run: [heartbeat-ingest-{day}.md](heartbeat-ingest-{day}.md) "
    f"(data: [heartbeat-ingest-{day}.json](heartbeat-ingest-{day}.json)).",
    "",
] + [l for l in lines if l.startswith("- **")] + [""]
# The other suites' sections (scripts/bench-hub.sh appends "## Live hub") stay as they were.
latest_path = os.path.join(out, "latest.md")
kept = ""
if os.path.exists(latest_path):
    old = open(latest_path).read()
    at = old.find("\n## ")
    if at >= 0:
        kept = old[at + 1:]
with open(latest_path, "w") as f:
    f.write("\n".join(latest))
    if kept:
        f.write("\n" + kept)
print("\n".join(lines))
print(f"bench.sh: wrote {base}.json, {base}.md and {os.path.join(out, 'latest.md')}")
EOF

[ "$failed" -eq 0 ] || die "some runs could not be made; see the messages above"
