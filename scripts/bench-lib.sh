# bench-lib.sh - shell helpers shared by scripts/bench.sh and scripts/bench-hub.sh.
#
# Sourced by them (after `set -euo pipefail`), never run on its own. Sets ROOT, AEI and AEID
# (unless given in the environment); cleanup() and run_stamp() use the sourcing script's `tmp`
# and `pg_dir`. Messages from die() start with the sourcing script's name.
# shellcheck shell=bash

bench_name=${BASH_SOURCE[1]##*/}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# first_of FILE...: the first executable one, else the first. build/aei and build/aeid; meson may
# leave them in build/src/<dir>/ instead.
first_of() {
    local f
    for f in "$@"; do
        [ -x "$f" ] && { echo "$f"; return 0; }
    done
    echo "$1"
}
AEI=${AEI:-$(first_of "$ROOT/build/aei" "$ROOT/build/src/cli/aei")}
AEID=${AEID:-$(first_of "$ROOT/build/aeid" "$ROOT/build/src/server/aeid")}

die() {
    echo "$bench_name: $*" >&2
    exit 1
}

# bench_tmp PREFIX: makes and prints a scratch directory /tmp/PREFIX.XXXXXX with runs/ inside.
bench_tmp() {
    local dir
    dir=$(mktemp -d "/tmp/$1.XXXXXX") || return 1
    # PostgreSQL runs as the postgres user and must reach its data directory inside.
    chmod 755 "$dir" && mkdir -p "$dir/runs" && echo "$dir"
}

stop_pid() {
    local pid=$1
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# cleanup PID...: on exit, stops these servers (empty ones are skipped), the PostgreSQL cluster in
# $pg_dir if one runs, and removes $tmp.
# shellcheck disable=SC2154 # tmp and pg_dir are the sourcing script's
cleanup() {
    local pid
    for pid in "$@"; do
        stop_pid "$pid"
    done
    if [ -n "$pg_dir" ]; then
        "$ROOT/scripts/pg.sh" stop "$pg_dir" >/dev/null 2>&1 || true
    fi
    rm -rf "$tmp"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Waits until `pid` accepts TCP connections on `port` (and answers /healthz when `path` is set).
wait_ready() {
    local pid=$1 port=$2 path=${3:-}
    for _ in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || return 1
        if [ -n "$path" ]; then
            python3 -c 'import sys, urllib.request as u
u.urlopen(sys.argv[1], timeout=1).read()' "http://127.0.0.1:$port$path" 2>/dev/null && return 0
        elif (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# run_stamp: sets what the results record of this run and machine: `day` (UTC), `commit` (short,
# "-dirty" when the tree has changes, "none" outside git), `overrides` (the BENCH_* variables set)
# and `cpu` (the processor's model name).
# shellcheck disable=SC2034 # the sourcing script reads them
run_stamp() {
    day=$(date -u +%Y-%m-%d)
    commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)
    if [ "$commit" != none ] && [ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ]; then
        commit="$commit-dirty"
    fi
    overrides=$(env | grep -E '^BENCH_[A-Z_]+=' | sort | tr '\n' ' ' || true)
    cpu=$(python3 - <<'PY'
import platform
def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
print(cpu_model())
PY
)
}

# store_up STORE: sets db to the URL of a store to run against, "sqlite" (a file in $tmp) or
# "postgresql" (a throwaway cluster in $tmp/pg, remembered in pg_dir for store_down and
# cleanup). Fails (with a message) for another name or a cluster that does not start.
# shellcheck disable=SC2154,SC2034 # tmp is the sourcing script's, which reads db
store_up() {
    case $1 in
    sqlite) db="sqlite:$tmp/${bench_name%.sh}.db" ;;
    postgresql)
        pg_dir="$tmp/pg"
        db=$("$ROOT/scripts/pg.sh" start "$pg_dir") || {
            echo "$bench_name: PostgreSQL did not start" >&2
            return 1
        }
        ;;
    *)
        echo "$bench_name: unknown store '$1'; use sqlite or postgresql" >&2
        return 1
        ;;
    esac
}

# store_down STORE: stops what store_up started.
store_down() {
    if [ "$1" = postgresql ] && [ -n "$pg_dir" ]; then
        "$ROOT/scripts/pg.sh" stop "$pg_dir" >/dev/null 2>&1 || true
        pg_dir=""
    fi
}
