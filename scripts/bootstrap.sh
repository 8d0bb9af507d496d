#!/usr/bin/env bash
# bootstrap.sh - install the Debian packages AEI builds, runs and tests with (idempotent).
set -euo pipefail

packages=(
    build-essential pkg-config meson ninja-build python3
    libwebsockets-dev libwebsockets-evlib-ev libev-dev # aeid runs lws on libev (decision 0013)
    libjansson-dev libyajl-dev libsqlite3-dev sqlite3 libpq-dev libcurl4-openssl-dev
    librust-blake3-dev b3sum libcriterion-dev clang libclang-rt-14-dev
    postgresql pgbouncer nginx-light prometheus
    nodejs npm
    chromium # the dashboard's browser tests drive it (playwright-core); never a downloaded one
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# The machine may already carry a newer Node.js than Debian's; keep it.
if command -v node >/dev/null && command -v npm >/dev/null; then
    missing=("${missing[@]/nodejs/}")
    missing=("${missing[@]/npm/}")
fi
read -r -a missing <<<"${missing[*]}"

if [ "${#missing[@]}" -gt 0 ]; then
    echo "bootstrap: installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
