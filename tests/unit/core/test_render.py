"""Selection, the dataset DAG and the rendered Makefile, on random trees with nasty names.

The DAG rule (zmake/core/plan.py): for every selected dataset with a nearest selected ancestor A,
A depends on the dataset (children first), except when A is encrypted: then the dataset
depends on A (parent first), since a raw stream cannot be received over the unencrypted
placeholder `zfs recv -d` would create for A. The random trees have encrypted pool roots and
encrypted subtrees, so both directions, and DAGs where several children share one parent as
their prerequisite, come up all the time.

Make's targets are stamp files, `$(STAMPS)/<encoded name>@<newest snapshot guid>`, each with a
phony alias `send/<encoded name>`; the DAG's edges and the umount step are order-only
prerequisites of the stamps. The Makefile is checked three ways: as text (rules, order-only
prerequisites, recipes), by `make -n`, and by really running `make -j1` and `make -j4` with
ZMAKE pointing at a recorder that logs each call and, like `zmake`, writes the `--stamp` file
when it succeeds: so a second make must run nothing at all. Stamps always live in the test's
own temporary directory (RenderSettings.stamps or STAMPS=…), never in /run."""

from __future__ import annotations

import itertools
import re
import shlex
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.support.plans import (
    DEFAULT_ENV,
    ENCODED_ALPHABET,
    GUIDS,
    MAKE_SETTINGS,
    MAKEFILE_VARIABLES,
    MIXED_ORDER,
    MIXED_TREE,
    SAFE_ESCAPES,
    SETTING_TEXT,
    SMALL_TREE,
    TEXT_SETTINGS,
    UMOUNT_STAMP,
    Recorders,
    Rule,
    Scenario,
    alias,
    argvs_of,
    assert_make_safe,
    assert_respects_dependencies,
    check_calls,
    check_umount,
    dependencies,
    expected_order,
    expected_stamp,
    full_plan,
    inventory_of,
    mixed_scenario,
    node_of,
    parse_makefile,
    position_of,
    run_make,
    scenarios,
    sent_names,
    stamps_folder_of,
    through_make,
    workspace,
    zmake_safe,
)
from tests.unit.support.zfsgen import GenTree, trees
from zmake.core.errors import UsageError
from zmake.core.parse import parse_source
from zmake.core.plan import build_plan, select
from zmake.core.render import (
    RenderSettings,
    recipe_word,
    render_makefile,
    stamp_name,
    target_name,
)


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_makefile_text_has_one_stamp_rule_and_one_alias_per_dataset(scenario: Scenario) -> None:
    plan = scenario.plan
    makefile = parse_makefile(render_makefile(plan, TEXT_SETTINGS, "t"))
    nodes = {node.dataset.name: node for node in plan.nodes}
    aliases = {name: alias(name) for name in scenario.selected}
    stamps = {name: "$(STAMPS)/" + expected_stamp(nodes[name].dataset) for name in nodes}
    assert len(set(aliases.values())) == len(aliases)
    assert len(set(stamps.values())) == len(stamps)
    for stamp in stamps.values():  # a stamp file is never another stamp's directory
        assert not any(other.startswith(stamp + "/") for other in stamps.values()), stamp
        assert re.fullmatch(r"\$\(STAMPS\)/[A-Za-z0-9._/+-]+@(none|[0-9]+)", stamp), stamp
    umount_stamp = makefile.rule("umount").prerequisites[0]
    assert UMOUNT_STAMP.fullmatch(umount_stamp)
    assert set(makefile.rules) == {
        "all",
        "umount",
        umount_stamp,
        *aliases.values(),
        *stamps.values(),
    }
    assert sorted(makefile.phony) == sorted(["all", "umount", *aliases.values()])
    everything = makefile.rule("all")
    assert (everything.prerequisites, everything.order_only) == (
        [aliases[root] for root in plan.roots],
        [],
    )
    # At the end, every dataset's failure (written by `zmake send --failures`) is listed.
    assert "$(FAILED)" in everything.recipe[0] and "exit 1" in everything.recipe[-1]
    assert makefile.rule("umount") == Rule([umount_stamp], [])
    # The selection comes from ZMAKE_SELECTION, exported above.
    assert makefile.rule(umount_stamp) == Rule([], [], ["$(ZMAKE) umount --stamp '$@'"])
    deps = dependencies(scenario)
    for name, node in nodes.items():
        assert makefile.rule(aliases[name]) == Rule([stamps[name]], [])  # exactly once
        stamp_rule = makefile.rule(stamps[name])
        assert stamp_rule.prerequisites == []  # only order-only: a stamp is never outdated
        assert stamp_rule.order_only == [umount_stamp, *map(alias, node.prerequisites)]
        assert set(node.prerequisites) == {f for f, t in deps if t == name}
        assert len(stamp_rule.recipe) == 1
        recipe = shlex.split(stamp_rule.recipe[0].replace("$$", "$"))
        assert recipe == [
            "$(ZMAKE)", "send", "--stamp", "$@", "--failures", "$(FAILED)", "--", name
        ]  # fmt: skip


