#!/usr/bin/env bash
# Run bench/realzfs.py inside the real-OpenZFS guest, after installing what it compares against:
# syncoid (Debian's sanoid package), zfs-autobackup and bzfs (PyPI, in a venv of their own). As
# root.
#
#   bench/run-realzfs.sh [SECTION…] [--scale F] [--json FILE]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-realzfs.sh
command -v syncoid > /dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends sanoid
venv=${ZMAKE_BENCH_VENV:-/opt/zmake-bench}
if [ ! -x "$venv/bin/zfs-autobackup" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q zfs-autobackup==3.3
fi
[ -x "$venv/bin/bzfs" ] || "$venv/bin/pip" install -q bzfs==1.25.0
[ -x .venv/bin/zmake ] || { python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]'; }
args=""
for arg in "$@"; do args+=" $(printf '%q' "$arg")"; done
script=bench/realzfs.py
case "${1:-}" in
    night | fleet)  # bench/night.py: the night over many datasets; bench/fleet.py: many sources
        script=bench/$1.py
        args=${args# "$1"} ;;
esac
exec .venv/bin/python tests/realzfs/guest.py --timeout 7200 --memory 6G \
    --exec "python $script$args"
