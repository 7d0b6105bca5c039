"""Selection, the dataset DAG and the rendered Makefile, on random trees with nasty names.

The DAG rule (zmake/plan.py): for every selected dataset with a nearest selected ancestor A,
A depends on the dataset (children first), except when A is encrypted: then the dataset
depends on A (parent first), since a raw stream cannot be received over the unencrypted
placeholder `zfs recv -d` would create for A. The random trees have encrypted pool roots and
encrypted subtrees, so both directions, and DAGs where several children share one parent as
their prerequisite, come up all the time.

The Makefile is checked three ways: as text (targets, prerequisites, order), by `make -n`,
and by really running `make -j1` and `make -j4` with ZMAKE pointing at a recorder that logs
each call."""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from zfsgen import GenTree, forest_get_output, forest_list_output, forests, trees

from zmake.errors import UsageError
from zmake.model import Dataset, Inventory, RemoteDataset, Snapshot, parent_of
from zmake.parse import parse_source
from zmake.plan import Plan, build_plan, expected_bytes, select
from zmake.render import Settings, make_value, recipe_word, render_makefile, target_name

# Each example runs make and one recorder process per dataset: keep the tier fast.
MAKE_SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
FORBIDDEN_IN_TARGETS = set(" \t\n\r\v\f:%#$=;\\*?[]()'\"|&<>{}~`!,")
RECORDER = f"""#!{sys.executable} -SI
import json, os, sys
record = {{
    "argv0": os.path.basename(sys.argv[0]),
    "argv": sys.argv[1:],
    "env": {{k: v for k, v in os.environ.items() if k.startswith("ZMAKE_")}},
}}
with open(os.environ["RECORDER_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps(record) + "\\n")
"""
TEXT_SETTINGS = Settings("zmake", "", "ssh", "", "none", "cmd", "src")


@dataclass(frozen=True)
class Recorders:
    default: Path  # what Settings.zmake names (in a directory with a nasty name)
    override: Path  # what `make ZMAKE=…` names


@pytest.fixture(scope="module")
def recorders(tmp_path_factory: pytest.TempPathFactory) -> Recorders:
    base = tmp_path_factory.mktemp("recorders")
    nasty = base / "rec $dir #1 %x"
    nasty.mkdir()
    paths = Recorders(nasty / "zmake-default", base / "zmake-override")
    for path in (paths.default, paths.override):
        path.write_text(RECORDER, encoding="utf-8")
        path.chmod(0o755)
    return paths


def render_settings(recorders: Recorders, **overrides: str) -> Settings:
    values = {
        "zmake": shlex.quote(str(recorders.default)),
        "remote": "",
        "ssh": "ssh",
        "dest": "",
        "compress": "none",
        "command": "zmake generate tank --exclude 'tank/tmp*'",
        "source": "a test",
    }
    values.update(overrides)
    return Settings(**values)


# --- building a selection from random trees ---------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    inventory: Inventory
    roots: list[str]
    excludes: list[str]
    selected: list[str]
    plan: Plan


@st.composite
def scenarios(
    draw: st.DrawFn, max_datasets: int = 10, min_datasets: int = 1, dense: bool = False
) -> Scenario:
    """`dense`: bigger trees, mostly kept whole, for the tests that can only afford few
    examples (each runs make and a process per dataset)."""
    if dense:
        min_datasets = max(min_datasets, 4)
    pools: list[GenTree] = draw(forests(max_datasets=max_datasets, min_datasets=min_datasets))
    inventory = parse_source(forest_list_output(pools), forest_get_output(pools))
    names = list(inventory.datasets)
    if draw(st.sampled_from(("pools", "pools", "pools", "datasets"))) == "pools":
        roots = [tree.pool for tree in pools]
    else:
        roots = draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True))
    under = [n for n in names if any(n == r or n.startswith(r + "/") for r in roots)]
    # Exclude datasets (names are literal globs: no legal name holds * ? or [) but keep
    # at least one: intermediate ones are what the "nearest selected ancestor" rule is for.
    most = len(under) // 3 if dense else len(under) - 1
    excludes = draw(st.lists(st.sampled_from(under), unique=True, max_size=most))
    selected = select(inventory, roots, excludes)
    scenario = Scenario(inventory, roots, excludes, selected, build_plan(inventory, selected))
    kinds = Counter(encrypted for _, _, encrypted in tree_edges(scenario))
    below = {key: "3+" if n >= 3 else str(n) for key, n in kinds.items()}
    event(f"edges below encrypted: {below.get(True, 0)}; unencrypted: {below.get(False, 0)}")
    return scenario