@given(
    st.text(min_size=1),
    st.lists(GUIDS, unique=True, min_size=1, max_size=4),
    GUIDS,
)
def test_stamp_name_is_the_encoded_name_and_the_newest_guid(
    name: str, guids: list[int], newer: int
) -> None:
    stamp = stamp_name(node_of(name, guids))
    assert stamp == f"{target_name(name).removeprefix('send/')}@{guids[-1]}"
    assert re.fullmatch(r"[A-Za-z0-9._/+-]+@[0-9]+", stamp), stamp
    # a new snapshot renames the stamp (unless it is the same snapshot)...
    renamed = stamp_name(node_of(name, [*guids, newer]))
    assert (renamed == stamp) == (newer == guids[-1])
    # ...older snapshots coming and going do not
    assert stamp_name(node_of(name, [newer, *guids])) == stamp
    assert stamp_name(node_of(name, guids[-1:])) == stamp
    assert stamp_name(node_of(name, [])) == f"{target_name(name).removeprefix('send/')}@none"


def test_a_new_snapshot_renames_its_stamp_and_the_umount_stamp_only() -> None:
    rows = [("tank", 1, "off"), ("tank/a", 2, "off"), ("tank/b", 3, "off")]
    before = render_makefile(full_plan(inventory_of(rows)), TEXT_SETTINGS, "t")
    after = render_makefile(full_plan(inventory_of(rows, {"tank/a": 5000})), TEXT_SETTINGS, "t")
    old, new = parse_makefile(before), parse_makefile(after)
    assert old.rule("send/tank/a") == Rule(["$(STAMPS)/tank/a@101"], [])
    assert new.rule("send/tank/a") == Rule(["$(STAMPS)/tank/a@5000"], [])
    for unchanged in ("tank", "tank/b"):
        assert old.rule(alias(unchanged)) == new.rule(alias(unchanged))
    old_umount, new_umount = old.rule("umount").prerequisites, new.rule("umount").prerequisites
    assert old_umount != new_umount
    assert render_makefile(full_plan(inventory_of(rows)), TEXT_SETTINGS, "t") == before


@given(st.text(), st.text())
def test_target_name_is_injective_on_any_strings(a: str, b: str) -> None:
    if a != b:
        assert target_name(a) != target_name(b)
    assert_make_safe(target_name(a))


@given(st.lists(st.text(alphabet="+2B/ %:é.-_aA0\x01\x10\n", max_size=6), unique=True, max_size=40))
def test_target_name_is_injective_on_escape_lookalikes(names: list[str]) -> None:
    assert len({target_name(n) for n in names}) == len(names)


def test_target_name_exhaustive_short_strings() -> None:
    alphabet = "+2B/ %:.-0\x01\x10"
    names = ["".join(p) for n in range(4) for p in itertools.product(alphabet, repeat=n)]
    assert len({target_name(n) for n in names}) == len(names)


@pytest.mark.parametrize(
    "name",
    ["tank/my data", "tank/vm:disk0", "tank/50%", "tank/a+2B", "tank/-x", "tank/ lead", "tank/é"],
)
def test_target_name_examples_are_make_safe(name: str) -> None:
    assert_make_safe(target_name(name))


