#!/usr/bin/env bash
# run.sh - start aeid for local use: SQLite in .aei/, and a bootstrap token kept in .aei/token.
set -euo pipefail
cd "$(dirname "$0")/.."

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
export AEI_DATABASE_URL=${AEI_DATABASE_URL:-sqlite:.aei/aei.db}
# The audit key is made next to the database (.aei/aei.db.audit-key); the chain heads go here.
export AEI_AUDIT_CHECKPOINT=${AEI_AUDIT_CHECKPOINT:-.aei/audit.checkpoint}
exec build/aeid "$@"
