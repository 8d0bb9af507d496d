#!/usr/bin/env bash
# bench-traces.sh - decision-trace benchmark: durable ingest of batches of 100 decisions, then the
# time to serve 500-node pages of a 100,000-decision execution, on SQLite and PostgreSQL; writes
# bench/results/traces-<UTC date>.{json,md} and a "## Decision traces" section of latest.md.
#
# Run by `make bench` (suite "traces") after `make build`. Records numbers and never fails on
# slow ones; exits non-zero only when something could not run at all.
#
# Ingest: `aei bench --traces 100` (closed loop, BENCH_TRACE_AGENTS connections, each growing its
# own executions of 100,000 decisions in four-way trees), answered after commit (SQLite WAL with
# synchronous=FULL; PostgreSQL's default synchronous_commit=on). Pages: a keep-alive client walks
# the whole tree of one execution of 100,000 decisions in pages of 500 (GET
# /api/v0/executions/{id}/decisions?limit=500&cursor=...), then fetches BENCH_PAGE_SAMPLES pages
# at random cursors; the time of each request is measured from sending it to reading the whole
# answer.
#
# Environment (all optional): BENCH_DURATION (seconds of ingest, default 20), BENCH_WARMUP (1),
# BENCH_TRACE_AGENTS (4), BENCH_PAGE_SAMPLES (500), BENCH_STORES ("sqlite postgresql"),
# BENCH_OUT (bench/results), AEI, AEID.
set -euo pipefail

# shellcheck source=scripts/bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
DURATION=${BENCH_DURATION:-20}
WARMUP=${BENCH_WARMUP:-1}
AGENTS=${BENCH_TRACE_AGENTS:-4}
SAMPLES=${BENCH_PAGE_SAMPLES:-500}
STORES=${BENCH_STORES:-sqlite postgresql}
OUT=${BENCH_OUT:-$ROOT/bench/results}
EXECUTION_SIZE=100000

[ -x "$AEI" ] || die "no $AEI; run 'make build' first"
[ -x "$AEID" ] || die "no $AEID; run 'make build' first"
command -v python3 >/dev/null || die "python3 is needed; run scripts/bootstrap.sh"

tmp=$(bench_tmp aei-bench-traces)
aeid_pid=""
pg_dir=""
failed=0
trap 'cleanup "$aeid_pid"' EXIT
trap 'exit 130' INT TERM

AEI_TOKEN=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
export AEI_TOKEN

# pages PORT STORE: measures page times on the largest execution, writes $tmp/runs/pages-STORE.json.
pages() {
    python3 - "$1" "$SAMPLES" "$tmp/runs/pages-$2.json" <<'PY'
import http.client, json, os, random, sys, time

port, samples, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
token = os.environ["AEI_TOKEN"]
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
headers = {"Authorization": "Bearer " + token}

def get(path):
    t0 = time.perf_counter()
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    body = r.read()
    ms = (time.perf_counter() - t0) * 1000
    if r.status != 200:
        sys.exit(f"GET {path}: {r.status} {body[:200]!r}")
    return ms, json.loads(body)

# The execution with the most decisions.
best, cursor = None, None
while True:
    _, page = get("/api/v0/executions?limit=1000" + (f"&cursor={cursor}" if cursor else ""))
    for e in page["executions"]:
        if best is None or e["decisions"] > best["decisions"]:
            best = e
    cursor = page["next"]
    if not cursor:
        break
if best is None:
    sys.exit("no execution was stored")
ex = best["execution_id"]

def walk():
    times, cursors, nodes, cursor, depth = [], [None], 0, None, 0
    while True:
        path = f"/api/v0/executions/{ex}/decisions?limit=500" + (f"&cursor={cursor}" if cursor else "")
        ms, page = get(path)
        times.append(ms)
        nodes += len(page["decisions"])
        depth = max([depth] + [d["depth"] for d in page["decisions"]])
        cursor = page["next"]
        if not cursor:
            return times, cursors, nodes, depth
        cursors.append(cursor)

walk()  # warm the caches once, unmeasured
walk_times, cursors, nodes, depth = walk()
random.seed(42)
rand_times = []
for _ in range(samples):
    c = random.choice(cursors)
    ms, page = get(f"/api/v0/executions/{ex}/decisions?limit=500" + (f"&cursor={c}" if c else ""))
    rand_times.append(ms)
root = get(f"/api/v0/executions/{ex}/decisions?limit=500")[1]["decisions"][0]["decision_id"]
child_times = [get(f"/api/v0/executions/{ex}/decisions?limit=500&parent={root}")[0]
               for _ in range(100)]

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

def stats(xs):
    return {"n": len(xs), "p50_ms": round(pct(xs, 50), 3), "p99_ms": round(pct(xs, 99), 3),
            "max_ms": round(max(xs), 3)}

json.dump({"execution_id": ex, "decisions": best["decisions"], "nodes_walked": nodes,
           "max_depth": depth, "walk": stats(walk_times), "random": stats(rand_times),
           "children_of_root": stats(child_times),
           "all_pages": stats(walk_times + rand_times)}, open(out, "w"), indent=2)
PY
}