def nearest_selected_ancestor(name: str, selected: set[str]) -> str | None:
    parent = parent_of(name)
    while parent is not None and parent not in selected:
        parent = parent_of(parent)
    return parent


def tree_edges(scenario: Scenario) -> list[tuple[str, str, bool]]:
    """(nearest selected ancestor, dataset, whether that ancestor is encrypted)."""
    chosen = set(scenario.selected)
    result = []
    for name in scenario.selected:
        ancestor = nearest_selected_ancestor(name, chosen)
        if ancestor is not None:
            result.append((ancestor, name, scenario.inventory.datasets[ancestor].encrypted))
    return result


def dependencies(scenario: Scenario) -> set[tuple[str, str]]:
    """(first, then): `then` lists `first` as a prerequisite, so `first` is sent before."""
    return {
        (ancestor, name) if encrypted else (name, ancestor)
        for ancestor, name, encrypted in tree_edges(scenario)
    }


def largest_first(plan: Plan, names: set[str] | list[str]) -> list[str]:
    """The documented order of prerequisites and roots: subtree bytes down, then by name."""
    subtree = {node.dataset.name: node.subtree_bytes for node in plan.nodes}
    return sorted(names, key=lambda n: (-subtree[n], n))


def parse_rules(makefile: str) -> dict[str, list[list[str]]]:
    """Target → every prerequisite list it is given (rule lines only)."""
    rules: dict[str, list[list[str]]] = {}
    for line in makefile.splitlines():
        if line.startswith(("\t", "#", ".")) or "=" in line or ":" not in line:
            continue
        target, _, prerequisites = line.partition(":")
        rules.setdefault(target, []).append(prerequisites.split())
    return rules


def expected_order(plan: Plan) -> list[str]:
    """The order `make -j1` sends in: `all`'s goals in order, each target after its
    prerequisites in listed order, a target already made skipped. Asserts there is no cycle
    (make would only warn and drop the edge)."""
    nodes = {node.dataset.name: node for node in plan.nodes}
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        assert name not in visiting, f"dependency cycle through {name!r}"
        visiting.add(name)
        for prerequisite in nodes[name].prerequisites:
            visit(prerequisite)
        visiting.discard(name)
        order.append(name)

    for root in plan.roots:
        visit(root)
    return order


def assert_respects_dependencies(sent: list[str], scenario: Scenario) -> None:
    assert sorted(sent) == sorted(scenario.selected)  # each exactly once, name intact
    position = {name: i for i, name in enumerate(sent)}
    for first, then in dependencies(scenario):
        assert position[first] < position[then], (first, then)


