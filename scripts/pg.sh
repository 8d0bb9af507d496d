#!/usr/bin/env bash
# pg.sh - start and stop a throwaway PostgreSQL 15 cluster (and pgbouncer) for tests.
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PGBOUNCER=${PGBOUNCER:-/usr/sbin/pgbouncer}
MARKER=.aei-pg

usage() {
    cat <<'EOF'
usage: scripts/pg.sh start DIR       start a throwaway PostgreSQL 15 cluster in DIR (created if
                                     needed); prints the admin URL and writes it to DIR/url
       scripts/pg.sh pgbouncer DIR   start pgbouncer (transaction pooling) in front of the cluster
                                     in DIR; prints its URL and writes it to DIR/pgbouncer.url
       scripts/pg.sh halt DIR        stop the cluster but keep DIR: `start DIR` brings it back on
                                     the same port (for store-outage tests)
       scripts/pg.sh stop DIR        stop pgbouncer and the cluster (fast mode) and remove DIR
       scripts/pg.sh status DIR      print the URLs of what is running in DIR, exit 1 if nothing

The cluster listens on 127.0.0.1 on a free TCP port with trust authentication, its unix socket
lives in DIR/sock. As root, PostgreSQL and pgbouncer run as the postgres user and DIR is chowned
to it. Every command is idempotent: start on a running cluster prints its URL again, stop on a
missing DIR does nothing. Environment: PGBIN (default /usr/lib/postgresql/15/bin), PGBOUNCER
(default /usr/sbin/pgbouncer).
EOF
}

die() {
    echo "pg.sh: $*" >&2
    exit 1
}

# Run a command as the user that owns the cluster: postgres when we are root, else ourselves.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pg_running() {
    [ -f "$DIR/data/PG_VERSION" ] && as_owner "$PGBIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1
}

bouncer_running() {
    [ -f "$DIR/pgbouncer.pid" ] && kill -0 "$(cat "$DIR/pgbouncer.pid")" 2>/dev/null
}

cmd_start() {
    if pg_running && [ -f "$DIR/url" ]; then
        cat "$DIR/url"
        return 0
    fi
    [ -x "$PGBIN/initdb" ] || die "no PostgreSQL 15 binaries in $PGBIN; run scripts/bootstrap.sh"
    if [ -e "$DIR" ] && [ ! -f "$DIR/$MARKER" ] && [ -n "$(ls -A "$DIR" 2>/dev/null)" ]; then
        die "$DIR exists and is not empty; give an empty or new directory"
    fi
    mkdir -p "$DIR"
    touch "$DIR/$MARKER"
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || die "no postgres user; install PostgreSQL (scripts/bootstrap.sh)"
        chown -R postgres: "$DIR"
        as_owner test -w "$DIR" || die "user postgres cannot write $DIR; use a directory that" \
            "every user can reach (for example under /tmp)"
    fi
    mkdir -p "$DIR/sock"
    [ "$(id -u)" -ne 0 ] || chown postgres: "$DIR/sock"
    if [ ! -f "$DIR/data/PG_VERSION" ]; then
        rm -rf "$DIR/data"
        as_owner "$PGBIN/initdb" -D "$DIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
            --no-sync >"$DIR/initdb.log" 2>&1 ||
            die "initdb failed; see $DIR/initdb.log: $(tail -n 1 "$DIR/initdb.log")"
    fi
    local port tries=0
    while :; do
        # A cluster started again keeps its port, so that clients' URLs stay valid.
        if [ "$tries" -eq 0 ] && [ -f "$DIR/port" ]; then
            port=$(cat "$DIR/port")
        else
            port=$(free_port)
        fi
        if as_owner "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/postgres.log" -w -t 30 \
            -o "-p $port -k $DIR/sock -c listen_addresses=127.0.0.1 -c max_connections=200" \
            start >/dev/null 2>&1; then
            break
        fi
        tries=$((tries + 1))
        [ "$tries" -lt 3 ] ||
            die "PostgreSQL did not start; see $DIR/postgres.log: $(tail -n 1 "$DIR/postgres.log")"
    done
    echo "$port" >"$DIR/port"
    echo "postgresql://postgres@127.0.0.1:$port/postgres" >"$DIR/url"
    cat "$DIR/url"
}