@settings(max_examples=60, deadline=None)
@given(
    st.text(
        alphabet=st.one_of(
            st.sampled_from("$'\"\\ %#:;()`!*?[]{}~&|<>=@"),
            st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")),
        ),
        min_size=1,
    )
)
def test_recipe_word_survives_make_and_sh(value: str) -> None:
    """A recipe word reaches the command as exactly one argument equal to the value."""
    makefile = f"all:\n\t@printf '%s\\n' {recipe_word(value)}\n"
    assert run_make(["-s", "-f", "-"], stdin=makefile).stdout == value + "\n"


@settings(deadline=None)  # one make process per example
@given(SETTING_TEXT)
def test_make_value_round_trips_through_make(value: str) -> None:
    """A setting written with make_value reaches a recipe's environment unchanged (make drops
    leading blanks of a value; nobody's ssh command starts with one)."""
    assert through_make(value) == value.lstrip(" \t")


@pytest.mark.parametrize(
    "value",
    [
        "ssh -o X=a\\ b",
        "C:\\backup",
        "ssh -i key\\",
        "ssh -i key\\\\",
        "ssh -o 'X=a\\#b'",
        "a\\\\#b\\\\\\#c#d",
        "\\",
        "$\\",
        "#\\",
    ],
)
def test_make_value_keeps_backslashes(value: str) -> None:
    assert through_make(value) == value


def test_make_value_ending_in_a_backslash_ignores_the_environment() -> None:
    assert through_make("ssh -i key\\", env={"EMPTY": "oops"}) == "ssh -i key\\"


@MAKE_SETTINGS
@given(scenario=scenarios(max_datasets=7, dense=True))
def test_make_dry_run_lists_every_send_in_order(recorders: Recorders, scenario: Scenario) -> None:
    with workspace(recorders, scenario.plan) as space:
        done = run_make(["-n", "-f", space.makefile.name], cwd=str(space.root), log=space.log)
        assert not space.base.exists() and not space.log.exists()  # -n runs and writes nothing
    lines = done.stdout.splitlines()
    # The last command is `all`'s: the report of what failed (nothing here).
    assert lines[-1].startswith("failed=$(find ") and "exit 1" in lines[-1], lines[-1]
    commands = [shlex.split(line) for line in lines[:-1]]
    assert all(c[0] == str(recorders.default) for c in commands), done.stdout
    check_umount(commands[0][1:], space.stamps())
    sends = sent_names([c[1:] for c in commands[1:]], space.stamps(), scenario.plan)
    assert_respects_dependencies(sends, scenario)
    assert sends == expected_order(scenario.plan)


@MAKE_SETTINGS
@given(scenario=scenarios(max_datasets=7, dense=True), data=st.data())
def test_make_sends_each_once_then_nothing_then_only_a_lost_stamp(
    recorders: Recorders, scenario: Scenario, data: st.DataObject
) -> None:
    with workspace(recorders, scenario.plan) as space:
        records = space.make("-j1", f"ZMAKE={recorders.override}")
        assert all(r["argv0"] == recorders.override.name for r in records)
        assert [r["event"] for r in records] == ["start", "end"] * (len(records) // 2)  # serial
        argvs = argvs_of(records)
        check_umount(argvs[0], space.stamps())
        sent = sent_names(argvs[1:], space.stamps(), scenario.plan)
        assert_respects_dependencies(sent, scenario)
        assert sent == expected_order(scenario.plan)  # largest subtree first, as listed
        stamps = {a[2] for a in argvs}
        assert {str(space.base / f) for f in space.stamp_files()} == stamps
        # Everything is stamped: make runs nothing at all, serial or parallel.
        assert space.make("-j1") == []
        assert space.make("-j4") == []
        # One stamp lost: only that dataset is sent again (not even the umount).
        lost = data.draw(st.sampled_from(argvs[1:]), label="lost")
        Path(lost[2]).unlink()
        assert argvs_of(space.make("-j4")) == [lost]
        assert {str(space.base / f) for f in space.stamp_files()} == stamps
        assert space.make("-j1") == []


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios(max_datasets=7, dense=True))
def test_parallel_make_respects_every_dependency(recorders: Recorders, scenario: Scenario) -> None:
    """With -j4 the order among independent targets is free, but a target starts only after
    its prerequisites finished: the umount first of all, children before unencrypted
    parents, encrypted parents before their children."""
    with workspace(recorders, scenario.plan) as space:
        records = space.make("-j4")
        assert space.make("-j4") == []
    argvs = argvs_of(records)
    check_umount(argvs[0], space.stamps())
    assert [r["event"] for r in records[:2]] == ["start", "end"]  # umount, alone
    assert records[1]["argv"] == argvs[0]
    sent = sent_names(argvs[1:], space.stamps(), scenario.plan)
    assert_respects_dependencies(sent, scenario)
    by_name = dict(zip(sent, argvs[1:], strict=True))
    for first, then in dependencies(scenario):
        finished = position_of(records, "end", by_name[first])
        assert finished < position_of(records, "start", by_name[then]), (first, then)


