#!/usr/bin/env bash
# run.sh - start aeid for local use: SQLite in .aei/, a bootstrap token kept in .aei/token, and
# the dashboard built into web/dist and served at http://${AEI_HTTP}/.
set -euo pipefail
cd "$(dirname "$0")/.."

# The dashboard: install its packages when package-lock.json changed since the last install.
if [ ! -f web/node_modules/.package-lock.json ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
    (cd web && npm ci --no-audit --no-fund --loglevel=error)
fi
(cd web && npm run --silent build >/dev/null) || {
    echo "run.sh: building the dashboard failed; see: cd web && npm run build" >&2
    exit 1
}

mkdir -p .aei
chmod 700 .aei
if [ -z "${AEI_TOKEN:-}" ]; then
    if [ ! -s .aei/token ]; then
        (umask 077 && head -c 24 /dev/urandom | base64 | tr '+/' '-_' >.aei/token)
        echo "run.sh: created a bootstrap admin token in .aei/token"
    fi
    AEI_TOKEN=$(cat .aei/token)
    export AEI_TOKEN
    echo "run.sh: using the token in .aei/token; try:"
    echo "  curl -H \"Authorization: Bearer \$(cat .aei/token)\" http://${AEI_HTTP:-127.0.0.1:3000}/api/v0/agents"
    echo "and watch it live over WebSocket at ws://${AEI_WS:-127.0.0.1:8080}/?token=<the token>"
fi
echo "run.sh: the dashboard is at http://${AEI_HTTP:-127.0.0.1:3000}/ (sign in with the token)"
export AEI_DATABASE_URL=${AEI_DATABASE_URL:-sqlite:.aei/aei.db}
# The audit key is made next to the database (.aei/aei.db.audit-key); the chain heads go here.
export AEI_AUDIT_CHECKPOINT=${AEI_AUDIT_CHECKPOINT:-.aei/audit.checkpoint}
# AEID: another build of the server (the quickstart check runs the sanitizer build).
exec "${AEID:-build/aeid}" "$@"
