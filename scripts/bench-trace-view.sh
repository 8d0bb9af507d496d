#!/usr/bin/env bash
# bench-trace-view.sh - the trace viewer in headless Chromium (Debian's) on an execution of
# 10,000 decisions in a real aeid: first paint and scrolling frames per second, from the
# browser's own clock (web/bench/trace.mjs); writes bench/results/trace-view-<UTC date>.{json,md}.
#
# Run by `make bench` (suite "trace-view") after `make build`. Records numbers and never fails on
# slow ones; exits non-zero only when something could not run at all.
# Environment (optional): BENCH_TRACE_DECISIONS (10000), BENCH_TRACE_RUNS (3),
# BENCH_DASHBOARD_VIEWPORT (1600x900), BENCH_OUT (bench/results), AEID, AEI_CHROMIUM.
set -euo pipefail

# shellcheck source=scripts/bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
OUT=${BENCH_OUT:-$ROOT/bench/results}
[ -x "$AEID" ] || die "no aeid at $AEID: run make build first"
[ -x "${AEI_CHROMIUM:-/usr/bin/chromium}" ] || die "no Chromium: run scripts/bootstrap.sh"
(cd "$ROOT/web" && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build >/dev/null) ||
    die "building the dashboard failed"
mkdir -p "$OUT"
run_stamp
json=$OUT/trace-view-$day.json
AEID=$AEID node "$ROOT/web/bench/trace.mjs" >"$json.tmp" || die "the benchmark did not run"
mv "$json.tmp" "$json"
python3 - "$json" "$OUT/trace-view-$day.md" "$day" "$commit" "$cpu" "$(nproc)" <<'PY'
import json, sys
src, out, day, commit, cpu, cores = sys.argv[1:7]
d = json.load(open(src))
paint, fps = d["first_paint_ms_median"], d["scroll_fps_median"]
met = paint < 1000 and fps >= 55
md = [f"# Trace viewer, {day}", "",
      f"Commit `{commit}`, CPU {cpu} ({cores} cores, shared), Chromium {d['chromium']} headless, "
      f"viewport {d['viewport']}. `scripts/bench-trace-view.sh` (`web/bench/trace.mjs`): one "
      f"execution of {d['decisions']:,} decisions (a tree branching four ways, about 600 bytes of "
      "reasoning and three alternatives each) stored in a real aeid on SQLite, then "
      "`/traces/<id>` opened in a fresh page per run. First paint: from the navigation's start "
      "to the first animation frame with a decision row in the document. Scrolling: the tree "
      "scrolled 120 px a frame for 5 s (further pages load as it goes), frames counted with "
      "requestAnimationFrame.", "",
      "| run | first paint ms | scrolling FPS | rows in the document |", "| ---: | ---: | ---: | ---: |"]
for k, r in enumerate(d["runs"], 1):
    md.append(f"| {k} | {r['first_paint_ms']:.0f} | {r['scroll_fps']:.1f} | {r['rows_in_document']} |")
md += ["", f"Medians: first paint **{paint:.0f} ms** (goal < 1,000), scrolling **{fps:.1f} FPS** "
       f"(goal >= 55): **{'met' if met else 'not met'}**.", ""]
open(out, "w").write("\n".join(md))
print("\n".join(md))
PY
