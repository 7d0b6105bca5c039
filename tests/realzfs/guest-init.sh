#!/usr/bin/env bash
# Runs inside the virtme-ng guest started by tests/realzfs/guest.py.
#
#   guest-init.sh RUN_DIR
#
# RUN_DIR (on the --rwdir share, written by the host) holds:
#   mode     "exec" or "pytest"
#   command  exec mode: the shell command to run (bash -c)
#   argv     pytest mode: the pytest arguments, NUL-separated
# and receives from us:
#   started  written as soon as this script runs (the guest booted)
#   status   the exit status of the run, written on every exit path
#
# Sets up: the zfs module, a loopback sshd playing the remote "backup" host, a client ssh
# config, and the environment the tests in tests/realzfs read (ZMAKE_GUEST, ZMAKE_SSH_CONFIG,
# ZMAKE_SSHD_LOG, ZMAKE_TEST_REMOTE, ZMAKE_RESULTS_DIR).
set -euo pipefail

RUN_DIR=${1:?usage: guest-init.sh RUN_DIR}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SSH_DIR=/tmp/zmake-ssh
REMOTE=backup
USERS_DIR=/tmp/zmake-users
# Unprivileged users for the least-privilege tests (NAME:UID), each reachable over ssh as
# NAME@127.0.0.2 (a second sshd), each with a key of its own in $USERS_DIR/NAME/.ssh.
USERS="zsrc:2001 zrecv:2002"

trap 'rc=$?; echo "$rc" > "$RUN_DIR/status"' EXIT
: > "$RUN_DIR/started"

say() { printf 'zmake-guest: %s\n' "$*"; }
die() { say "setup failed: $*" >&2; exit 3; }

load_zfs() {
    modprobe zfs || die "modprobe zfs"
    zfs version | head -1
}

quiet_root_shell() {
    # sshd runs each remote command through root's shell, which sources /root/.bashrc; this
    # image's .bashrc runs pyenv init (seconds per connection under emulation).
    : > "$SSH_DIR/empty-bashrc"
    if [ -e /root/.bashrc ]; then
        mount --bind "$SSH_DIR/empty-bashrc" /root/.bashrc || die "bind-mount over /root/.bashrc"
    fi
}

write_sshd_config() {
    cat > "$SSH_DIR/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port 22
HostKey $SSH_DIR/host_ed25519
AuthorizedKeysFile $SSH_DIR/authorized_keys
PidFile $SSH_DIR/sshd.pid
# Root's password is locked on this image: without PAM sshd refuses even key logins.
UsePAM yes
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
# The keys live under /tmp (mode 1777), which StrictModes would reject.
StrictModes no
UseDNS no
PrintMotd no
LogLevel VERBOSE
MaxStartups 200
MaxSessions 200
EOF
}

write_client_config() {
    cat > "$SSH_DIR/config" <<EOF
Host $REMOTE
    HostName 127.0.0.1
    Port 22
    User root
    IdentityFile $SSH_DIR/id_ed25519
    IdentitiesOnly yes
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    LogLevel ERROR
    BatchMode yes
EOF
}

use_runtime_from_ram() {
    # guest.py packed the Python runtime (runtime_pack.py says why): unpack it into a tmpfs and
    # put each copy over its original; folders left out are bound back from the share first.
    local tar="$RUN_DIR/runtime.tar" manifest="$RUN_DIR/runtime.tsv" copies=/run/zmake-runtime
    [ -f "$tar" ] || return 0
    local started=$SECONDS kind path
    mkdir -p "$copies"
    mount -t tmpfs -o mode=755 zmake-runtime "$copies" || die "tmpfs for the runtime"
    # Large reads: tar's own 10 KiB records would each be a round trip over the share.
    dd if="$tar" bs=4M status=none | tar -xpf - -C "$copies" || die "unpack $tar"
    while IFS=$'\t' read -r kind path; do
        [ "$kind" = share ] || continue
        mount --bind "$path" "$copies/root$path" || die "bind back $path"
    done < "$manifest"
    while IFS=$'\t' read -r kind path; do
        [ "$kind" = copy ] || continue
        mount --rbind "$copies/root$path" "$path" || die "bind $path from RAM"
    done < "$manifest"
    say "python runtime in RAM ($(df -h --output=used "$copies" | tail -1 | tr -d " "), $((SECONDS - started))s)"
}

