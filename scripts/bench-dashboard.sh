#!/usr/bin/env bash
# bench-dashboard.sh - the dashboard in headless Chromium (Debian's) while agents send heartbeats
# to a real aeid: heartbeat-to-paint latency, main-thread busy time and frames per second, from
# the browser's own measurements (web/bench/dashboard.mjs); writes
# bench/results/dashboard-<UTC date>.{json,md}.
#
# Run by `make bench` (BENCH_SUITES="... dashboard"), or on its own after `make build`.
# Benchmarks record numbers and never fail on slow ones; the script exits non-zero only when
# something could not run at all.
#
# Environment (all optional):
#   BENCH_DASHBOARD_SCENARIOS  agents x ms between an agent's heartbeats x seconds
#                              ("100x5000x60 1000x1000x30": the seed's bar, then the goal)
#   BENCH_DASHBOARD_VIEWPORT   the browser window (1600x900)
#   BENCH_DASHBOARD_TRACE      write a Chrome trace of the first scenario to this file
#   BENCH_OUT (bench/results), AEID, AEI_CHROMIUM (/usr/bin/chromium)
set -euo pipefail

# shellcheck source=scripts/bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
OUT=${BENCH_OUT:-$ROOT/bench/results}
export BENCH_DASHBOARD_SCENARIOS=${BENCH_DASHBOARD_SCENARIOS:-100x5000x60 1000x1000x30}
[ -x "$AEID" ] || die "no aeid at $AEID: run make build first"
[ -x "${AEI_CHROMIUM:-/usr/bin/chromium}" ] || die "no Chromium: run scripts/bootstrap.sh"

echo "== dashboard: building web/dist"
(cd "$ROOT/web" && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build >/dev/null) ||
    die "building the dashboard failed"

stamp=$(date -u +%Y-%m-%d)
json=$OUT/dashboard-$stamp.json
md=$OUT/dashboard-$stamp.md
mkdir -p "$OUT"
echo "== dashboard: $BENCH_DASHBOARD_SCENARIOS"
AEID=$AEID node "$ROOT/web/bench/dashboard.mjs" >"$json.tmp" || die "the benchmark did not run"
mv "$json.tmp" "$json"

node - "$json" "$md" "$(nproc)" "$(uptime | sed 's/.*load average: //')" <<'NODE'
const fs = require('fs');
const [json, md, cores, load] = process.argv.slice(2);
const r = JSON.parse(fs.readFileSync(json, 'utf8'));
const f = (v, d = 1) => (v === null || v === undefined ? '—' : v.toFixed(d));
const lines = [
  `# Dashboard benchmark, ${new Date().toISOString().slice(0, 10)}`,
  '',
  `Headless Chromium ${r.chromium} (Debian's), window ${r.viewport}, the agents view sorted by id,`,
  `against a release aeid on SQLite; agents post real heartbeats over HTTP from Node.js on the same`,
  `machine (${cores} cores, load average at the end ${load}). Produced by scripts/bench-dashboard.sh`,
  '(`make bench`, suite dashboard); method in web/bench/dashboard.mjs.',
  '',
  '| agents | heartbeats/s | rows in view | samples | paint p50 ms | p95 | p99 | max | main-thread busy % | CPU % | script % | style+layout % | FPS |',
  '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ...r.scenarios.map((s) => `| ${s.agents} (each every ${s.heartbeat_every_ms / 1000} s) | ${s.heartbeats_per_s} | ${s.rows_in_view} | ${s.samples} | ${f(s.paint_ms.p50)} | ${f(s.paint_ms.p95)} | ${f(s.paint_ms.p99)} | ${f(s.paint_ms.max)} | ${f(s.main_thread_busy_pct)} | ${f(s.main_thread_cpu_pct)} | ${f(s.script_pct)} | ${f(s.style_layout_pct)} | ${f(s.fps)} |`),
  '',
  'Heartbeat-to-paint is measured for the agents whose rows are on screen (the others have no',
  'row to paint: the table is virtualized). Busy % is the main thread\'s task time over the',
  `window (Chrome's TaskDuration), CPU % its CPU time (ThreadTime); FPS comes from a`,
  'requestAnimationFrame loop in a separate 10 s window so that it does not inflate busy time.',
  '',
];
fs.writeFileSync(md, lines.join('\n'));
NODE
echo "dashboard: results in $md"
cat "$md"
