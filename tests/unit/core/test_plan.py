"""The selection and the dataset DAG (core/plan.py): roots and excludes, children before
parents except where encryption reverses them, estimates."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings

from tests.unit.support.plans import (
    AES,
    MIXED_TREE,
    Rule,
    Scenario,
    dependencies,
    expected_order,
    inventory_of,
    largest_first,
    nearest_selected_ancestor,
    parse_makefile,
    prerequisites_of,
    scenarios,
    tree_edges,
)
from zmake.core.errors import UsageError
from zmake.core.model import (
    BackupDataset,
    Dataset,
    Snapshot,
    parent_of,
)
from zmake.core.parse import parse_source
from zmake.core.plan import Selection, build_plan, expected_bytes, select
from zmake.core.render import (
    RenderSettings,
    render_makefile,
)


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
    makefile = parse_makefile(
        render_makefile(plan, RenderSettings("z", "", "ssh", "", "none", "c", "s"), "t")
    )
    assert makefile.rule("send/tank") == Rule(["$(STAMPS)/tank@100"], [])
    rule = makefile.rule("$(STAMPS)/tank@100")
    umount_stamp = makefile.rule("umount").prerequisites[0]
    assert rule.prerequisites == []
    assert rule.order_only == [
        umount_stamp,
        "send/tank/home/vm+3Adisk0",
        "send/tank/home/my+20data/deep+2050+25",
        "send/tank/small",
    ]
    assert makefile.rule("send/tank/home/my+20data/deep+2050+25") == Rule(
        ["$(STAMPS)/tank/home/my+20data/deep+2050+25@104"], []
    )


def test_expected_bytes_full_then_incremental_or_after_the_common_snapshot() -> None:
    snapshots = tuple(
        Snapshot(f"tank/a b@s{i}", guid=i + 1, createtxg=10 * (i + 1), written=w, referenced=r)
        for i, (w, r) in enumerate([(700, 700), (30, 710), (5, 712), (100, 800)])
    )
    ds = Dataset(name="tank/a b", kind="filesystem", snapshots=snapshots)
    assert expected_bytes(ds) == 700 + 30 + 5 + 100
    assert expected_bytes(ds, None) == 700 + 30 + 5 + 100
    on_backup = BackupDataset("b/a b", "filesystem", snapshots=(Snapshot("b/a b@s1", 2, 999),))
    assert expected_bytes(ds, on_backup) == 5 + 100
    unrelated = BackupDataset("b/a b", "filesystem", snapshots=(Snapshot("b/a b@x", 99, 1),))
    assert expected_bytes(ds, unrelated) == 835
    assert expected_bytes(Dataset(name="tank/empty", kind="volume")) == 0


def test_build_plan_uses_the_backup_state_for_estimates() -> None:
    listing = (
        "tank\tfilesystem\t1\t1\t0\t0\t0\t-\n"
        "tank/big\tfilesystem\t2\t2\t0\t0\t0\t-\n"
        "tank/big@s1\tsnapshot\t3\t3\t0\t9000\t9000\t-\n"
        "tank/big@s2\tsnapshot\t4\t4\t0\t9001\t1\t-\n"
        "tank/new\tfilesystem\t5\t5\t0\t0\t0\t-\n"
        "tank/new@s1\tsnapshot\t6\t6\t0\t50\t50\t-\n"
    )
    inventory = parse_source(listing, "")
    chosen = select(inventory, ["tank"], [])
    assert build_plan(inventory, chosen).nodes[-1].prerequisites == ("tank/big", "tank/new")
    backup = BackupDataset("b/big", "filesystem", snapshots=(Snapshot("b/big@s1", 3, 7),))
    plan = build_plan(inventory, chosen, {"tank/big": backup, "tank/new": None})
    assert plan.nodes[-1].prerequisites == ("tank/new", "tank/big")
    assert plan.total_bytes == 51


def test_select_errors() -> None:
    inventory = parse_source("tank\tfilesystem\t1\t1\t0\t0\t0\t-\n", "")
    with pytest.raises(UsageError, match="no pool"):
        select(inventory, [], [])
    with pytest.raises(UsageError, match="no such dataset"):
        select(inventory, ["tank/nope"], [])
    with pytest.raises(UsageError, match="every dataset is excluded"):
        select(inventory, ["tank"], ["tank*"])


def test_selection_is_roots_minus_exclusions() -> None:
    selection = Selection(("tank/home", "tank/vm"), ("tank/home/tmp", "tank/vm/old*"))
    assert "tank/home" in selection and "tank/home/alice" in selection
    assert "tank/home/tmp" not in selection and "tank/home/tmp/x" in selection  # not children
    assert "tank/vm/old" not in selection and "tank/vm/old/x" not in selection  # a glob does
    assert "tank" not in selection and "tank/homes" not in selection
    assert 42 not in selection
