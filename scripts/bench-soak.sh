#!/usr/bin/env bash
# bench-soak.sh - the five mock agents (scripts/mock-agents, Python SDK) and `aei mock --agents
# 50` (libaei) against one aeid for BENCH_SOAK_SECONDS (default 600), with an operator executing,
# pausing and resuming the mock agents through the API every few seconds. Samples aeid's CPU
# and memory every 5 s and records bench/results/soak-<UTC date>.{json,md}: the server's CPU
# and resident memory over time, requests by status, commands acknowledged, and whether every
# client finished without an error.
#
# Run by `make bench` (suite "soak") after `make build`; exits non-zero only when something
# could not run at all. Environment (optional): BENCH_SOAK_SECONDS, BENCH_STORES (the first is
# used; default sqlite), BENCH_OUT.
set -euo pipefail

# shellcheck source=scripts/bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
SECONDS_TOTAL=${BENCH_SOAK_SECONDS:-600}
STORE=${BENCH_STORES:-sqlite}
STORE=${STORE%% *}
OUT=${BENCH_OUT:-$ROOT/bench/results}
[ -x "$AEID" ] && [ -x "$AEI" ] || die "no $AEID or $AEI; run 'make build' first"
export AEI_TOKEN=${AEI_TOKEN:-soak-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')}

tmp=$(bench_tmp aei-bench-soak)
pg_dir=""
aeid_pid=""
clients=()
trap 'cleanup "${clients[@]}" "$aeid_pid"' EXIT
store_up "$STORE" || exit 1
port=$(free_port)
"$AEID" --http "127.0.0.1:$port" --ws "127.0.0.1:$(free_port)" --db "$db" \
    --audit-key "$tmp/audit.key" 2>"$tmp/aeid.log" &
aeid_pid=$!
wait_ready "$aeid_pid" "$port" /healthz || die "aeid did not become ready"

echo "== soak: 5 mock agents and aei mock --agents 50 for ${SECONDS_TOTAL}s on $STORE" >&2
for i in 1 2 3 4 5; do
    timeout --signal=INT "$SECONDS_TOTAL" python3 "$ROOT/scripts/mock-agents/agent$i.py" \
        --server "127.0.0.1:$port" >"$tmp/runs/agent$i.log" 2>&1 &
    clients+=($!)
done
"$AEI" mock --agents 50 --server "127.0.0.1:$port" --duration "$SECONDS_TOTAL" \
    >"$tmp/runs/aei-mock.log" 2>&1 &
mock_pid=$!
clients+=($mock_pid)

# The operator: every 5 s an action on one of the five agents, and aeid's CPU and memory.
python3 - "$port" "$aeid_pid" "$SECONDS_TOTAL" "$tmp/runs/samples.json" <<'PY'
import json, os, sys, time, urllib.request as u
port, pid, total, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
token = os.environ["AEI_TOKEN"]
base = f"http://127.0.0.1:{port}/api/v0"
agents = ["researcher-1", "coder-1", "planner-1", "reviewer-1", "orchestrator-1"]
plan = ["execute", "pause", "resume"]
tick = os.sysconf("SC_CLK_TCK")
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
def act(agent, action):
    body = json.dumps({"prompt": "soak: review the last hour's work"} if action == "execute" else {})
    r = u.Request(f"{base}/agents/{agent}/{action}", data=body.encode(), method="POST",
                  headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    try:
        return u.urlopen(r, timeout=10).status
    except u.HTTPError as e:
        return e.code
    except OSError:
        return 0
samples, actions, start, last_cpu, k = [], {}, time.time(), cpu(), 0
while time.time() - start < total - 5:
    time.sleep(5)
    now_cpu = cpu()
    samples.append({"t": round(time.time() - start, 1), "cpu_pct": round((now_cpu - last_cpu) / 5 * 100, 1),
                    "rss_bytes": rss()})
    last_cpu = now_cpu
    agent, action = agents[k % 5], plan[(k // 5) % 3]
    status = act(agent, action)
    actions[str(status)] = actions.get(str(status), 0) + 1
    k += 1
json.dump({"samples": samples, "actions": actions}, open(out, "w"))
PY
mock_rc=0
wait "$mock_pid" || mock_rc=$?
for pid in "${clients[@]}"; do wait "$pid" 2>/dev/null || true; done
clients=()
curl -sf -H "Authorization: Bearer $AEI_TOKEN" "http://127.0.0.1:$port/metrics" >"$tmp/runs/metrics.txt" ||
    die "could not read /metrics"
curl -sf -H "Authorization: Bearer $AEI_TOKEN" "http://127.0.0.1:$port/api/v0/audit/verify" \
    >"$tmp/runs/verify.json" || die "could not verify the audit log"
for a in researcher-1 coder-1 planner-1 reviewer-1 orchestrator-1; do
    curl -sf -H "Authorization: Bearer $AEI_TOKEN" \
        "http://127.0.0.1:$port/api/v0/agents/$a/commands?limit=1000" >"$tmp/runs/commands-$a.json" || true
done
stop_pid "$aeid_pid"
aeid_pid=""

mkdir -p "$OUT"
run_stamp
python3 - "$tmp/runs" "$OUT/soak-$day" "$day" "$commit" "$cpu" "$SECONDS_TOTAL" "$STORE" "$mock_rc" <<'PY'
import glob, json, os, re, statistics, sys
runs, out, day, commit, cpu, total, store, mock_rc = sys.argv[1:9]
s = json.load(open(f"{runs}/samples.json"))
samples = s["samples"]
http = {}
for line in open(f"{runs}/metrics.txt"):
    m = re.match(r'aei_http_requests_total\{.*code="(\d+)".*\} (\d+)', line)
    if m:
        http[m.group(1)] = http.get(m.group(1), 0) + int(m.group(2))
errors_5xx = sum(v for k, v in http.items() if k.startswith("5"))
commands = {}
for f in glob.glob(f"{runs}/commands-*.json"):
    for c in json.load(open(f))["commands"]:
        commands[c["status"]] = commands.get(c["status"], 0) + 1
agent_errors = []
for f in sorted(glob.glob(f"{runs}/agent*.log")):
    text = open(f).read()
    if "Traceback" in text or "error" in text.lower():
        agent_errors.append(os.path.basename(f))
mock_tail = open(f"{runs}/aei-mock.log").read().strip().splitlines()[-6:]
verify = json.load(open(f"{runs}/verify.json"))
cpus = [x["cpu_pct"] for x in samples]
rss = [x["rss_bytes"] for x in samples]
ok = (int(mock_rc) == 0 and errors_5xx == 0 and not agent_errors and verify.get("ok") is True)
doc = {"benchmark": "soak", "date": day, "commit": commit, "cpu": cpu, "store": store,
       "seconds": int(total), "ok": ok, "aei_mock_exit": int(mock_rc), "http_by_status": http,
       "operator_actions_by_status": s["actions"], "commands_by_status": commands,
       "python_agents_with_errors": agent_errors, "audit_verify": verify,
       "aeid_cpu_pct": {"median": statistics.median(cpus), "max": max(cpus)},
       "aeid_rss_bytes": {"first": rss[0], "median": statistics.median(rss), "max": max(rss),
                          "last": rss[-1]},
       "samples": samples, "aei_mock_summary": mock_tail}
json.dump(doc, open(out + ".json", "w"), indent=2)
mb = lambda b: f"{b / 1048576:.1f}"
md = [f"# Soak: five mock agents and aei mock --agents 50, {day}", "",
      f"Commit `{commit}`, CPU {cpu}, store {store}, {int(total)} s. `scripts/bench-soak.sh` "
      "(`make bench` suite \"soak\"): the five Python mock agents (scripts/mock-agents) and "
      "`aei mock --agents 50` (libaei) against one aeid, and an operator acting on the five "
      "every 5 s (execute, pause, resume in turn). aeid's CPU and resident memory sampled every 5 s.",
      "", f"Result: **{'no errors' if ok else 'ERRORS'}** (aei mock exit {mock_rc}, HTTP 5xx "
      f"{errors_5xx}, Python agents with errors: {', '.join(agent_errors) or 'none'}, audit "
      f"chain verified: {verify.get('ok')} over {verify.get('rows_checked')} rows).", "",
      "| aeid | median | max |", "| --- | ---: | ---: |",
      f"| CPU % (of one core) | {statistics.median(cpus):.1f} | {max(cpus):.1f} |",
      f"| resident memory MiB | {mb(statistics.median(rss))} | {mb(max(rss))} |", "",
      f"Memory first/last sample: {mb(rss[0])} / {mb(rss[-1])} MiB.", "",
      "Requests by status: " + ", ".join(f"{k}: {v:,}" for k, v in sorted(http.items())) + ".",
      "Operator actions by answer: " + ", ".join(f"{k}: {v}" for k, v in sorted(s["actions"].items())) + ".",
      "Commands of the five agents by state at the end: "
      + ", ".join(f"{k}: {v}" for k, v in sorted(commands.items())) + ".", "",
      "aei mock's summary:", "", "```", *mock_tail, "```", ""]
open(out + ".md", "w").write("\n".join(md))
print("\n".join(md))
PY
