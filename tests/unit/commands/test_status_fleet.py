"""`zmake status` over a fleet: one table of SOURCE:DATASET rows, a pushed source's backups
as this host holds them, an unreadable source one stderr line and exit 1; --json follows
docs/status.schema.json."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from tests.unit.commands.test_check_fleet import AWAY, HERE, PHONE_TREE, PUSHED, fleet
from tests.unit.support.fake_zfs import answer, zmake

SCHEMA = json.loads((Path(__file__).parents[3] / "docs" / "status.schema.json").read_text())


def test_one_table_for_every_source(tmp_path: Path) -> None:
    env, config = fleet(tmp_path, HERE + PUSHED)
    answer(tmp_path, "tree.txt", PHONE_TREE.format(old=1, new=2))
    done = zmake(["status", "-c", config], env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = [line.split()[:2] for line in done.stdout.splitlines()[1:]]
    assert ["here:tank", "missing"] in rows, done.stdout
    assert ["phone:backup/phone/data", "pushed"] in rows, done.stdout
    assert not any(row[0] == "phone:backup/phone" for row in rows)  # zmake's empty parent


def test_an_unreadable_source_is_one_line_and_exit_1(tmp_path: Path) -> None:
    env, config = fleet(tmp_path, HERE + AWAY)
    done = zmake(["status", "-c", config, "--json"], env, cwd=tmp_path)
    assert done.returncode == 1
    document = json.loads(done.stdout)
    jsonschema.validate(document, SCHEMA)
    assert {row["source"] for row in document["datasets"]} == {"here"}
    assert [error["source"] for error in document["unreadable"]] == ["away"]
    said = done.stderr.splitlines()
    assert len(said) == 1 and said[0].startswith("zmake: status: away: cannot reach"), said


def test_a_pushed_source_with_nothing_backed_up_is_unreadable(tmp_path: Path) -> None:
    env, config = fleet(tmp_path, PUSHED)
    done = zmake(["status", "-c", config], env, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == "zmake: status: phone: nothing is backed up under backup/phone\n"