start_sshd() {
    # Host's /tmp shows through the guest's /tmp overlay: never reuse a stale directory.
    rm -rf "$SSH_DIR"
    mkdir -m 700 "$SSH_DIR"
    mkdir -p -m 755 /run/sshd
    ssh-keygen -q -t ed25519 -N '' -C zmake-host -f "$SSH_DIR/host_ed25519"
    ssh-keygen -q -t ed25519 -N '' -C zmake-client -f "$SSH_DIR/id_ed25519"
    cp "$SSH_DIR/id_ed25519.pub" "$SSH_DIR/authorized_keys"
    write_sshd_config
    write_client_config
    quiet_root_shell
    /usr/sbin/sshd -f "$SSH_DIR/sshd_config" -E "$SSH_DIR/sshd.log" || {
        cat "$SSH_DIR/sshd.log" >&2 || true
        die "sshd did not start"
    }
    ssh -F "$SSH_DIR/config" "$REMOTE" true || {
        tail -20 "$SSH_DIR/sshd.log" >&2 || true
        die "ssh -F $SSH_DIR/config $REMOTE true"
    }
}

open_root() {
    # /root is 0700 and the share read-only, but the venv's Python lives in /root/.pyenv: put
    # a 0755 tmpfs over /root that holds only .pyenv (bound back, with its RAM copies), so the
    # unprivileged test users can run zmake. Root's shell then has no .bashrc (no pyenv init).
    mkdir -p /tmp/zmake-root-share
    mount --rbind /root /tmp/zmake-root-share || die "bind /root aside"
    mount -t tmpfs -o mode=755 zmake-root /root || die "tmpfs over /root"
    mkdir /root/.pyenv
    mount --rbind /tmp/zmake-root-share/.pyenv /root/.pyenv || die "bind .pyenv back"
}

user_ssh_config() {
    local name=$1
    printf '%s\n' "Host *" "    HostName 127.0.0.2" "    Port 22" \
        "    IdentityFile $USERS_DIR/$name/.ssh/id_ed25519" "    IdentitiesOnly yes" \
        "    StrictHostKeyChecking no" "    UserKnownHostsFile /dev/null" "    LogLevel ERROR" \
        "    BatchMode yes"
}

users_sshd_config() {
    printf '%s\n' "ListenAddress 127.0.0.2" "Port 22" "HostKey $SSH_DIR/host_ed25519" \
        "AuthorizedKeysFile $USERS_DIR/keys/%u" "PidFile $USERS_DIR/sshd.pid" \
        "# PAM's account check refuses these users (passwords locked): keys are enough." \
        "UsePAM no" "PermitRootLogin no" "PubkeyAuthentication yes" \
        "PasswordAuthentication no" "KbdInteractiveAuthentication no" "StrictModes no" \
        "UseDNS no" "PrintMotd no" "LogLevel VERBOSE" "MaxStartups 200" "MaxSessions 200" \
        "# As on hosts where zfs is in sbin, which a user's PATH lacks: zsrc's has no zfs." \
        "Match User zsrc" "    SetEnv PATH=$USERS_DIR/bin"
}

users_path() {
    # What zsrc's remote commands find: the tools zmake pipes through, not zfs.
    local tool
    mkdir -p "$USERS_DIR/bin"
    for tool in sh cat zstd lz4 gzip bzip2 pv mbuffer head true env; do
        ln -s "$(command -v "$tool")" "$USERS_DIR/bin/$tool"
    done
}