@pytest.mark.parametrize("jobs", [1, 4])
def test_make_sends_the_mixed_tree_in_dependency_order(recorders: Recorders, jobs: int) -> None:
    scenario = mixed_scenario()
    with workspace(recorders, scenario.plan) as space:
        argvs = argvs_of(space.make(f"-j{jobs}"))
        assert space.make(f"-j{jobs}") == []
    check_umount(argvs[0], space.stamps())
    sent = sent_names(argvs[1:], space.stamps(), scenario.plan)
    assert_respects_dependencies(sent, scenario)
    if jobs == 1:
        assert sent == MIXED_ORDER


@pytest.mark.parametrize("jobs", [1, 4])
def test_a_failed_send_holds_back_nothing_and_the_end_says_why(
    recorders: Recorders, jobs: int
) -> None:
    """A send that fails (refused, diverged, …) records why and lets make go on: every other
    dataset, its ancestors included, is sent in the same run, even without -k; `all` then
    lists it and fails. The next run sends only what failed."""
    scenario = mixed_scenario()
    failing = ("tank/secret", "tank/plain/own key")
    with workspace(recorders, scenario.plan) as space:
        records = space.make(f"-j{jobs}", fail=failing, check=False)
        assert space.last is not None and space.last.returncode != 0
        assert sorted(r["argv"][-1] for r in records if r["event"] == "fail") == sorted(failing)
        tried = sent_names(argvs_of(records)[1:], space.stamps(), scenario.plan)
        assert sorted(tried) == sorted(scenario.selected)  # nobody waited in vain
        assert_respects_dependencies(tried, scenario)  # still children (or parents) first
        report = space.last.stderr
        assert "zmake: not up to date" in report
        assert [line for line in report.splitlines() if "refused for the test" in line] == [
            f"{name}: refused for the test" for name in sorted(failing)
        ]
        stamped = {
            str(Path(space.base, f).relative_to(space.stamps())) for f in space.stamp_files()
        }
        for name in scenario.selected:
            stamp = expected_stamp(scenario.inventory.datasets[name])
            assert (stamp in stamped) == (name not in failing), name
        # the next run sends only what failed, and ends well
        rest = sent_names(argvs_of(space.make(f"-j{jobs}")), space.stamps(), scenario.plan)
        assert sorted(rest) == sorted(failing)
        assert "not up to date" not in space.last.stderr
        assert space.make(f"-j{jobs}") == []


def test_a_crashed_send_stamps_nothing_and_the_next_run_finishes(recorders: Recorders) -> None:
    """A send that dies (no record of why: a bug, a kill) is a make failure: -k goes on with
    what does not need it, and the next run finishes."""
    scenario = mixed_scenario()
    needs_secret = {"tank", "tank/secret/a", "tank/secret/b", "tank/secret/a/deep"}
    with workspace(recorders, scenario.plan) as space:
        failed = space.make("-k", "-j4", crash=("tank/secret",), check=False)
        assert [r["argv"][-1] for r in failed if r["event"] == "fail"] == ["tank/secret"]
        tried = sent_names(argvs_of(failed)[1:], space.stamps(), scenario.plan)
        # make -k went on with everything that does not need tank/secret
        assert sorted(tried) == sorted(set(scenario.selected) - needs_secret)
        stamped = {
            str(Path(space.base, f).relative_to(space.stamps())) for f in space.stamp_files()
        }
        assert expected_stamp(scenario.inventory.datasets["tank/secret/b"]) not in stamped
        assert expected_stamp(scenario.inventory.datasets["tank/plain"]) in stamped
        assert expected_stamp(scenario.inventory.datasets["tank/secret"]) not in stamped
        # the next run sends what is left, in order, and nothing else
        rest = sent_names(argvs_of(space.make("-j4")), space.stamps(), scenario.plan)
        assert sorted(rest) == sorted({"tank/secret", *needs_secret})
        assert rest[0] == "tank/secret"
        assert rest.index("tank/secret/a") < rest.index("tank/secret/a/deep")
        assert space.make("-j4") == []


