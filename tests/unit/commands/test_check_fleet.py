"""`zmake check` over a fleet: one summary line for all sources, each problem with its
source, an unreachable source UNKNOWN for its part, the worst level for the whole."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema

from tests.unit.core.test_health import PROMTOOL
from tests.unit.support.fake_zfs import BACKUP_ROW, answer, fake_zfs, zmake

HERE = '[sources.here]\ndest = "backup/here"\npools = ["tank"]\n'
AWAY = ('[sources.away]\nsource = "nobody@127.0.0.1"\nssh = "ssh -p 1 -o ConnectTimeout=5"\n'
        'dest = "backup/away"\npools = ["tank"]\n')  # fmt: skip
PUSHED = '[sources.phone]\ndest = "backup/phone"\npush = true\n'


def fleet(tmp_path: Path, text: str) -> tuple[dict[str, str], str]:
    env, _ = fake_zfs(tmp_path)
    answer(tmp_path, "datasets.txt", BACKUP_ROW.format(name="backup", referenced=0, token="-",
                                                       mark="-"))  # fmt: skip
    config = tmp_path / "zmake.toml"
    config.write_text(text)
    return env, str(config)


def test_one_line_for_all_then_each_problem_with_its_source(tmp_path: Path) -> None:
    env, config = fleet(tmp_path, HERE + AWAY + PUSHED)
    done = zmake(["check", "-c", config], env, cwd=tmp_path)
    lines = done.stdout.splitlines()
    assert lines[0] == "ZMAKE CRITICAL - 3 sources, 3 datasets, 5 problems", done.stdout
    assert done.returncode == 2  # a backup missing for half a year outranks an unreachable host
    away, phone = sorted(lines[-2:])
    assert away.startswith("away: UNKNOWN - cannot reach nobody@127.0.0.1 over ssh")
    assert phone == "phone: UNKNOWN - nothing is backed up under backup/phone"
    assert all(line.startswith("here: tank") for line in lines[1:4]), done.stdout
    single = zmake(["check", "tank", "--dest", "backup/here", "-c", "/dev/null"], env,
                   cwd=tmp_path)  # fmt: skip
    assert sorted(single.stdout.splitlines()[1:]) == sorted(
        line.removeprefix("here: ") for line in lines[1:4]
    )  # the same judgement as the source's own check, with its name


def test_only_an_unreachable_source_is_unknown(tmp_path: Path) -> None:
    env, config = fleet(tmp_path, AWAY)
    done = zmake(["check", "-c", config], env, cwd=tmp_path)
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == "ZMAKE UNKNOWN - 1 sources, 0 datasets, 1 problems"


def test_a_fleet_check_names_its_sources(tmp_path: Path) -> None:
    env, config = fleet(tmp_path, HERE + AWAY)
    done = zmake(["check", "-c", config, "here"], env, cwd=tmp_path)
    assert done.stdout.startswith("ZMAKE CRITICAL - 1 sources, 3 datasets"), done.stdout
    assert "away" not in done.stdout


AT = 1_800_000_000
PHONE_TREE = (
    "backup/phone\tfilesystem\t7\t2\t0\t0\t-\toff\t-\tbackup/phone\tno\ton\t-\n"
    "backup/phone/data\tfilesystem\t8\t3\t0\t0\t-\toff\t-\t-\tno\ton\t-\n"
    "backup/phone/data@old\tsnapshot\t9\t4\t0\t0\t-\toff\t-\t-\t-\t-\t{old}\n"
    "backup/phone/data@new\tsnapshot\t10\t5\t0\t0\t-\toff\t-\t-\t-\t-\t{new}\n"
)


def pushed_check(tmp_path: Path, newest_age: int) -> tuple[int, list[str]]:
    tmp_path.mkdir()
    env, config = fleet(tmp_path, PUSHED)
    answer(tmp_path, "tree.txt", PHONE_TREE.format(old=AT - 9 * 86400, new=AT - newest_age))
    done = zmake(["check", "-c", config, "--at", str(AT), "--warn", "1d", "--crit", "3d"], env,
                 cwd=tmp_path)  # fmt: skip
    return done.returncode, done.stdout.splitlines()


def test_a_pushed_source_is_judged_by_the_newest_snapshot_its_backup_holds(
    tmp_path: Path,
) -> None:
    """No read of the source (this host has no way to it): the backup's own snapshots, by
    their creation on the source; zmake's empty parent (the placeholder) is not judged."""
    code, lines = pushed_check(tmp_path / "on time", 3600)
    assert (code, lines) == (0, ["ZMAKE OK - 1 sources, 1 datasets, oldest backup 1h ago"])
    code, lines = pushed_check(tmp_path / "late", 2 * 86400)  # the control: the same backup, late
    assert code == 1, lines
    assert lines[1:] == ["phone: backup/phone/data: newest backup @new is 2d old"]


def test_a_pushed_source_with_nothing_backed_up_is_unknown(tmp_path: Path) -> None:
    env, config = fleet(tmp_path, PUSHED)
    done = zmake(["check", "-c", config], env, cwd=tmp_path)
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stdout.splitlines()[1] == (
        "phone: UNKNOWN - nothing is backed up under backup/phone"
    )


SCHEMA = json.loads((Path(__file__).parents[3] / "docs" / "check.schema.json").read_text())


def test_json_and_metrics_cover_every_source(tmp_path: Path) -> None:
    """--json: the text form's verdict, each dataset with its source, the unreadable ones
    named; --metrics: labelled by source and host, a pushed backup's age but no up_to_date
    (this host cannot know what its source holds)."""
    env, config = fleet(tmp_path, HERE + AWAY + PUSHED)
    answer(tmp_path, "tree.txt", PHONE_TREE.format(old=AT - 9 * 86400, new=AT - 3600))
    metrics = tmp_path / "fleet.prom"
    argv = ["check", "-c", config, "--at", str(AT)]
    text = zmake(argv, env, cwd=tmp_path)
    done = zmake([*argv, "--json", "--metrics", str(metrics)], env, cwd=tmp_path)
    document = json.loads(done.stdout)
    jsonschema.validate(document, SCHEMA)
    assert done.returncode == text.returncode == document["level"] == 2
    assert [document["summary"], *document["problems"]] == text.stdout.splitlines()
    assert {(row["source"], row["state"]) for row in document["datasets"]} == {
        ("here", "missing"), ("phone", "pushed")}  # fmt: skip
    assert [row["source"] for row in document["unreadable"]] == ["away"]
    exposition = metrics.read_text()
    phone = 'dataset="backup/phone/data",source="phone",host="this machine"'
    assert f"zmake_backup_last_snapshot_timestamp_seconds{{{phone}" in exposition
    assert f"zmake_backup_up_to_date{{{phone}" not in exposition  # unknowable here
    assert f"zmake_backup_pending_bytes{{{phone}" not in exposition
    assert 'zmake_backup_up_to_date{dataset="tank",source="here"' in exposition
    readable = {line.split('source="')[1].split('"')[0]: line.rsplit(" ", 1)[1]
                for line in exposition.splitlines()
                if line.startswith("zmake_source_readable{")}  # fmt: skip
    assert readable == {"here": "1", "away": "0", "phone": "1"}  # away: no series but this
    if PROMTOOL is not None:
        done = subprocess.run([PROMTOOL, "check", "metrics"], input=exposition,
                              capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
