"""`zmake check` over a fleet: one summary line for all sources, each problem with its
source, an unreachable source UNKNOWN for its part, the worst level for the whole."""

from __future__ import annotations

from pathlib import Path

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
    assert lines[0] == "ZMAKE CRITICAL - 2 sources, 3 datasets, 4 problems", done.stdout
    assert done.returncode == 2  # a backup missing for half a year outranks an unreachable host
    assert lines[-1].startswith("away: UNKNOWN - cannot reach nobody@127.0.0.1 over ssh")
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
