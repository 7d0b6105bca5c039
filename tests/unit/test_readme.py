"""README.md for first contact: it opens with exactly the two set-up commands, its first screen
(up to the table of contents) fits on a screen, its links to its own headings resolve, and every
`zmake …` example in its code blocks parses with zmake's own parser, with every option spelled
out in full (argparse would accept an abbreviation that a later option makes ambiguous)."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from zmake.cli.edge import output_file
from zmake.cli.main import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"
SETUP = [
    "python3 -m venv .venv && .venv/bin/pip install -q . && .venv/bin/zmake generate "
    "--from-file sample-pools/home.zcap --remote backup-host --dest backup/home",
    "./scripts/test",
]
CONTENTS_HEADING = "## Contents"
FIRST_SCREEN_LINES = 45

FENCE = re.compile(r"^```(\w*)\s*$")
# a zmake line: after an optional `$ ` prompt and an optional cron prefix (five time fields and
# a user), `zmake` or a path to it
ZMAKE_LINE = re.compile(r"^(?:\$ )?(?:(?:[\d*/,-]+\s+){5}\S+\s+)?(?:/\S+/)?(zmake\s.*)$")
# where the zmake command ends: a shell operator, a redirection, or a comment
COMMAND_END = re.compile(r"\s(?:&&|\|\||\||;|>|2>|#)(?:\s|$)")
# a placeholder, not a real value: a word in capitals (DATASET, POOL, DIR), or an ellipsis
PLACEHOLDER = re.compile(r"…|(?<![\w.-])[A-Z][A-Z0-9_]+(?![\w.-])")


def code_blocks(text: str) -> list[tuple[str, list[str]]]:
    """(language, lines) of every fenced block, in order."""
    blocks: list[tuple[str, list[str]]] = []
    lines: list[str] | None = None
    language = ""
    for line in text.splitlines():
        fence = FENCE.match(line.strip())
        if fence and lines is None:
            language, lines = fence.group(1), []
        elif fence and lines is not None:
            blocks.append((language, lines))
            lines = None
        elif lines is not None:
            lines.append(line)
    assert lines is None, "README.md: a code block is never closed"
    return blocks


def joined(lines: list[str]) -> list[str]:
    """Lines with their backslash continuations joined."""
    out: list[str] = []
    pending = ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append(pending + line)
        pending = ""
    return out


def zmake_commands(text: str) -> tuple[list[str], list[str]]:
    """The zmake command lines of the sh (and plain) code blocks, each cut at its end, and the
    lines skipped as holding placeholders."""
    commands: list[str] = []
    skipped: list[str] = []
    for language, lines in code_blocks(text):
        if language not in ("sh", ""):
            continue
        for line in joined(lines):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            match = ZMAKE_LINE.match(stripped)
            if not match:
                continue
            command = COMMAND_END.split(" " + match.group(1), maxsplit=1)[0].strip()
            if PLACEHOLDER.search(command):
                skipped.append(command)
            else:
                commands.append(command)
    return commands, skipped


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def readme_parser() -> argparse.ArgumentParser:
    """zmake's parser, except that a file to write (`--metrics`, `-o`) is only a name: zmake
    checks that its directory exists here, and the README's paths are the user's machine's
    (/var/lib/prometheus/node-exporter), not this one's."""
    parser = build_parser()
    relaxed = 0
    for sub in (parser, *subparsers(parser).values()):
        for action in sub._actions:
            if action.type is output_file:
                action.type = str
                relaxed += 1
    assert relaxed, "no option takes an output_file any more: drop readme_parser()"
    return parser


def check_command(line: str) -> None:
    """Parse LINE (`zmake …`) as zmake does; SystemExit when zmake would refuse it (an
    abbreviated option too: zmake's parser takes none)."""
    words = shlex.split(line)
    assert words[0] == "zmake", line
    readme_parser().parse_args(words[1:])


def test_the_first_code_block_is_the_two_set_up_commands() -> None:
    language, lines = code_blocks(README.read_text())[0]
    assert language == "sh"
    assert [line.strip() for line in lines if line.strip()] == SETUP
    check_command(SETUP[0].split(" && ")[-1].removeprefix(".venv/bin/"))  # its zmake generate


def test_the_first_screen_ends_at_the_contents_within_45_lines() -> None:
    lines = README.read_text().splitlines()
    assert CONTENTS_HEADING in lines, f"no {CONTENTS_HEADING!r} heading"
    first_screen = lines[: lines.index(CONTENTS_HEADING)]
    assert first_screen[0] == "# zmake"
    assert len(first_screen) <= FIRST_SCREEN_LINES, len(first_screen)
    # the set-up commands are on it, and so are the steps to a nightly backup
    text = "\n".join(first_screen)
    for needed in ("./scripts/test", "zmake snapshot", "--dry-run", "zmake check",
                   "systemctl enable --now zmake-backup.timer", "exit_code=$?"):  # fmt: skip
        assert needed in text, needed


def test_the_extraction_finds_commands_and_cuts_them_at_their_end() -> None:
    """The control for the extraction: shell operators, comments, continuations, a cron
    prefix and placeholders are handled, so the parse test below sees every example."""
    text = "\n".join([
        "```sh",
        "# zmake backup --not-this-comment",
        "$ zmake status tank --json > out.json",
        "zmake backup --yes --quiet || exit_code=$?   # 0: ok",
        "15 1 * * *  root  /usr/local/bin/zmake check tank --warn 26h",
        "zmake prune tank --remote nas \\",
        "    --keep 3 --dry-run",
        "zmake verify DATASET --deep",
        "echo zmake is not first",
        "```",
        "```",
        'object CheckCommand "zmake" {',
        "```",
    ])  # fmt: skip
    commands, skipped = zmake_commands(text)
    assert commands == [
        "zmake status tank --json",
        "zmake backup --yes --quiet",
        "zmake check tank --warn 26h",
        "zmake prune tank --remote nas      --keep 3 --dry-run",
    ]
    assert skipped == ["zmake verify DATASET --deep"]


def test_the_check_fails_on_an_option_that_does_not_exist() -> None:
    """The control for the parse: zmake's parser refuses a made-up option, an option of another
    command, a bad value and an abbreviation."""
    with pytest.raises(SystemExit):
        check_command("zmake backup --no-such-option")
    with pytest.raises(SystemExit):
        check_command("zmake snapshot tank --dest backup/laptop")  # snapshot takes no --dest
    with pytest.raises(SystemExit):
        check_command("zmake backup tank --keep none")
    with pytest.raises(SystemExit):
        check_command("zmake backup tank --dry")
    with pytest.raises(SystemExit):  # zmake's own parser, unrelaxed, on this machine
        build_parser().parse_args(["backup", "--no-such-option"])
    check_command("zmake backup tank --remote nas --dest backup/laptop --dry-run")


def test_every_zmake_example_in_the_readme_parses() -> None:
    commands, skipped = zmake_commands(README.read_text())
    assert len(commands) >= 20, commands  # the README's examples were found at all
    assert len(skipped) <= 2, skipped  # examples hold real values, not placeholders
    failures = []
    for command in commands:
        try:
            check_command(command)
        except (SystemExit, AssertionError) as exc:
            failures.append(f"{command}: {exc}")
    assert failures == []


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = heading.lstrip("#").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def test_links_to_the_readmes_own_headings_resolve() -> None:
    text = README.read_text()
    in_code = False
    anchors = set()
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            anchors.add(slug(line))
    assert slug("### What `zmake send` does") == "what-zmake-send-does"  # the control
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links, "no links to headings found"
    assert sorted(links - anchors) == []
