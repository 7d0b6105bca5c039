"""`[USER@]HOST` values (--remote, --source, their ZMAKE_* variables and config keys). Pure.

A host reaches ssh as its first non-option argument, so `-oProxyCommand=…` would be an
option; every ssh argv also ends ssh's options with `--` before the host (sides/side.py)."""

from __future__ import annotations

import ipaddress
import re

from zmake.core.errors import UsageError

USER = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._-]*")
LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*)"
HOSTNAME = re.compile(rf"{LABEL}(?:\.{LABEL})*\.?")  # a name, an ssh alias, or an IPv4
BRACKETED = re.compile(r"\[([0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?)\]")  # IPv6, maybe a zone


def problem(value: str) -> str | None:
    """What is wrong with `value` as `[USER@]HOST`, or None."""
    user, at, host = value.rpartition("@")
    if at and not USER.fullmatch(user):
        return "the user must be letters, digits, . _ - (not first)"
    if host.startswith("-"):
        return "a host never starts with -"
    bracketed = BRACKETED.fullmatch(host)
    if bracketed:
        try:
            ipaddress.IPv6Address(bracketed[1])
        except ValueError:
            return "not an IPv6 address in brackets"
        return None
    if not HOSTNAME.fullmatch(host):
        return "the host must be a name, an IPv4 or [an IPv6]: letters, digits, . _ -"
    return None


def check_host(value: str, what: str) -> str:
    """`value` if it is `[USER@]HOST`; else a one-line UsageError naming `what`."""
    why = problem(value)
    if why is not None:
        raise UsageError(f"{what} {value!r} is not [USER@]HOST: {why}")
    return value


def ssh_destination(host: str) -> str:
    """The host as ssh's argument: an IPv6 without its brackets (ssh would look `[::1]` up
    as a name)."""
    user, at, name = host.rpartition("@")
    if BRACKETED.fullmatch(name):
        return f"{user}{at}{name[1:-1]}"
    return host


def ssh_words(command: str, what: str = "--ssh") -> list[str]:
    """The ssh prefix (--ssh) split as the shell would; a UsageError naming `what` unless it
    names a program first."""
    import shlex

    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise UsageError(f"{what} {command!r} does not split as a command: {exc}") from None
    if not words:
        raise UsageError(f"{what} is empty: give a command, e.g. 'ssh -p 2222' (default ssh)")
    if words[0].startswith("-"):
        raise UsageError(f"{what} {command!r} starts with an option: name the program first")
    return words