def test_a_new_snapshot_sends_that_dataset_after_a_new_umount(recorders: Recorders) -> None:
    """A new snapshot of tank/plain: its stamp and the umount stamp are new, so make unmounts
    and sends tank/plain again; its parent tank (which needs tank/plain first, order-only)
    is not sent again."""
    with workspace(recorders, full_plan(inventory_of(MIXED_TREE))) as space:
        first = argvs_of(space.make("-j4"))
        assert len(first) == len(MIXED_TREE) + 1
        space.render(recorders, full_plan(inventory_of(MIXED_TREE, {"tank/plain": 5000})))
        second = argvs_of(space.make("-j4"))
        assert len(second) == 2
        check_umount(second[0], space.stamps())
        assert second[0][2] != first[0][2]
        assert sent_names(second[1:], space.stamps(), full_plan(
            inventory_of(MIXED_TREE, {"tank/plain": 5000}))) == ["tank/plain"]  # fmt: skip
        assert second[1][2] == str(space.stamps("_0/_0/_0/tank/plain@5000"))
        assert space.make("-j4") == []


def test_make_passes_settings_to_zmake_send(recorders: Recorders) -> None:
    listing = "tank\tfilesystem\t1\t1\t0\t0\t0\t-\ntank/my data\tfilesystem\t2\t2\t0\t0\t0\t-\n"
    inventory = parse_source(listing, "")
    plan = build_plan(inventory, select(inventory, ["tank"], []))
    ssh = "ssh -o 'ProxyCommand=nc %h %p' -F my\\ cfg -p 2222 #$HOME"
    overrides = {"remote": "me@backup.example", "ssh": ssh, "dest": "b:ack", "compress": "zstd"}
    with workspace(recorders, plan, **overrides) as space:
        default_calls = space.make()
        override_calls = space.make("REMOTE=other", "COMPRESS=none")
        assert space.make() == space.make("REMOTE=other", "COMPRESS=none") == []
    assert [c["argv0"] for c in default_calls] == ["zmake-default"] * 6
    env = {
        **DEFAULT_ENV,
        "ZMAKE_REMOTE": "me@backup.example",
        "ZMAKE_SSH": ssh,
        "ZMAKE_DEST": "b:ack",
        "ZMAKE_COMPRESS": "zstd",
    }
    assert all(c["env"] == env for c in default_calls)
    stamps = space.stamps("_0/me@backup_oexample/b_cack")  # `.` → _o, `:` → _c
    argvs = argvs_of(default_calls)
    check_umount(argvs[0], stamps)
    assert sent_names(argvs[1:], stamps, plan) == ["tank/my data", "tank"]
    assert [a[2] for a in argvs[1:]] == [f"{stamps}/tank/my+20data@none", f"{stamps}/tank@none"]
    assert {c["selection"] for c in default_calls} == {'{"roots": [], "exclude": []}'}
    # another REMOTE: its own stamps, so everything is sent again
    overridden = override_calls[-1]["env"]
    assert (overridden["ZMAKE_REMOTE"], overridden["ZMAKE_COMPRESS"]) == ("other", "none")
    check_umount(argvs_of(override_calls)[0], space.stamps("_0/other/b_cack"))
    sent = sent_names(argvs_of(override_calls)[1:], space.stamps("_0/other/b_cack"), plan)
    assert sent == ["tank/my data", "tank"]