# --- plan and Makefile text ----------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_selection_respects_roots_and_excludes(scenario: Scenario) -> None:
    for name in scenario.inventory.datasets:
        under = any(name == r or name.startswith(r + "/") for r in scenario.roots)
        wanted = under and name not in scenario.excludes
        assert (name in scenario.selected) == wanted


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_generated_encryption_is_inherited(scenario: Scenario) -> None:
    """What the DAG rule relies on, and ZFS guarantees: below an encrypted dataset every
    dataset is encrypted (the generator must not produce anything else)."""
    for name, dataset in scenario.inventory.datasets.items():
        parent = parent_of(name)
        if parent is not None and scenario.inventory.datasets[parent].encrypted:
            assert dataset.encrypted, name


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_plan_edges_follow_encryption(scenario: Scenario) -> None:
    plan, chosen = scenario.plan, set(scenario.selected)
    names = [node.dataset.name for node in plan.nodes]
    assert Counter(names) == Counter(scenario.selected)  # every node exactly once
    nodes = {node.dataset.name: node for node in plan.nodes}
    deps = dependencies(scenario)
    for ancestor, name, encrypted in tree_edges(scenario):
        if encrypted:  # parent first
            assert ancestor in nodes[name].prerequisites
            assert name not in nodes[ancestor].prerequisites
        else:  # children first
            assert name in nodes[ancestor].prerequisites
            assert ancestor not in nodes[name].prerequisites
    for name, node in nodes.items():
        assert node.dataset == scenario.inventory.datasets[name]
        assert node.expected_bytes == expected_bytes(node.dataset)
        # exactly the edges above, nothing else, no duplicates
        assert len(set(node.prerequisites)) == len(node.prerequisites)
        assert set(node.prerequisites) == {first for first, then in deps if then == name}
        # largest subtree first (ties by name)
        sizes = [nodes[p].subtree_bytes for p in node.prerequisites]
        assert sizes == sorted(sizes, reverse=True)
        assert list(node.prerequisites) == largest_first(plan, list(node.prerequisites))
        # the subtree is the selection's tree, whichever way its edges point
        below = [n for n in names if nearest_selected_ancestor(n, chosen) == name]
        assert node.subtree_bytes == node.expected_bytes + sum(
            nodes[n].subtree_bytes for n in below
        )
    assert sum(len(node.prerequisites) for node in plan.nodes) == len(deps)
    nobody_depends_on = {n for n in names if not any(first == n for first, _ in deps)}
    assert len(set(plan.roots)) == len(plan.roots)
    assert set(plan.roots) == nobody_depends_on
    assert list(plan.roots) == largest_first(plan, nobody_depends_on)
    assert sorted(expected_order(plan)) == sorted(names)  # acyclic, `all` reaches everything
    assert plan.total_bytes == sum(node.expected_bytes for node in plan.nodes)


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_makefile_text_has_one_rule_per_dataset(scenario: Scenario) -> None:
    plan = scenario.plan
    makefile = render_makefile(plan, TEXT_SETTINGS, "t")
    rules = parse_rules(makefile)
    targets = {name: target_name(name) for name in scenario.selected}
    assert len(set(targets.values())) == len(targets)
    dataset_of = {t: n for n, t in targets.items()}
    nodes = {node.dataset.name: node for node in plan.nodes}
    send_rules = {t: r for t, r in rules.items() if t.startswith("send/")}
    assert set(send_rules) == set(dataset_of)
    assert set(rules) == {"all", "umount", *send_rules}
    assert rules["all"] == [[targets[root] for root in plan.roots]]
    assert rules["umount"] == [[]]
    deps = dependencies(scenario)
    for target, prerequisite_lists in send_rules.items():
        name = dataset_of[target]
        assert len(prerequisite_lists) == 1, target  # exactly once
        first, *prerequisites = prerequisite_lists[0]
        assert first == "umount"
        assert prerequisites == [targets[p] for p in nodes[name].prerequisites]
        assert {dataset_of[p] for p in prerequisites} == {f for f, t in deps if t == name}
    pools = sorted({name.split("/")[0] for name in scenario.selected})
    umount = [line for line in makefile.splitlines() if line.startswith("\t$(ZMAKE) umount")]
    assert umount == ["\t$(ZMAKE) umount -- " + " ".join(map(recipe_word, pools))]
    recipes = [line for line in makefile.splitlines() if line.startswith("\t$(ZMAKE) send")]
    assert Counter(shlex.split(r.replace("$$", "$"))[-1] for r in recipes) == Counter(
        scenario.selected
    )


# --- fixed trees --------------------------------------------------------------------------------


def inventory_of(rows: list[tuple[str, int, str]]) -> Inventory:
    """(name, bytes of its one snapshot, encryption) → the inventory zfs list/get describe."""
    listing = "".join(
        f"{name}\tfilesystem\t{i + 1}\t{i + 1}\t{size}\t{size}\t{size}\n"
        f"{name}@s\tsnapshot\t{i + 100}\t{i + 100}\t0\t{size}\t{size}\n"
        for i, (name, size, _) in enumerate(rows)
    )
    get = "".join(
        f"{name}\tencryption\t{encryption}\t{'default' if encryption == 'off' else '-'}\n"
        for name, _, encryption in rows
    )
    return parse_source(listing, get)


