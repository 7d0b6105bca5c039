#!/usr/bin/env bash
# Build the "home server" sample pool on real OpenZFS and record it with `zmake capture`.
# Runs inside the test guest (file vdevs in /tmp):
#   .venv/bin/python tests/realzfs/guest.py --exec 'bash sample-pools/make-home.sh sample-pools'
# (the output directory must be writable in the guest: the runner maps the repo's .realzfs/).
set -euo pipefail
out=${1:?output directory}
pool=tank
img=/tmp/sample-$pool.img
truncate -s 1G "$img"
zpool create -f -m none -O compression=lz4 "$pool" "$img"
trap 'zpool destroy -f "$pool" 2>/dev/null; rm -f "$img"' EXIT

fs() {  # fs NAME MOUNTPOINT-or-"-" [extra zfs create options…]
    local name=$1 mp=$2; shift 2
    if [ "$mp" = - ]; then zfs create "$@" "$pool/$name"; else zfs create -o "mountpoint=$mp" "$@" "$pool/$name"; fi
}
fill() {  # fill DATASET MB
    local mnt; mnt=$(zfs get -H -o value mountpoint "$pool/$1")
    head -c "$(( $2 * 1024 * 1024 ))" /dev/urandom > "$mnt/data-$RANDOM.bin"
}

zfs set mountpoint=/tmp/sample "$pool"
fs home /tmp/sample-home                # custom mountpoint (local)
fs "home/alice" -                      # inherited
fs "home/bob" -
fs "home/bob/my photos" -              # a space
fs "home/alice/.config" -
fs media -                             # inherited from the pool
fs "media/music" -
fs "media/films 2024" -
fs backups /tmp/sample-backups
fs "backups/laptop:2024-11" -          # a colon
printf 'sample-passphrase' > /tmp/sample-key
fs secret - -o encryption=aes-256-gcm -o keyformat=passphrase -o keylocation=file:///tmp/sample-key
fs "secret/tax records" -
zfs create -V 16M "$pool/vm:disk0"     # zvol with a colon
zfs create -V 8M "$pool/swap"

for ds in "home/alice" "home/bob" "home/bob/my photos" media/music "media/films 2024" \
          "backups/laptop:2024-11" secret "secret/tax records"; do
    fill "$ds" 1
done
dd if=/dev/urandom of="/dev/zvol/$pool/vm:disk0" bs=1M count=2 status=none 2>/dev/null || true
for day in 01 02 03; do
    zfs snapshot -r "$pool@zmake-202611${day}-020000"
    fill "home/alice" 1
    fill "media/films 2024" 2
done
zfs snapshot "$pool/home/alice@manual-before-upgrade"

# Realistic mountpoints for the record; canmount=noauto first so nothing tries to mount.
zfs list -H -o name -t filesystem -r "$pool" | while read -r name; do zfs set canmount=noauto "$name"; done
zfs unmount -a 2>/dev/null || true
zfs set mountpoint=/srv "$pool"
zfs set mountpoint=/home "$pool/home"
zfs set mountpoint=/srv/backups "$pool/backups"

mkdir -p "$out"
zmake capture "$pool" > "$out/home.zcap"
echo "wrote $out/home.zcap ($(grep -c . "$out/home.zcap") lines)"
