#!/usr/bin/env bash
# promtool (Prometheus' checker), for the unit test that checks zmake's metrics file with
# `promtool check metrics`. Debian's `prometheus` package ships it; only the binary is
# extracted into .tools/bin (no service installed). Idempotent: seconds when present.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .tools/bin/promtool ] || command -v promtool >/dev/null; then
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download prometheus >/dev/null 2>&1) || {
    [ "$(id -u)" = 0 ] && apt-get update -qq && (cd "$work" && apt-get download prometheus)
}
dpkg-deb -x "$work"/prometheus_*.deb "$work/x"
mkdir -p .tools/bin
install -m 755 "$work/x/usr/bin/promtool" .tools/bin/promtool
.tools/bin/promtool --version | head -1