def prerequisites_of(plan: Plan) -> dict[str, tuple[str, ...]]:
    return {node.dataset.name: node.prerequisites for node in plan.nodes}


AES = "aes-256-gcm"
MIXED_TREE = [
    ("tank", 1, "off"),
    ("tank/secret", 10, AES),
    ("tank/secret/a", 500, AES),
    ("tank/secret/a/deep", 30, AES),
    ("tank/secret/b", 7000, AES),
    ("tank/plain", 2, "off"),
    ("tank/plain/own key", 40, AES),
    ("tank/plain/own key/x", 3, AES),
]


def test_encrypted_parents_come_first_unencrypted_ones_last() -> None:
    inventory = inventory_of(MIXED_TREE)
    plan = build_plan(inventory, select(inventory, ["tank"], []))
    assert prerequisites_of(plan) == {
        "tank": ("tank/secret", "tank/plain"),  # unencrypted: its children first
        "tank/secret": (),
        "tank/secret/a": ("tank/secret",),  # below an encrypted one: parent first
        "tank/secret/a/deep": ("tank/secret/a",),
        "tank/secret/b": ("tank/secret",),
        "tank/plain": ("tank/plain/own key",),
        "tank/plain/own key": (),
        "tank/plain/own key/x": ("tank/plain/own key",),
    }
    subtree = {node.dataset.name: node.subtree_bytes for node in plan.nodes}
    assert subtree["tank"] == 7586 and subtree["tank/secret"] == 7540
    assert plan.roots == ("tank", "tank/secret/b", "tank/secret/a/deep", "tank/plain/own key/x")
    assert expected_order(plan) == [
        "tank/secret",
        "tank/plain/own key",
        "tank/plain",
        "tank",
        "tank/secret/b",
        "tank/secret/a",
        "tank/secret/a/deep",
        "tank/plain/own key/x",
    ]


def test_an_encrypted_pool_root_sends_parents_first_everywhere() -> None:
    inventory = inventory_of(
        [("my pool", 0, AES), ("my pool/a", 5, AES), ("my pool/a/b", 9, AES), ("my pool/c", 1, AES)]
    )
    plan = build_plan(inventory, select(inventory, ["my pool"], []))
    assert prerequisites_of(plan) == {
        "my pool": (),
        "my pool/a": ("my pool",),
        "my pool/a/b": ("my pool/a",),
        "my pool/c": ("my pool",),
    }
    assert plan.roots == ("my pool/a/b", "my pool/c")
    assert expected_order(plan) == ["my pool", "my pool/a", "my pool/a/b", "my pool/c"]


def test_the_nearest_selected_ancestor_decides_the_direction() -> None:
    """An excluded encrypted dataset does not turn its children around (their nearest
    selected ancestor is not encrypted), and an excluded intermediate below an encrypted
    one does not either (theirs is)."""
    inventory = inventory_of(
        [
            ("tank", 1, "off"),
            ("tank/secret", 2, AES),
            ("tank/secret/a", 30, AES),
            ("tank/secret/b", 40, AES),
            ("tank/vault", 3, AES),
            ("tank/vault/mid", 4, AES),
            ("tank/vault/mid/c", 50, AES),
        ]
    )
    selected = select(inventory, ["tank"], ["tank/secret", "tank/vault/mid"])
    plan = build_plan(inventory, selected)
    assert prerequisites_of(plan) == {
        "tank": ("tank/vault", "tank/secret/b", "tank/secret/a"),
        "tank/secret/a": (),
        "tank/secret/b": (),
        "tank/vault": (),
        "tank/vault/mid/c": ("tank/vault",),
    }
    assert plan.roots == ("tank", "tank/vault/mid/c")


def test_selecting_below_an_unselected_encrypted_parent_has_no_edge() -> None:
    inventory = inventory_of(MIXED_TREE)
    plan = build_plan(inventory, select(inventory, ["tank/secret/a", "tank/secret/b"], []))
    assert prerequisites_of(plan) == {
        "tank/secret/a": (),
        "tank/secret/a/deep": ("tank/secret/a",),
        "tank/secret/b": (),
    }
    assert plan.roots == ("tank/secret/b", "tank/secret/a/deep")


