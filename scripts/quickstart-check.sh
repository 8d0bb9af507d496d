#!/usr/bin/env bash
# quickstart-check.sh - the README's quickstart, headless, as a test: the run command
# (scripts/run.sh: the dashboard built and served, aeid on SQLite), the dashboard answering at
# its URL, the five mock agents started, an execution triggered with curl, and its trace found.
# Each step must finish within its time limit and the whole within five minutes. Exits 0 when
# every step passed; otherwise says which step failed and shows the end of the logs.
#
# Run by scripts/test.sh. Environment (optional): AEID (default build/aeid), QUICKSTART_KEEP=1
# to keep the scratch directory.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
AEID=${AEID:-$root/build/aeid}
[ -x "$AEID" ] || { echo "quickstart-check: no $AEID; run 'make build' first" >&2; exit 1; }

tmp=$(mktemp -d /tmp/aei-quickstart.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    [ -n "${QUICKSTART_KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
started=$(date +%s)
step_started=$started
fail() {
    echo "quickstart-check: FAILED at step $step: $*" >&2
    for log in "$tmp"/*.log; do
        echo "--- ${log##*/}" >&2
        tail -n 15 "$log" >&2
    done
    exit 1
}
step() {
    step=$1
    step_started=$(date +%s)
    echo "quickstart-check: step $1"
}
# within SECONDS COMMAND...: retries the command every half second until it succeeds.
within() {
    local limit=$1
    shift
    local deadline=$(($(date +%s) + limit))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.5
    done
}

export AEI_HTTP=127.0.0.1:$(free_port) AEI_WS=127.0.0.1:$(free_port)
export AEI_DATABASE_URL=sqlite:$tmp/aei.db AEI_AUDIT_CHECKPOINT=$tmp/audit.checkpoint
AEI_TOKEN=quickstart-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
export AEI_TOKEN
base=http://$AEI_HTTP
auth=(-H "Authorization: Bearer $AEI_TOKEN")

step "1 (make run: scripts/run.sh builds the dashboard and starts aeid)"
AEID=$AEID scripts/run.sh >"$tmp/run.log" 2>&1 &
pids+=($!)
within 180 curl -sf "$base/healthz" || fail "aeid did not answer /healthz"

step "2 (the dashboard at $base/)"
curl -sf "$base/" | grep -q '<div id="root">' || fail "GET / is not the dashboard"
curl -sf "$base/traces/anything" | grep -q '<div id="root">' ||
    fail "client-side routes do not fall back to index.html"

step "3 (five mock agents)"
for i in 1 2 3 4 5; do
    python3 scripts/mock-agents/agent$i.py --server "$AEI_HTTP" >"$tmp/agent$i.log" 2>&1 &
    pids+=($!)
done
agents_up() {
    curl -sf "${auth[@]}" "$base/api/v0/agents" |
        python3 -c 'import json, sys; sys.exit(len(json.load(sys.stdin)["agents"]) < 5)'
}
within 30 agents_up || fail "the five agents did not all register"
agent=researcher-1 # agent1.py, as in the README

step "4 (curl: execute on $agent)"
answer=$(curl -sf -X POST "${auth[@]}" -H 'Content-Type: application/json' \
    -d '{"prompt":"Find three recent papers on agent observability and summarise them"}' \
    "$base/api/v0/agents/$agent/execute") || fail "POST /api/v0/agents/$agent/execute failed"
execution=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["execution_id"])' "$answer")

step "5 (its trace: execution $execution)"
finished() {
    curl -sf "${auth[@]}" "$base/api/v0/executions/$execution" |
        python3 -c 'import json, sys; e = json.load(sys.stdin)
sys.exit(not (e["status"] == "completed" and 10 <= e["decisions"] <= 30))'
}
within 90 finished || fail "execution $execution did not complete with 10-30 decisions"
curl -sf "${auth[@]}" "$base/api/v0/executions/$execution/decisions" |
    python3 -c 'import json, sys; d = json.load(sys.stdin)["decisions"]
sys.exit(not d or d[0]["depth"] != 0)' || fail "the decision tree did not read back"
curl -sf "${auth[@]}" "$base/api/v0/executions/$execution/export?format=markdown" |
    grep -q "$execution" || fail "the Markdown export does not name the execution"
acked() {
    curl -sf "${auth[@]}" "$base/api/v0/agents/$agent/commands" |
        python3 -c 'import json, sys; c = json.load(sys.stdin)["commands"][0]
sys.exit(c["status"] != "succeeded")'
}
within 30 acked || fail "the agent did not acknowledge the execute command"
curl -sf "${auth[@]}" "$base/api/v0/audit/verify" | grep -q '"ok":true' ||
    fail "the audit log does not verify"

took=$(($(date +%s) - started))
[ "$took" -le 300 ] || fail "the quickstart took ${took}s, more than five minutes"
echo "quickstart-check: passed in ${took}s (execution $execution on $agent: $base/traces/$execution)"
