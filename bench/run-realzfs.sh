#!/usr/bin/env bash
# Run bench/realzfs.py inside the real-OpenZFS guest, after installing what it compares against:
# syncoid (Debian's sanoid package) and zfs-autobackup (PyPI, in its own venv). As root.
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
[ -x .venv/bin/zmake ] || { python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]'; }
args=""
for arg in "$@"; do args+=" $(printf '%q' "$arg")"; done
exec .venv/bin/python tests/realzfs/guest.py --timeout 5400 --memory 6G \
    --exec "python bench/realzfs.py$args"