def test_stamps_are_kept_per_remote_and_dest(recorders: Recorders) -> None:
    plan = full_plan(inventory_of(MIXED_TREE))
    everything = sorted(name for name, _, _ in MIXED_TREE)
    with workspace(recorders, plan) as space:
        assert len(argvs_of(space.make("-j4"))) == len(everything) + 1
        # another backup target: everything again, stamped in its own folder
        other = space.make("-j4", "REMOTE=x", "DEST=a b:c")
        assert {(c["env"]["ZMAKE_REMOTE"], c["env"]["ZMAKE_DEST"]) for c in other} == {
            ("x", "a b:c")
        }
        argvs = argvs_of(other)
        check_umount(argvs[0], space.stamps("_0/x/a_sb_cc"))  # space → _s, : → _c
        assert sorted(sent_names(argvs[1:], space.stamps("_0/x/a_sb_cc"), plan)) == everything
        assert space.make("-j4", "REMOTE=x", "DEST=a b:c") == []
        assert space.make("-j4") == []
        folders = {"/".join(Path(f).parts[:3]) for f in space.stamp_files()}
        assert folders == {"_0/_0/_0", "_0/x/a_sb_cc"}
        # STAMPS on the command line names the folder itself
        elsewhere = space.root / "elsewhere"
        argvs = argvs_of(space.make("-j4", f"STAMPS={elsewhere}"))
        check_umount(argvs[0], elsewhere)
        assert sorted(sent_names(argvs[1:], elsewhere, plan)) == everything
        assert space.make("-j4", f"STAMPS={elsewhere}") == []


@pytest.mark.parametrize(
    ("remote", "dest", "folder"),
    [
        ("nas", "", "nas/_0"),
        ("", "backup", "_0/backup"),
        ("", "", "_0/_0"),
        ("me@backup.example", "b:ack", "me@backup_oexample/b_cack"),
        ("a_b", "_0", "a_ub/_u0"),  # `_` is escaped first: an escape in a value stays apart
        ("ssh://me@nas:2222", "back up", "ssh_c_l_lme@nas_c2222/back_sup"),
        ("[fe80::1%eth0]", "x*y?", "_bfe80_c_c1_peth0_k/x_ay_q"),
        ('o\'brien@"nas"', "x;y|z", "o_tbrien@_dnas_d/x_my_vz"),
        ("a\\b&c=d", "é#(,)", "a_rb_nc_ed/é#(,)"),
    ],
)
def test_stamps_folder_is_the_encoded_remote_then_the_encoded_dest(
    tmp_path: Path, remote: str, dest: str, folder: str
) -> None:
    assert zmake_safe(remote) + "/" + zmake_safe(dest) == folder  # the table is the spec
    assert stamps_folder_of(tmp_path, f"REMOTE={remote}", f"DEST={dest}") == (f"_0/{folder}", [])
    pulled = stamps_folder_of(tmp_path, f"SOURCE={remote}", f"DEST={dest}")
    assert pulled == (f"{zmake_safe(remote)}/_0/{zmake_safe(dest)}", [])


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.text(alphabet=ENCODED_ALPHABET, max_size=8).filter(lambda v: not v.startswith(" ")),
        min_size=1,
        max_size=12,
    )
)
def test_make_s_zmake_safe_is_the_documented_encoding(values: list[str]) -> None:
    """(make drops a command-line value's leading blanks: none here.)"""
    with tempfile.TemporaryDirectory() as work:
        assignments = [f"P{i}={value}" for i, value in enumerate(values)]
        _, encoded = stamps_folder_of(Path(work), *assignments)
    assert encoded == [zmake_safe(value) for value in values]


@given(st.text(alphabet=ENCODED_ALPHABET), st.text(alphabet=ENCODED_ALPHABET))
def test_zmake_safe_is_injective_and_gives_one_plain_file_name(a: str, b: str) -> None:
    if a != b:
        assert zmake_safe(a) != zmake_safe(b)
    assert not set(SAFE_ESCAPES) - {"_"} & set(zmake_safe(a)), zmake_safe(a)
    assert re.fullmatch(r"([^_]|_[usclpaqbktdmvrneo0])+", zmake_safe(a)), zmake_safe(a)


def test_zmake_safe_exhaustive_short_strings() -> None:
    alphabet = "_usc0 :/"
    names = ["".join(p) for n in range(5) for p in itertools.product(alphabet, repeat=n)]
    assert len({zmake_safe(n) for n in names}) == len(names)


