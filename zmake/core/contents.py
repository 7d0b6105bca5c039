"""Content verification, the pure part: the command that hashes one snapshot where it lies,
reading its output, and comparing two sides. Only hashes cross ssh, never data.

A filesystem snapshot is read under `<mountpoint>/.zfs/snapshot/<name>` when the dataset is
mounted (nothing changes), else mounted read-only at a temporary directory and unmounted
again (a backup is usually not mounted); every regular file's SHA-256, in name order. A
volume snapshot is read from its `/dev/zvol/…@snap` device in chunks (`snapdev=visible`
for the time of the read when it is hidden, then set back), one SHA-256 per chunk.
`--sample P%` hashes every (100/P)-th file or chunk; both sides pick the same ones."""

from __future__ import annotations

from dataclasses import dataclass

from zmake.core.errors import UsageError
from zmake.core.model import Argv

CHUNK = 16 * 1024 * 1024
# bash: pipefail, so a failed find or read fails the hash listing, never shortens it.
HASH_SCRIPT = r"""set -euo pipefail
PATH=$PATH:/usr/sbin:/sbin
kind=$1 snap=$2 dir=$3 every=$4 chunk=$5
tmp= vol= was_source= was_value=
finish() {
    cd /
    if [ -n "$tmp" ]; then umount "$tmp" || true; rmdir "$tmp" || true; fi
    if [ -n "$vol" ]; then
        if [ "$was_source" = local ]; then zfs set "snapdev=$was_value" "$vol"
        else zfs inherit snapdev "$vol"; fi
    fi
}
trap finish EXIT
if [ "$kind" = filesystem ]; then
    if [ -z "$dir" ] || ! cd "$dir" 2>/dev/null; then
        tmp=$(mktemp -d)
        mount -t zfs -o ro "$snap" "$tmp"
        cd "$tmp"
    fi
    find . -xdev -type f -print0 | LC_ALL=C sort -z | sed -z -n "1~${every}p" |
        xargs -0r sha256sum --
else
    dev=/dev/zvol/$snap
    if [ ! -e "$dev" ]; then
        read -r was_source was_value <<<"$(zfs get -H -o source,value snapdev "${snap%@*}")"
        vol=${snap%@*}
        zfs set snapdev=visible "$vol"
        for _ in $(seq 100); do [ -e "$dev" ] && break; sleep 0.2; done
    fi
    size=$(blockdev --getsize64 "$dev")
    i=0
    while [ $((i * chunk)) -lt "$size" ]; do
        if [ $((i % every)) -eq 0 ]; then
            sum=$(dd if="$dev" bs="$chunk" skip="$i" count=1 status=none | sha256sum)
            echo "${sum%% *}  chunk $i"
        fi
        i=$((i + 1))
    done
fi
echo "zmake-hash-end"
"""
END = "zmake-hash-end"


def every_from_sample(text: str | None) -> int:
    """`10%` → every 10th file; None or 100% → every file."""
    if text is None:
        return 1
    number = text.strip().rstrip("%")
    try:
        percent = float(number)
    except ValueError:
        percent = 0.0
    if not 0 < percent <= 100:
        raise UsageError(f"--sample {text!r}: a percentage above 0 and at most 100, e.g. 10%")
    return max(1, round(100 / percent))


def hash_argv(kind: str, snapshot: str, snapshot_dir: str, every: int = 1) -> Argv:
    """The hash listing of `snapshot` (a filesystem read under `snapshot_dir` when that is
    reachable), as one argv: quoted once where it crosses ssh."""
    return ["bash", "-c", HASH_SCRIPT, "zmake-verify", kind, snapshot, snapshot_dir, str(every),
            str(CHUNK)]  # fmt: skip


def snapshot_dir(mountpoint: str, mounted: bool, short: str) -> str:
    if not mounted or not mountpoint.startswith("/"):
        return ""
    return f"{mountpoint.rstrip('/')}/.zfs/snapshot/{short}"


def parse_hashes(text: str) -> dict[str, str] | None:
    """`sha256sum` lines → {name: hash}; None when the listing did not run to its end."""
    lines = text.splitlines()
    if not lines or lines[-1] != END:
        return None
    hashes = {}
    for line in lines[:-1]:
        digest, sep, name = line.partition("  ")
        if sep:
            hashes[name] = digest.lstrip("\\")
    return hashes


@dataclass(frozen=True)
class Comparison:
    compared: int
    difference: str | None  # the first differing file or chunk, in name order

    @property
    def same(self) -> bool:
        return self.difference is None


def compare(source: dict[str, str], backup: dict[str, str]) -> Comparison:
    for name in sorted(source.keys() | backup.keys()):
        shown = name[2:] if name.startswith("./") else name
        if name not in backup:
            return Comparison(len(source), f"{shown} is missing on the backup")
        if name not in source:
            return Comparison(len(source), f"{shown} is on the backup only")
        if source[name] != backup[name]:
            return Comparison(len(source), f"{shown} differs")
    return Comparison(len(source), None)