def test_plan_nodes_are_a_valid_serial_order() -> None:
    inventory = inventory_of(MIXED_TREE)
    plan = build_plan(inventory, select(inventory, ["tank"], []))
    done: set[str] = set()
    for node in plan.nodes:
        assert set(node.prerequisites) <= done, (node.dataset.name, node.prerequisites)
        done.add(node.dataset.name)


def test_excluded_intermediate_keeps_its_children_under_the_grandparent() -> None:
    inventory = inventory_of(
        [
            ("tank", 1, "off"),
            ("tank/home", 10, "off"),
            ("tank/home/my data", 500, "off"),
            ("tank/home/vm:disk0", 7000, "off"),
            ("tank/home/my data/deep 50%", 30, "off"),
            ("tank/small", 2, "off"),
        ]
    )
    selected = select(inventory, ["tank"], ["tank/home", "tank/home/my data"])
    plan = build_plan(inventory, selected)
    nodes = {node.dataset.name: node for node in plan.nodes}
    assert nodes["tank"].prerequisites == (
        "tank/home/vm:disk0",
        "tank/home/my data/deep 50%",
        "tank/small",
    )
    assert plan.roots == ("tank",)
    makefile = render_makefile(plan, Settings("z", "", "ssh", "", "none", "c", "s"), "t")
    rule = parse_rules(makefile)[target_name("tank")][0]
    assert rule == ["umount", *map(target_name, nodes["tank"].prerequisites)]


def test_expected_bytes_full_then_incremental_or_after_the_common_snapshot() -> None:
    snapshots = tuple(
        Snapshot(f"tank/a b@s{i}", guid=i + 1, createtxg=10 * (i + 1), written=w, referenced=r)
        for i, (w, r) in enumerate([(700, 700), (30, 710), (5, 712), (100, 800)])
    )
    ds = Dataset(name="tank/a b", kind="filesystem", snapshots=snapshots)
    assert expected_bytes(ds) == 700 + 30 + 5 + 100
    assert expected_bytes(ds, None) == 700 + 30 + 5 + 100
    on_backup = RemoteDataset("b/a b", "filesystem", snapshots=(Snapshot("b/a b@s1", 2, 999),))
    assert expected_bytes(ds, on_backup) == 5 + 100
    unrelated = RemoteDataset("b/a b", "filesystem", snapshots=(Snapshot("b/a b@x", 99, 1),))
    assert expected_bytes(ds, unrelated) == 835
    assert expected_bytes(Dataset(name="tank/empty", kind="volume")) == 0


def test_build_plan_uses_the_backup_state_for_estimates() -> None:
    listing = (
        "tank\tfilesystem\t1\t1\t0\t0\t0\n"
        "tank/big\tfilesystem\t2\t2\t0\t0\t0\n"
        "tank/big@s1\tsnapshot\t3\t3\t0\t9000\t9000\n"
        "tank/big@s2\tsnapshot\t4\t4\t0\t9001\t1\n"
        "tank/new\tfilesystem\t5\t5\t0\t0\t0\n"
        "tank/new@s1\tsnapshot\t6\t6\t0\t50\t50\n"
    )
    inventory = parse_source(listing, "")
    chosen = select(inventory, ["tank"], [])
    assert build_plan(inventory, chosen).nodes[-1].prerequisites == ("tank/big", "tank/new")
    backup = RemoteDataset("b/big", "filesystem", snapshots=(Snapshot("b/big@s1", 3, 7),))
    plan = build_plan(inventory, chosen, {"tank/big": backup, "tank/new": None})
    assert plan.nodes[-1].prerequisites == ("tank/new", "tank/big")
    assert plan.total_bytes == 51


def test_select_errors() -> None:
    inventory = parse_source("tank\tfilesystem\t1\t1\t0\t0\t0\n", "")
    with pytest.raises(UsageError, match="no pool"):
        select(inventory, [], [])
    with pytest.raises(UsageError, match="no such dataset"):
        select(inventory, ["tank/nope"], [])
    with pytest.raises(UsageError, match="every dataset is excluded"):
        select(inventory, ["tank"], ["tank*"])