add_users() {
    # The guest's /etc is the host's, read-only: edited copies are bound over the originals.
    local entry name uid file
    [ -n "$USERS_DIR" ] && [ "$USERS_DIR" != / ] || die "USERS_DIR unset"
    rm -rf "$USERS_DIR"
    mkdir -p -m 755 "$USERS_DIR" "$USERS_DIR/etc" "$USERS_DIR/keys"
    for file in passwd group shadow; do cp "/etc/$file" "$USERS_DIR/etc/$file"; done
    for entry in $USERS; do
        name=${entry%%:*}
        uid=${entry##*:}
        echo "$name:x:$uid:$uid::$USERS_DIR/$name:/bin/sh" >> "$USERS_DIR/etc/passwd"
        echo "$name:x:$uid:" >> "$USERS_DIR/etc/group"
        echo "$name:*:19000:0:99999:7:::" >> "$USERS_DIR/etc/shadow"
    done
    chmod 640 "$USERS_DIR/etc/shadow"
    for file in passwd group shadow; do
        mount --bind "$USERS_DIR/etc/$file" "/etc/$file" || die "bind /etc/$file"
    done
    for entry in $USERS; do
        name=${entry%%:*}
        [ -n "$name" ] || die "a user without a name in USERS"
        mkdir -p "$USERS_DIR/$name/.ssh"
        ssh-keygen -q -t ed25519 -N '' -C "$name" -f "$USERS_DIR/$name/.ssh/id_ed25519"
        user_ssh_config "$name" > "$USERS_DIR/$name/.ssh/config"
        chown -R "$name:$name" "$USERS_DIR/$name"
        chmod 700 "$USERS_DIR/$name" "$USERS_DIR/$name/.ssh"
    done
    # Every test user accepts every test user's key until a test writes a forced command;
    # authorized_keys is root's: the users cannot change it.
    for entry in $USERS; do
        name=${entry%%:*}
        cat "$USERS_DIR"/*/.ssh/id_ed25519.pub > "$USERS_DIR/keys/$name"
        chmod 644 "$USERS_DIR/keys/$name"
    done
    users_path
    users_sshd_config > "$USERS_DIR/sshd_config"
    /usr/sbin/sshd -f "$USERS_DIR/sshd_config" -E "$USERS_DIR/sshd.log" || {
        cat "$USERS_DIR/sshd.log" >&2 || true
        die "the users' sshd did not start"
    }
    runuser -u zsrc -- ssh -F "$USERS_DIR/zsrc/.ssh/config" zrecv@users true || {
        tail -20 "$USERS_DIR/sshd.log" >&2 || true
        die "ssh as zsrc to zrecv@127.0.0.2"
    }
    local found
    found=$(runuser -u zrecv -- ssh -F "$USERS_DIR/zrecv/.ssh/config" zsrc@users \
        'command -v zfs || echo none')
    [ "$found" = none ] || die "zfs is on zsrc's PATH ($found): the PATH test would prove nothing"
}

export_env() {
    export PYTHONDONTWRITEBYTECODE=1
    export PATH="$REPO/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    export TMPDIR=/tmp
    export XDG_CACHE_HOME=/tmp/.cache
    export HYPOTHESIS_STORAGE_DIRECTORY=/tmp/.hypothesis
    export ZMAKE_GUEST=1
    export ZMAKE_SSH_CONFIG="$SSH_DIR/config"
    export ZMAKE_SSHD_LOG="$SSH_DIR/sshd.log"
    export ZMAKE_TEST_REMOTE="$REMOTE"
    export ZMAKE_RESULTS_DIR="$RUN_DIR"
    export ZMAKE_USERS_DIR="$USERS_DIR"
    export ZMAKE_USERS_SSHD_LOG="$USERS_DIR/sshd.log"
}

run_payload() {
    local mode
    mode=$(cat "$RUN_DIR/mode")
    cd "$REPO"
    case "$mode" in
        exec)
            bash -c "$(cat "$RUN_DIR/command")"
            ;;
        pytest)
            local -a args=()
            mapfile -d '' -t args < "$RUN_DIR/argv"
            python -m pytest -p no:cacheprovider "${args[@]}"
            ;;
        *)
            die "unknown mode '$mode'"
            ;;
    esac
}

main() {
    say "booted"
    use_runtime_from_ram
    open_root
    export_env
    load_zfs
    start_sshd
    add_users
    say "ready"
    set +e
    run_payload
    local rc=$?
    set -e
    say "finished with status $rc"
    exit "$rc"
}

main
