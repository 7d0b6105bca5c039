#!/usr/bin/env bash
# Install what the real-OpenZFS test tier needs on a Debian 12 host:
# OpenZFS 2.3 (userland + dkms-built module for the Debian kernel), QEMU, virtme-ng,
# and the tools the data path uses (ssh, pv, mbuffer, zstd, lz4).
# Idempotent: a warm machine (zfs.ko already built, venv present) returns in seconds.
set -euo pipefail

VNG_VENV=${ZMAKE_VNG_VENV:-/opt/zmake-vng}
SOURCES=/etc/apt/sources.list.d/zmake-backports.sources

log() { printf 'install-realzfs: %s\n' "$*" >&2; }

have_module() {
    local ver
    for ver in $(ls /lib/modules 2>/dev/null); do
        if [ -f "/boot/vmlinuz-$ver" ] && find "/lib/modules/$ver" -name 'zfs.ko*' -print -quit 2>/dev/null | grep -q .; then
            return 0
        fi
    done
    return 1
}

need_apt() {
    have_module || return 0
    local cmd
    for cmd in zfs zpool qemu-system-x86_64 sshd pv mbuffer zstd lz4 make busybox bc tc; do
        command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || return 0
    done
    return 1
}

if [ "$(id -u)" != 0 ]; then
    log "must run as root (apt-get, dkms)"; exit 1
fi

if need_apt; then
    if [ ! -f "$SOURCES" ]; then
        cat > "$SOURCES" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-backports
Components: contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    fi
    log "apt-get update"
    apt-get update -q >/dev/null
    log "installing OpenZFS (dkms build: several minutes), kernel, QEMU"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q -t bookworm-backports \
        zfs-dkms zfsutils-linux linux-image-amd64 linux-headers-amd64 qemu-system-x86 busybox-static \
        >/tmp/zmake-apt.log 2>&1 || { tail -50 /tmp/zmake-apt.log >&2; exit 1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        openssh-server openssh-client pv mbuffer zstd lz4 make iproute2 bc \
        >>/tmp/zmake-apt.log 2>&1 || { tail -50 /tmp/zmake-apt.log >&2; exit 1; }
    # The host has no zfs module; keep the zfs services from failing noisily.
    systemctl disable --now zfs-zed >/dev/null 2>&1 || true
else
    log "OpenZFS module and tools already installed"
fi

have_module || { log "zfs.ko was not built; see /tmp/zmake-apt.log and /var/lib/dkms"; exit 1; }

# Tools the guest's tests use besides ZFS (the guest runs the host's root): par2 for stream
# files' recovery data (zmake --to-dir --recovery).
if ! command -v par2 >/dev/null; then
    log "installing par2"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends par2 \
        >>/tmp/zmake-apt.log 2>&1 || { tail -50 /tmp/zmake-apt.log >&2; exit 1; }
fi

if [ ! -x "$VNG_VENV/bin/vng" ]; then
    log "installing virtme-ng into $VNG_VENV"
    python3 -m venv "$VNG_VENV"
    "$VNG_VENV/bin/pip" install -q virtme-ng
fi
# `zfs version` prints nothing on this host (no module loaded): ask dpkg instead.
log "ready: zfsutils-linux $(dpkg-query -W -f='${Version}' zfsutils-linux 2>/dev/null)," \
    "$("$VNG_VENV/bin/vng" --version 2>/dev/null | head -1)"