# --- target names ----------------------------------------------------------------------------


def assert_make_safe(target: str) -> None:
    assert target.startswith("send/")
    assert not FORBIDDEN_IN_TARGETS & set(target), target
    assert re.fullmatch(r"[A-Za-z0-9._/+-]+", target), target


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


SETTING_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from("\\#$ "),
        st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")),
    ),
    max_size=20,
)


def through_make(value: str, env: dict[str, str] | None = None) -> str:
    """What a recipe's environment receives for `X ?= make_value(value)`, exported."""
    makefile = f"X ?= {make_value(value)}\nexport V = $(X)\nall:\n\t@printf '%s' \"$$V\"\n"
    return run_make(["-s", "-f", "-"], stdin=makefile, env=env).stdout


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


# --- GNU make on the rendered Makefile ---------------------------------------------------------


def run_make(
    args: list[str],
    *,
    cwd: str | None = None,
    stdin: str | None = None,
    log: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS", "ZMAKE_"))}
    clean.update(env or {})
    if log is not None:
        clean["RECORDER_LOG"] = str(log)
    done = subprocess.run(
        ["make", *args], cwd=cwd, input=stdin, env=clean, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done


def read_log(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def run_recorded(recorders: Recorders, plan: Plan, jobs: int) -> list[dict[str, Any]]:
    """Every recorder call of `make -jJOBS` on the plan's Makefile, with ZMAKE overridden."""
    makefile = render_makefile(plan, render_settings(recorders), "test")
    with tempfile.TemporaryDirectory() as work:
        path = Path(work, "Makefile.zmake")
        path.write_text(makefile, encoding="utf-8")
        log = Path(work, "calls.jsonl")
        run_make([f"-j{jobs}", "-f", str(path), f"ZMAKE={recorders.override}"], cwd=work, log=log)
        return read_log(log)


def source_pools(scenario: Scenario) -> list[str]:
    return sorted({name.split("/")[0] for name in scenario.selected})


@MAKE_SETTINGS
@given(scenario=scenarios(max_datasets=7, dense=True))
def test_make_dry_run_lists_every_send_in_order(recorders: Recorders, scenario: Scenario) -> None:
    makefile = render_makefile(scenario.plan, render_settings(recorders), "test")
    with tempfile.TemporaryDirectory() as work:
        Path(work, "Makefile.zmake").write_text(makefile, encoding="utf-8")
        done = run_make(["-n", "-f", "Makefile.zmake"], cwd=work)
    commands = [shlex.split(line) for line in done.stdout.splitlines()]
    assert all(c[0] == str(recorders.default) for c in commands), done.stdout
    assert commands[0][1:] == ["umount", "--", *source_pools(scenario)]
    assert all(c[1:3] == ["send", "--"] and len(c) == 4 for c in commands[1:]), done.stdout
    sends = [c[3] for c in commands[1:]]
    assert_respects_dependencies(sends, scenario)
    assert sends == expected_order(scenario.plan)


@MAKE_SETTINGS
@given(scenario=scenarios(max_datasets=7, dense=True))
def test_make_runs_every_send_once_in_dependency_order(
    recorders: Recorders, scenario: Scenario
) -> None:
    calls = run_recorded(recorders, scenario.plan, jobs=1)
    assert all(c["argv0"] == recorders.override.name for c in calls)
    argvs = [c["argv"] for c in calls]
    assert argvs[0] == ["umount", "--", *source_pools(scenario)]
    assert all(a[:2] == ["send", "--"] and len(a) == 3 for a in argvs[1:]), argvs
    sent = [a[2] for a in argvs[1:]]
    assert_respects_dependencies(sent, scenario)
    assert sent == expected_order(scenario.plan)  # largest subtree first, as listed


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios(max_datasets=7, dense=True))
def test_parallel_make_respects_every_dependency(recorders: Recorders, scenario: Scenario) -> None:
    """With -j4 the order among independent targets is free, but a target starts only after
    its prerequisites finished: children before unencrypted parents, encrypted parents
    before their children."""
    argvs = [c["argv"] for c in run_recorded(recorders, scenario.plan, jobs=4)]
    assert argvs[0] == ["umount", "--", *source_pools(scenario)]
    assert all(a[:2] == ["send", "--"] and len(a) == 3 for a in argvs[1:]), argvs
    assert_respects_dependencies([a[2] for a in argvs[1:]], scenario)


@pytest.mark.parametrize("jobs", [1, 4])
def test_make_sends_the_mixed_tree_in_dependency_order(recorders: Recorders, jobs: int) -> None:
    inventory = inventory_of([*MIXED_TREE, ("my pool", 5, AES), ("my pool/x y", 6, AES)])
    selected = select(inventory, ["tank", "my pool"], [])
    scenario = Scenario(
        inventory, ["tank", "my pool"], [], selected, build_plan(inventory, selected)
    )
    argvs = [c["argv"] for c in run_recorded(recorders, scenario.plan, jobs)]
    assert argvs[0] == ["umount", "--", "my pool", "tank"]
    sent = [a[2] for a in argvs[1:]]
    assert_respects_dependencies(sent, scenario)
    if jobs == 1:
        assert sent == [
            "tank/secret",
            "tank/plain/own key",
            "tank/plain",
            "tank",
            "tank/secret/b",
            "tank/secret/a",
            "tank/secret/a/deep",
            "my pool",
            "my pool/x y",
            "tank/plain/own key/x",
        ]


def test_make_passes_settings_to_zmake_send(recorders: Recorders) -> None:
    tree = GenTree("tank")
    listing = "tank\tfilesystem\t1\t1\t0\t0\t0\ntank/my data\tfilesystem\t2\t2\t0\t0\t0\n"
    inventory = parse_source(listing, "")
    plan = build_plan(inventory, select(inventory, [tree.pool], []))
    ssh = "ssh -o 'ProxyCommand=nc %h %p' -F my\\ cfg -p 2222 #$HOME"
    makefile = render_makefile(
        plan,
        render_settings(
            recorders, remote="me@backup.example", ssh=ssh, dest="b:ack", compress="zstd"
        ),
        "test",
    )
    with tempfile.TemporaryDirectory() as work:
        path = Path(work, "Makefile.zmake")
        path.write_text(makefile, encoding="utf-8")
        log = Path(work, "calls.jsonl")
        run_make(["-f", str(path)], cwd=work, log=log)
        default_calls = read_log(log)
        log.unlink()
        run_make(["-f", str(path), "REMOTE=other", "COMPRESS=none"], cwd=work, log=log)
        override_calls = read_log(log)
    assert [c["argv0"] for c in default_calls] == ["zmake-default"] * 3
    env = default_calls[-1]["env"]
    assert env == {
        "ZMAKE_REMOTE": "me@backup.example",
        "ZMAKE_SSH": ssh,
        "ZMAKE_DEST": "b:ack",
        "ZMAKE_COMPRESS": "zstd",
    }
    assert [c["argv"] for c in default_calls] == [
        ["umount", "--", "tank"],
        ["send", "--", "tank/my data"],
        ["send", "--", "tank"],
    ]
    overridden = override_calls[-1]["env"]
    assert (overridden["ZMAKE_REMOTE"], overridden["ZMAKE_COMPRESS"]) == ("other", "none")


@settings(max_examples=10, deadline=None)
@given(trees(max_datasets=4))
def test_makefile_header_and_defaults(tree: GenTree) -> None:
    inventory = parse_source(tree.list_output(), tree.get_output())
    plan = build_plan(inventory, select(inventory, [tree.pool], []))
    settings_ = Settings("zmake", "", "ssh", "", "none", "zmake generate x", "capture f")
    makefile = render_makefile(plan, settings_, "9.9")
    assert makefile.startswith("# Generated by zmake 9.9.")
    assert "zmake generate x" in makefile.splitlines()[1]
    assert ".DEFAULT_GOAL := all" in makefile
    for variable in ("ZMAKE", "REMOTE", "SSH", "DEST", "COMPRESS"):
        assert re.search(rf"^{variable} \?= ", makefile, re.MULTILINE)
