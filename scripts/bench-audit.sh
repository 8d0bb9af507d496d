#!/usr/bin/env bash
# bench-audit.sh - audit log benchmark at the store level (build/audit-bench, bench/audit_bench.c)
# on SQLite and PostgreSQL: durable appends (one row per transaction, and 16 per transaction as a
# group-committing writer would make them), verification of a log of BENCH_AUDIT_ROWS rows
# (default 1,000,000, in 10 team chains), and 1,000 filtered pages of 100 rows from it as
# GET /api/v0/audit builds them (each row verified, rendered as JSON), with the query plans;
# writes bench/results/audit-<UTC date>.{json,md}.
#
# Run by `make bench` (suite "audit") after `make build`. Records numbers and never fails on
# slow ones; exits non-zero only when something could not run at all. The HTTP path of audited
# actions arrives with agent commands (issue 5); these figures are the store's.
#
# Environment (all optional): BENCH_AUDIT_ROWS (1000000), BENCH_AUDIT_APPEND_SECONDS (10),
# BENCH_STORES ("sqlite postgresql"), BENCH_OUT (bench/results).
set -euo pipefail

# shellcheck source=scripts/bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
ROWS=${BENCH_AUDIT_ROWS:-1000000}
SECONDS_APPEND=${BENCH_AUDIT_APPEND_SECONDS:-10}
STORES=${BENCH_STORES:-sqlite postgresql}
OUT=${BENCH_OUT:-$ROOT/bench/results}
BENCH=$(first_of "$ROOT/build/audit-bench")

[ -x "$BENCH" ] || die "no $BENCH; run 'make build' first"
command -v python3 >/dev/null || die "python3 is needed; run scripts/bootstrap.sh"

tmp=$(bench_tmp aei-bench-audit)
pg_dir=""
trap 'cleanup' EXIT
run_stamp

for store in $STORES; do
    case $store in
    sqlite) url="sqlite:$tmp/audit.db" ;;
    postgresql)
        pg_dir="$tmp/pg"
        url=$("$ROOT/scripts/pg.sh" start "$pg_dir") || die "could not start PostgreSQL"
        ;;
    *) die "unknown store '$store' in BENCH_STORES; use sqlite, postgresql" ;;
    esac
    echo "== $store: $ROWS rows" >&2
    "$BENCH" "$url" "$ROWS" "$SECONDS_APPEND" >"$tmp/runs/$store.txt" || die "audit-bench failed on $store"
    if [ "$store" = postgresql ]; then
        "$ROOT/scripts/pg.sh" stop "$pg_dir" >/dev/null 2>&1 || true
        pg_dir=""
    fi
done

mkdir -p "$OUT"
python3 - "$tmp/runs" "$OUT/audit-$day" "$day" "$commit" "$overrides" "$cpu" "$ROWS" "$STORES" <<'PY'
import json, sys
runs, out, day, commit, overrides, cpu, rows, stores = sys.argv[1:9]
doc = {"suite": "audit", "date": day, "commit": commit, "overrides": overrides.strip(),
       "cpu": cpu, "rows": int(rows), "stores": {}}
for store in stores.split():
    figures, plans, plan = {}, {}, None
    for line in open(f"{runs}/{store}.txt"):
        line = line.rstrip("\n")
        if line.startswith("plan "):
            plan = line[5:]
            plans[plan] = []
        elif line == "end plan":
            plan = None
        elif plan is not None:
            plans[plan].append(line.strip())
        elif line:
            k, v = line.split(" ", 1)
            figures[k] = float(v)
    doc["stores"][store] = {"figures": figures, "plans": plans}
json.dump(doc, open(out + ".json", "w"), indent=2)
goals = [("append_1_rows_per_s", ">=", 5000, "durable appends, 1 row per transaction (rows/s)"),
         ("append_16_rows_per_s", ">=", 5000, "durable appends, 16 rows per transaction (rows/s)"),
         ("verify_run1_rows_per_s", ">=", 500000, "verification, first walk (rows/s)"),
         ("verify_run2_rows_per_s", ">=", 500000, "verification, second walk (rows/s)")]
filters = ["actor", "resource_id", "action_type", "actor_from_to", "none"]
md = [f"# Audit log benchmark, {day}", "",
      f"Commit `{commit}`, CPU {cpu}, {int(rows):,} rows in 10 team chains (200 actors, 20,000 "
      "resources, 8 actions). Store level (`bench/audit_bench.c` via `scripts/bench-audit.sh`): "
      "no HTTP in the way; the HTTP path of audited actions arrives with agent commands. SQLite "
      "in WAL with synchronous=FULL, PostgreSQL with synchronous_commit=on: every append is "
      "durable when it returns. The machine has 2 cores shared with other work.", "",
      "| figure | goal | " + " | ".join(doc["stores"]) + " |",
      "| --- | --- | " + " | ".join("---:" for _ in doc["stores"]) + " |"]
def fmt(v):
    return f"{v:,.0f}" if v >= 100 else f"{v:.3f}"
for key, op, goal, text in goals:
    md.append(f"| {text} | {op} {goal:,} | " +
              " | ".join(fmt(doc["stores"][s]["figures"].get(key, float("nan"))) for s in doc["stores"]) + " |")
md.append("| keyed hash alone (rows/s) | | " + " | ".join(
    fmt(doc["stores"][s]["figures"].get("hash_only_rows_per_s", 0)) for s in doc["stores"]) + " |")
md.append("| bulk load, 1,000 rows per transaction (rows/s) | | " + " | ".join(
    fmt(doc["stores"][s]["figures"].get("load_rows_per_s", 0)) for s in doc["stores"]) + " |")
md += ["", "Filtered pages of 100 rows (1,000 each, random values; each row verified and rendered "
       "as GET /api/v0/audit does), milliseconds; goal p99 < 50:", "",
       "| filter | " + " | ".join(f"{s} p50 | {s} p99 | {s} rows/page" for s in doc["stores"]) + " |",
       "| --- | " + " | ".join("---: | ---: | ---:" for _ in doc["stores"]) + " |"]
for f in filters:
    cells = []
    for s in doc["stores"]:
        g = doc["stores"][s]["figures"]
        cells.append(f"{g.get(f'page_{f}_p50_ms', 0):.3f} | {g.get(f'page_{f}_p99_ms', 0):.3f} | "
                     f"{g.get(f'page_{f}_rows_per_page', 0):.1f}")
    md.append(f"| {f} | " + " | ".join(cells) + " |")
md += ["", "## Query plans", "",
       "The page queries as the store runs them (`store_sqlite_audit_sql`, `store_pg_audit_sql`): "
       "SQLite's EXPLAIN QUERY PLAN and PostgreSQL's EXPLAIN ANALYZE. No sort step: each filter "
       "walks its index backwards and stops after the page.", ""]
for s in doc["stores"]:
    for f in filters:
        md.append(f"{s}, {f}:")
        md.append("```")
        md += doc["stores"][s]["plans"].get(f, [])
        md.append("```")
open(out + ".md", "w").write("\n".join(md) + "\n")
print("\n".join(md))
PY