@pytest.mark.parametrize(
    "remote",
    [
        "ssh://me@nas:2222",
        "[fe80::1%eth0]",
        "me@nas*?",
        "o'brien@nas",
        'me@"nas"',
        "a;b|c&d=e\\f",
        "me@nas#2 (x),y",
        "_0",
        "..",
    ],
)
def test_odd_remotes_get_their_own_stamps(recorders: Recorders, remote: str) -> None:
    plan = full_plan(inventory_of(MIXED_TREE))
    with workspace(recorders, plan) as space:
        calls = space.make("-j4", f"REMOTE={remote}")
        argvs = argvs_of(calls)
        assert len(argvs) == len(MIXED_TREE) + 1
        assert {c["env"]["ZMAKE_REMOTE"] for c in calls} == {remote}
        folder = space.stamps(f"_0/{zmake_safe(remote)}/_0")
        check_umount(argvs[0], folder)
        assert sorted(sent_names(argvs[1:], folder, plan)) == sorted(n for n, _, _ in MIXED_TREE)
        assert folder.resolve().parents[2] == space.base.resolve()  # below the stamps root
        assert len(space.stamp_files()) == len(argvs)
        assert space.make("-j4", f"REMOTE={remote}") == []
        assert len(argvs_of(space.make("-j4"))) == len(MIXED_TREE) + 1


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("REMOTE=nas", "DEST=backup-tank"), ("REMOTE=nas-backup", "DEST=tank")),
        (("REMOTE=nas", "DEST=back:up"), ("REMOTE=nas", "DEST=back_up")),
        (("REMOTE=nas", "DEST=back:up"), ("REMOTE=nas", "DEST=back_cup")),  # `:` → _c
        (("REMOTE=nas/x", "DEST=y"), ("REMOTE=nas", "DEST=x/y")),
        (("REMOTE=", "DEST=x"), ("REMOTE=_0", "DEST=x")),  # empty → _0
        (("REMOTE=a b", "DEST=c"), ("REMOTE=a_sb", "DEST=c")),
        (("REMOTE=x", "DEST=."), ("REMOTE=.", "DEST=x")),
    ],
)
def test_different_backup_targets_never_share_stamps(
    recorders: Recorders, first: tuple[str, str], second: tuple[str, str]
) -> None:
    with workspace(recorders, full_plan(inventory_of(MIXED_TREE))) as space:
        assert len(argvs_of(space.make("-j4", *first))) == len(MIXED_TREE) + 1
        # a different receiving host or pool holds none of it yet: all must be sent
        assert len(argvs_of(space.make("-j4", *second))) == len(MIXED_TREE) + 1
        assert space.make("-j4", *first) == space.make("-j4", *second) == []


def test_the_environment_never_changes_a_setting(recorders: Recorders) -> None:
    plan = full_plan(inventory_of(SMALL_TREE))
    with workspace(recorders, plan) as space:
        evil_stamps = space.root / "evil-stamps"
        env = {
            "ZMAKE": str(recorders.override),
            "REMOTE": "evil",
            "SSH": "evil -p 1",
            "DEST": "evil",
            "COMPRESS": "zstd",
            "STAMPS": str(evil_stamps),
            # what the recipes export for zmake send: the Makefile's values win there too
            "ZMAKE_REMOTE": "evil",
            "ZMAKE_SSH": "evil -p 1",
            "ZMAKE_DEST": "evil",
            "ZMAKE_COMPRESS": "zstd",
        }
        calls = space.make("-j2", env=env)
        check_calls(calls, "zmake-default", DEFAULT_ENV, space.stamps(), plan)
        assert space.make("-j2", env=env) == space.make("-j2") == []
        assert not evil_stamps.exists()
        # the command line still overrides, with the environment as it was
        calls = space.make("-j2", "REMOTE=x", env=env)
        check_calls(calls, "zmake-default", {**DEFAULT_ENV, "ZMAKE_REMOTE": "x"},
                    space.stamps("_0/x/_0"), plan)  # fmt: skip
        assert not evil_stamps.exists()