cmd_pgbouncer() {
    [ -f "$DIR/$MARKER" ] && pg_running || die "no cluster running in $DIR; run: scripts/pg.sh start $DIR"
    if bouncer_running && [ -f "$DIR/pgbouncer.url" ]; then
        cat "$DIR/pgbouncer.url"
        return 0
    fi
    [ -x "$PGBOUNCER" ] || die "no pgbouncer at $PGBOUNCER; run scripts/bootstrap.sh"
    local pgport bport tries=0
    pgport=$(cat "$DIR/port")
    echo '"postgres" ""' >"$DIR/userlist.txt"
    while :; do
        bport=$(free_port)
        cat >"$DIR/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=$pgport

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bport
unix_socket_dir =
auth_type = trust
auth_file = $DIR/userlist.txt
admin_users = postgres
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 20
ignore_startup_parameters = extra_float_digits,search_path,application_name
logfile = $DIR/pgbouncer.log
pidfile = $DIR/pgbouncer.pid
EOF
        [ "$(id -u)" -ne 0 ] || chown postgres: "$DIR/pgbouncer.ini" "$DIR/userlist.txt"
        rm -f "$DIR/pgbouncer.pid"
        if as_owner "$PGBOUNCER" -d -q "$DIR/pgbouncer.ini" 2>>"$DIR/pgbouncer.err"; then
            local i
            for i in $(seq 1 50); do
                if psql -X -q -At -h 127.0.0.1 -p "$bport" -U postgres -d postgres \
                    -c 'select 1' >/dev/null 2>&1; then
                    echo "postgresql://postgres@127.0.0.1:$bport/postgres" >"$DIR/pgbouncer.url"
                    cat "$DIR/pgbouncer.url"
                    return 0
                fi
                sleep 0.1
            done
            bouncer_running && kill "$(cat "$DIR/pgbouncer.pid")" 2>/dev/null || true
        fi
        tries=$((tries + 1))
        [ "$tries" -lt 3 ] || die "pgbouncer did not start; see $DIR/pgbouncer.log and $DIR/pgbouncer.err"
    done
}

# Stops the server but keeps DIR, so that `start DIR` brings the same cluster back on its port.
cmd_halt() {
    [ -f "$DIR/$MARKER" ] || die "no cluster in $DIR"
    if pg_running; then
        as_owner "$PGBIN/pg_ctl" -D "$DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
            die "PostgreSQL in $DIR did not stop; see $DIR/postgres.log"
    fi
}

cmd_stop() {
    [ -e "$DIR" ] || return 0
    [ -f "$DIR/$MARKER" ] || die "$DIR was not made by pg.sh start; not removing it"
    if bouncer_running; then
        local pid i
        pid=$(cat "$DIR/pgbouncer.pid")
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    if pg_running; then
        as_owner "$PGBIN/pg_ctl" -D "$DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
            as_owner "$PGBIN/pg_ctl" -D "$DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$DIR"
}

cmd_status() {
    [ -f "$DIR/$MARKER" ] && pg_running || { echo "pg.sh: no cluster running in $DIR" >&2; exit 1; }
    cat "$DIR/url"
    if bouncer_running && [ -f "$DIR/pgbouncer.url" ]; then cat "$DIR/pgbouncer.url"; fi
}

case "${1:-}" in
-h | --help | help)
    usage
    exit 0
    ;;
start | stop | halt | pgbouncer | status) ;;
"")
    usage >&2
    exit 2
    ;;
*)
    echo "pg.sh: unknown command '$1'; use start, pgbouncer, halt, stop or status (see --help)" >&2
    exit 2
    ;;
esac
[ $# -eq 2 ] || { echo "pg.sh: $1 needs exactly one DIR argument (see --help)" >&2; exit 2; }
DIR=$(realpath -m -- "$2")
case "$DIR" in
/ | /tmp | /home | /root | /work | /usr | /var) die "refusing to use $DIR as the cluster directory" ;;
esac

case "$1" in
start) cmd_start ;;
pgbouncer) cmd_pgbouncer ;;
stop) cmd_stop ;;
halt) cmd_halt ;;
status) cmd_status ;;
esac