for store in $STORES; do
    case "$store" in
    sqlite) db="sqlite:$tmp/traces.db" ;;
    postgresql)
        pg_dir="$tmp/pg"
        db=$("$ROOT/scripts/pg.sh" start "$pg_dir") || {
            echo "bench-traces.sh: PostgreSQL did not start; skipping it" >&2
            failed=1
            continue
        }
        ;;
    *) die "unknown store '$store' in BENCH_STORES; use sqlite and/or postgresql" ;;
    esac
    port=$(free_port)
    ws_port=$(free_port)
    "$AEID" --http "127.0.0.1:$port" --ws "127.0.0.1:$ws_port" --db "$db" \
        2>"$tmp/aeid-$store.log" &
    aeid_pid=$!
    wait_ready "$aeid_pid" "$port" /healthz || {
        tail -n 5 "$tmp/aeid-$store.log" >&2
        die "aeid did not become ready on $store"
    }
    cmd=(aei bench --server "127.0.0.1:$port" --traces 100 --agents "$AGENTS"
        --execution-size "$EXECUTION_SIZE" --duration "$DURATION" --warmup "$WARMUP"
        --label "$store-ingest")
    echo "== $store: ${cmd[*]}"
    if ! "$AEI" "${cmd[@]:1}" --quiet --json "$tmp/runs/ingest-$store.json"; then
        echo "bench-traces.sh: the ingest run on $store failed" >&2
        failed=1
    fi
    printf '%s\n' "${cmd[*]}" >"$tmp/runs/ingest-$store.cmd"
    # Make sure one execution holds 100,000 decisions: top up with one agent if none does yet.
    top=$(python3 -c 'import json, sys, urllib.request as u
r = u.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
print(max([e["decisions"] for e in json.load(u.urlopen(r))["executions"]] + [0]))' \
        "http://127.0.0.1:$port/api/v0/executions?limit=1000" "$AEI_TOKEN")
    if [ "$top" -lt "$EXECUTION_SIZE" ]; then
        echo "== $store: the largest execution has $top decisions; one agent tops it up"
        "$AEI" bench --server "127.0.0.1:$port" --traces 1000 --agents 1 \
            --execution-size "$EXECUTION_SIZE" --duration 30 --warmup 0 --quiet \
            --json /dev/null >/dev/null || true
    fi
    echo "== $store: pages of 500 of the largest execution"
    pages "$port" "$store" || failed=1
    stop_pid "$aeid_pid"
    aeid_pid=""
    if [ "$store" = postgresql ]; then
        "$ROOT/scripts/pg.sh" stop "$pg_dir" >/dev/null 2>&1 || true
        pg_dir=""
    fi
done

mkdir -p "$OUT"
run_stamp
python3 - "$tmp/runs" "$OUT" "$day" "$commit" "${overrides% }" "$cpu" <<'PY'
import json, os, platform, sys

runs_dir, out, day, commit, overrides, cpu = sys.argv[1:7]
goals = {"sqlite": 50000, "postgresql": 20000}
doc = {"benchmark": "traces", "date": day,
       "command": "make bench" + (f" ({overrides})" if overrides else ""),
       "machine": {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
                   "git_commit": commit},
       "stores": {}}
for store in ("sqlite", "postgresql"):
    path = os.path.join(runs_dir, f"ingest-{store}.json")
    if not os.path.exists(path):
        continue
    r = json.load(open(path))
    s = {"command": open(os.path.join(runs_dir, f"ingest-{store}.cmd")).read().strip(),
         "decisions_per_s": r["traces"]["decisions_per_s"], "batches_per_s": r["ok_rps"],
         "batch": r["traces"]["batch"], "duration_s": r["duration_s"],
         "batch_latency_ms": r["latency_ms"], "errors": r["errors"]["total"],
         "ingest_goal": goals[store]}
    s["ingest_goal_met"] = s["decisions_per_s"] >= goals[store] and s["errors"] == 0
    ppath = os.path.join(runs_dir, f"pages-{store}.json")
    if os.path.exists(ppath):
        s["pages"] = json.load(open(ppath))
        s["page_goal_met"] = (s["pages"]["decisions"] >= 100000
                              and s["pages"]["all_pages"]["p99_ms"] < 20)
    doc["stores"][store] = s

base = os.path.join(out, f"traces-{day}")
with open(base + ".json", "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")

m = doc["machine"]
lines = [f"# Decision traces benchmark, {day}", "",
         f"Produced by `{doc['command']}` (scripts/bench-traces.sh) at commit `{commit}` on "
         f"{m['nproc']} x {m['cpu']}, kernel {m['kernel']}. Client, server and database share "
         "the machine over loopback.", "",
         "Ingest: batches of 100 realistic decisions (about 790 bytes each), closed loop, each "
         "answered after its transaction committed.", "",
         "| store | decisions/s | batches/s | batch p50 ms | batch p99 ms | errors | goal |",
         "|---|---:|---:|---:|---:|---:|---|"]
for store, s in doc["stores"].items():
    l = s["batch_latency_ms"]
    verdict = "met" if s["ingest_goal_met"] else "not met"
    lines.append(f"| {store} | {s['decisions_per_s']:.0f} | {s['batches_per_s']:.0f} "
                 f"| {l['p50']:.2f} | {l['p99']:.2f} | {s['errors']} "
                 f"| >= {s['ingest_goal']:,} decisions/s: {verdict} |")
lines += ["", "Pages of 500 decisions (tree pre-order with depth) of the largest execution: the "
          "whole tree walked once, then pages at random cursors; one keep-alive client.", "",
          "| store | decisions | max depth | pages | p50 ms | p99 ms | max ms | children of the "
          "root p99 ms | goal p99 < 20 ms |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
for store, s in doc["stores"].items():
    p = s.get("pages")
    if not p:
        continue
    a = p["all_pages"]
    verdict = "met" if s["page_goal_met"] else "not met"
    lines.append(f"| {store} | {p['decisions']} | {p['max_depth']} | {a['n']} | {a['p50_ms']:.2f} "
                 f"| {a['p99_ms']:.2f} | {a['max_ms']:.2f} | {p['children_of_root']['p99_ms']:.2f} "
                 f"| {verdict} |")
lines += ["", "Commands (AEI_TOKEN in the environment):", ""]
lines += [f"    {s['command']}" for s in doc["stores"].values()]
lines.append("")
with open(base + ".md", "w") as f:
    f.write("\n".join(lines))

# latest.md keeps one section per suite; this one replaces its own.
section = ["## Decision traces", "",
           f"Newest run: [traces-{day}.md](traces-{day}.md).", ""]
for store, s in doc["stores"].items():
    p = s.get("pages", {}).get("all_pages")
    page = f"; 500-node pages p99 {p['p99_ms']:.2f} ms" if p else ""
    section.append(f"- **{store}**: {s['decisions_per_s']:.0f} decisions/s in batches of 100"
                   f"{page}.")
section.append("")
latest_path = os.path.join(out, "latest.md")
text = open(latest_path).read() if os.path.exists(latest_path) else "# Latest benchmark\n"
at = text.find("\n## Decision traces")
if at >= 0:
    nxt = text.find("\n## ", at + 1)
    text = text[:at + 1] + (text[nxt + 1:] if nxt >= 0 else "")
with open(latest_path, "w") as f:
    f.write(text.rstrip("\n") + "\n\n" + "\n".join(section))
print("\n".join(lines))
print(f"bench-traces.sh: wrote {base}.json, {base}.md and {latest_path}")
PY

[ "$failed" -eq 0 ] || die "some runs could not be made; see the messages above"
