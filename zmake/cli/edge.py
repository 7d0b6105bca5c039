"""Validation at the edge: an argparse that says what is wrong in one line (with the documented
exit code of its command), and the argument types that refuse bad values before any work."""

from __future__ import annotations

import argparse
import re
from typing import NoReturn

from zmake.core.names import dataset_problem

USER_NAME = re.compile(r"[a-z_][a-z0-9_.-]{0,31}\$?")


class Parser(argparse.ArgumentParser):
    """An error is one line on stderr, and exits `usage_exit` (2; `check`: 3, UNKNOWN for a
    monitoring system)."""

    def __init__(self, *args: object, usage_exit: int = 2, **kwargs: object) -> None:
        kwargs.setdefault("allow_abbrev", False)  # `--dry` would break when a --dryer came
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.usage_exit = usage_exit

    def error(self, message: str) -> NoReturn:
        self.exit(self.usage_exit, f"{self.prog}: {message} (see {self.prog} --help)\n")


def whole_number(text: str, minimum: int) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if number < minimum:
        raise argparse.ArgumentTypeError(f"{text!r}: at least {minimum}")
    return number


def positive_int(text: str) -> int:
    """A whole number ≥ 1 (jobs, counts)."""
    return whole_number(text, 1)


def count(text: str) -> int:
    """A whole number ≥ 0 (slots: 0 means none)."""
    return whole_number(text, 0)


def dataset_name(text: str) -> str:
    """A ZFS dataset name (no snapshot or bookmark)."""
    why = dataset_problem(text)
    if why is not None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a dataset name: {why}")
    return text


def user_name(text: str) -> str:
    if not USER_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a user name: a-z 0-9 _ . - (not first), at most 32"
        )
    return text


def output_file(text: str) -> str:
    """A file zmake will write (atomically, so into its directory): "-" or a path whose
    directory exists and is writable, checked before any work."""
    import os

    if text == "-":
        return text
    directory = os.path.dirname(os.path.abspath(text))
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a directory: name a file in it")
    if not os.path.isdir(directory):
        raise argparse.ArgumentTypeError(f"{text!r}: no directory {directory}")
    import tempfile

    try:  # what the atomic write will do (root passes os.access on a read-only directory)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r}: cannot write into {directory}: {exc.strerror}"
        ) from None
    return text
