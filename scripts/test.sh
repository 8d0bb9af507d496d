#!/usr/bin/env bash
# test.sh - build with AddressSanitizer and UndefinedBehaviorSanitizer, then run every suite:
# the Criterion unit tests (store tests on SQLite and on PostgreSQL), libFuzzer on the parsers
# for FUZZ_SECONDS each, the black-box node:test suites against the real aeid on both
# stores, the dashboard's Vitest tests and its browser tests (Debian's Chromium against the
# real aeid), and the README's quickstart (scripts/quickstart-check.sh). Ends with one line
# "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

passed=0
failed=0
tmp=$(mktemp -d /tmp/aei-test.XXXXXX)
chmod 755 "$tmp" # PostgreSQL runs as the postgres user and must reach $tmp/pg
cleanup() {
    scripts/pg.sh stop "$tmp/pg" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# tap_counts FILE RC WHAT: sets p and f from a node:test TAP report, printing its failures; a run
# that exited non-zero with no failure counted, or printed no summary, counts one failure.
tap_counts() {
    local file=$1 rc=$2 what=$3
    if grep -q '^not ok' "$file"; then
        echo "-- failures in detail:"
        awk '/^ *not ok/{show=1} show{print} /^ *\.\.\.$/{show=0}' "$file" | head -n 200
    fi
    p=$(sed -nE 's/^# pass ([0-9]+)$/\1/p' "$file" | tail -n 1)
    f=$(sed -nE 's/^# fail ([0-9]+)$/\1/p' "$file" | tail -n 1)
    p=${p:-0}
    f=${f:-0}
    if ! grep -q '^# pass ' "$file"; then
        echo "test.sh: $what printed no summary:" >&2
        tail -n 30 "$file" >&2
        f=$((f + 1))
    fi
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "test.sh: $what exited $rc with no failing test counted (a hook failed?)" >&2
        f=1
    fi
}

echo "== build (sanitizers)"
if ! make --no-print-directory build-san; then
    echo "0 passed, 1 failed"
    exit 1
fi

echo "== PostgreSQL for the tests"
if ! pg_url=$(scripts/pg.sh start "$tmp/pg"); then
    echo "test.sh: could not start PostgreSQL; see the lines above" >&2
    echo "$passed passed, $((failed + 1)) failed"
    exit 1
fi
psql "$pg_url" -qc "CREATE DATABASE aei_unit" >/dev/null
unit_pg_url=${pg_url%/postgres}/aei_unit

echo "== unit tests (Criterion)"
for t in build-san/tests/unit/test_*; do
    [ -f "$t" ] && [ -x "$t" ] || continue
    out=$(AEI_TEST_PG_URL=$unit_pg_url "$t" --jobs 1 2>&1)
    rc=$?
    line=$(grep -E 'Synthesis: Tested' <<<"$out" | tail -n 1)
    p=$(sed -nE 's/.*Passing: ([0-9]+).*/\1/p' <<<"$line")
    f=$(sed -nE 's/.*Failing: ([0-9]+).*Crashing: ([0-9]+).*/\1+\2/p' <<<"$line")
    p=${p:-0}
    f=$((${f:-0}))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1 # it died before or after its tests, e.g. a sanitizer report
    fi
    # Criterion counts a test whose worker process reports a leak at exit as passed, and exits 0.
    reports=$(grep -cE 'ERROR: (LeakSanitizer|AddressSanitizer)|runtime error:' <<<"$out")
    if [ "$reports" -gt 0 ] && [ "$f" -eq 0 ]; then
        f=$reports
        p=$((p > reports ? p - reports : 0))
    fi
    if [ "$f" -ne 0 ]; then
        echo "$out" | grep -vE '^[0-9T:.-]+Z (info|debug) ' | tail -n 40
    fi
    echo "  $(basename "$t"): $p passed, $f failed"
    passed=$((passed + p))
    failed=$((failed + f))
done

echo "== fuzzing the parsers (libFuzzer, ${FUZZ_SECONDS:-20} s a target)"
if make --no-print-directory build-fuzz >"$tmp/fuzz-build.log" 2>&1; then
    for target in heartbeat time traces; do
        mkdir -p "$tmp/corpus-$target"
        cp tests/fuzz/corpus/"$target"/* "$tmp/corpus-$target"/
        if build-fuzz/fuzz_"$target" -max_total_time="${FUZZ_SECONDS:-20}" -max_len=4096 \
            -artifact_prefix="$tmp/" "$tmp/corpus-$target" >"$tmp/fuzz-$target.log" 2>&1; then
            echo "  fuzz_$target: $(grep -Eo 'Done [0-9]+ runs' "$tmp/fuzz-$target.log"), no failure"
            passed=$((passed + 1))
        else
            echo "  fuzz_$target: FAILED; the input that failed and the report:"
            grep -E 'ERROR|SUMMARY|Base64|Test unit' "$tmp/fuzz-$target.log" | head -n 20
            failed=$((failed + 1))
        fi
    done
else
    echo "test.sh: building the fuzz targets failed:" >&2
    tail -n 20 "$tmp/fuzz-build.log" >&2
    failed=$((failed + 1))
fi

echo "== Python SDK (unittest, against build-san/aeid)"
if (cd sdk/python && AEID=$root/build-san/aeid python3 -m unittest -v test_aei_agent \
    >"$tmp/sdk-python.log" 2>&1); then
    sdk_rc=0
else
    sdk_rc=1
fi
ran=$(sed -nE 's/^Ran ([0-9]+) tests? .*/\1/p' "$tmp/sdk-python.log")
failures=$(sed -nE 's/^FAILED \(.*failures=([0-9]+).*/\1/p' "$tmp/sdk-python.log")
errors=$(sed -nE 's/^FAILED \(.*errors=([0-9]+).*/\1/p' "$tmp/sdk-python.log")
skipped=$(grep -cE ' \.\.\. skipped' "$tmp/sdk-python.log")
ran=${ran:-0}
bad=$((${failures:-0} + ${errors:-0} + skipped))
if [ "$sdk_rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
    bad=1 # it died before counting
fi
if [ "$bad" -ne 0 ]; then
    grep -E '^(FAIL|ERROR):|Error|assert' "$tmp/sdk-python.log" | head -n 40
fi
echo "  sdk/python: $((ran - bad < 0 ? 0 : ran - bad)) passed, $bad failed"
passed=$((passed + (ran - bad < 0 ? 0 : ran - bad)))
failed=$((failed + bad))

echo "== black-box tests (node:test, SQLite and PostgreSQL)"
if (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error >"$tmp/npm.log" 2>&1); then
    pgb_url=$(scripts/pg.sh pgbouncer "$tmp/pg" 2>/dev/null || true)
    AEID=$root/build-san/aeid AEI_TEST_PG_URL=$pg_url AEI_TEST_PGBOUNCER_URL=$pgb_url \
        node --test --test-reporter=tap tests/e2e/ >"$tmp/e2e.tap" 2>&1
    node_rc=$?
    grep -E '^not ok|^# (tests|pass|fail)' "$tmp/e2e.tap" | head -n 60
    tap_counts "$tmp/e2e.tap" "$node_rc" "the black-box tests"
    passed=$((passed + p))
    failed=$((failed + f))
else
    echo "test.sh: npm ci failed in tests/e2e:" >&2
    tail -n 20 "$tmp/npm.log" >&2
    failed=$((failed + 1))
fi

echo "== dashboard (Vitest; Chromium against the real aeid)"
if (cd web && npm ci --no-audit --no-fund --loglevel=error && npm run build) >"$tmp/web-build.log" 2>&1; then
    (cd web && npx vitest run --reporter=json --outputFile="$tmp/vitest.json") >"$tmp/vitest.log" 2>&1
    vitest_rc=$?
    counts=$(node -e 'const r = require(process.argv[1]); console.log(r.numPassedTests, r.numFailedTests)' \
        "$tmp/vitest.json" 2>/dev/null)
    read -r p f <<<"${counts:-0 0}"
    if [ "$vitest_rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1 # it failed outside a test (a suite that does not load, a type error)
    fi
    [ "$f" -ne 0 ] && tail -n 60 "$tmp/vitest.log"
    echo "  vitest: $p passed, $f failed"
    passed=$((passed + p))
    failed=$((failed + f))

    AEID=$root/build-san/aeid node --test --test-reporter=tap web/tests/browser/ >"$tmp/browser.tap" 2>&1
    node_rc=$?
    tap_counts "$tmp/browser.tap" "$node_rc" "the browser tests"
    echo "  browser: $p passed, $f failed (screenshots in web/tests/browser/artifacts/)"
    passed=$((passed + p))
    failed=$((failed + f))
else
    echo "test.sh: building the dashboard failed:" >&2
    tail -n 30 "$tmp/web-build.log" >&2
    failed=$((failed + 1))
fi

echo "== quickstart (scripts/quickstart-check.sh, against build-san/aeid)"
if AEID=$root/build-san/aeid scripts/quickstart-check.sh >"$tmp/quickstart.log" 2>&1; then
    tail -n 1 "$tmp/quickstart.log"
    passed=$((passed + 1))
else
    tail -n 40 "$tmp/quickstart.log"
    failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