@pytest.mark.parametrize(
    ("variable", "value", "changed"),
    [
        ("ZMAKE", "<override recorder>", {}),
        ("REMOTE", "me@nas", {"ZMAKE_REMOTE": "me@nas"}),
        ("SSH", "ssh -p 2222", {"ZMAKE_SSH": "ssh -p 2222"}),
        ("DEST", "backup", {"ZMAKE_DEST": "backup"}),
        ("COMPRESS", "zstd", {"ZMAKE_COMPRESS": "zstd"}),
        ("STAMPS", "<root>/mine", {}),
    ],
)
def test_a_setting_comes_from_make_s_command_line_not_the_environment(
    recorders: Recorders, variable: str, value: str, changed: dict[str, str]
) -> None:
    plan = full_plan(inventory_of(SMALL_TREE))
    with workspace(recorders, plan) as space:
        value = value.replace("<override recorder>", str(recorders.override))
        value = value.replace("<root>", str(space.root))
        evil = {variable: value}  # the very value, in the environment: ignored
        check_calls(space.make("-j2", env=evil), "zmake-default", DEFAULT_ENV, space.stamps(), plan)
        assert not (space.root / "mine").exists()
        assert space.make("-j2", env=evil) == []
        # on the command line (the environment holding something else): it counts
        shutil.rmtree(space.base)  # from scratch: that run must send everything again
        calls = space.make("-j2", f"{variable}={value}", env={variable: "evil"})
        stamps = {
            "REMOTE": space.stamps(f"_0/{zmake_safe(value)}/_0"),
            "DEST": space.stamps(f"_0/_0/{zmake_safe(value)}"),
            "STAMPS": Path(value),
        }.get(variable, space.stamps())
        argv0 = "zmake-override" if variable == "ZMAKE" else "zmake-default"
        check_calls(calls, argv0, {**DEFAULT_ENV, **changed}, stamps, plan)
        assert space.make("-j2", f"{variable}={value}") == []


@pytest.mark.parametrize("char", [" ", "\t", "\n", *":#%$'\"\\;=|&*?[]"])
def test_a_stamps_folder_make_cannot_name_is_refused(char: str) -> None:
    plan = mixed_scenario().plan
    settings_ = RenderSettings("z", "", "ssh", "", "none", "c", "s", stamps=f"/srv/r{char}n/stamps")
    with pytest.raises(UsageError, match="run directory"):
        render_makefile(plan, settings_, "t")


def test_a_stamps_folder_with_other_odd_characters_works(recorders: Recorders) -> None:
    scenario = mixed_scenario()
    with workspace(recorders, scenario.plan, base="run(1),@+é!~{x}^/stamps") as space:
        argvs = argvs_of(space.make("-j4"))
        check_umount(argvs[0], space.stamps())
        assert sorted(sent_names(argvs[1:], space.stamps(), scenario.plan)) == sorted(
            scenario.selected
        )
        assert len(space.stamp_files()) == len(argvs)
        assert space.make("-j4") == []


@settings(max_examples=10, deadline=None)
@given(trees(max_datasets=4))
def test_makefile_header_and_defaults(tree: GenTree) -> None:
    inventory = parse_source(tree.list_output(), tree.get_output())
    plan = build_plan(inventory, select(inventory, [tree.pool], []))
    settings_ = RenderSettings("zmake", "", "ssh", "", "none", "zmake generate x", "capture f")
    makefile = render_makefile(plan, settings_, "9.9")
    assert makefile.startswith("# Generated by zmake 9.9.")
    assert "zmake generate x" in makefile.splitlines()[1]
    assert ".DEFAULT_GOAL := all" in makefile
    for variable in MAKEFILE_VARIABLES:  # plain `=`: the command line overrides, not the env
        assert len(re.findall(rf"^{variable} = ", makefile, re.MULTILINE)) == 1, variable
    assert not re.search(r"^[^#\t]*\?=", makefile, re.MULTILINE)
    assert re.search(
        r"^STAMPS = /run/zmake/stamps/\$\(call zmake_safe,\$\(SOURCE\)\)/"
        r"\$\(call zmake_safe,\$\(REMOTE\)\)/\$\(call zmake_safe,\$\(DEST\)\)$",
        makefile,
        re.MULTILINE,
    )
