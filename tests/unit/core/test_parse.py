"""zmake/core/parse.py against generated `zfs list/get -H -p` text: round trips and clear errors."""

from __future__ import annotations

import shlex

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.support.zfsgen import (
    GenRemote,
    GenTree,
    components,
    forest_get_output,
    forest_list_output,
    forests,
    received_copy,
    remote_list_output,
    trees,
)
from zmake.core.errors import ParseError
from zmake.core.model import FILESYSTEM, VOLUME, Dataset, Snapshot, dest_name, parent_of
from zmake.core.parse import (
    BACKUP_LIST_PROPS,
    SOURCE_LIST_PROPS,
    Capture,
    parse_backup,
    parse_capture,
    parse_local_dataset,
    parse_source,
    render_capture,
)
from zmake.sides.zfs_argv import source_get_argv, source_list_argv

NUMERIC_LIST_COLUMNS = [p for p in SOURCE_LIST_PROPS if p not in ("name", "type")]
HUMAN_VALUES = ("1.50G", "512K", "12M", "0B", "none", "", "1e3", "4,096", "0x10")


# --- parse_source ---------------------------------------------------------------------------


@given(forests())
def test_parse_source_reads_every_dataset_and_snapshot(pools: list[GenTree]) -> None:
    inventory = parse_source(forest_list_output(pools), forest_get_output(pools))
    expected = {name: ds for tree in pools for name, ds in tree.expected().items()}
    assert inventory.datasets == expected


@given(trees())
def test_parse_source_orders_parents_before_children(tree: GenTree) -> None:
    names = list(parse_source(tree.list_output(), tree.get_output()).datasets)
    for index, name in enumerate(names):
        parent = parent_of(name)
        if parent is not None:
            assert names.index(parent) < index


@given(trees())
def test_parse_source_snapshots_are_oldest_first(tree: GenTree) -> None:
    for dataset in parse_source(tree.list_output(), tree.get_output()).datasets.values():
        txgs = [s.createtxg for s in dataset.snapshots]
        assert txgs == sorted(txgs)
        assert all(s.name.partition("@")[0] == dataset.name for s in dataset.snapshots)


@given(trees())
def test_parse_source_does_not_depend_on_line_order(tree: GenTree) -> None:
    """`-s createtxg` is what zfs is asked for, but nothing may depend on it."""
    lines = tree.list_output().splitlines(keepends=True)
    shuffled = "".join(reversed(lines))
    assert parse_source(shuffled, tree.get_output()) == parse_source(
        tree.list_output(), tree.get_output()
    )


def test_parse_source_volume_has_no_mountpoint() -> None:
    inventory = parse_source(
        "tank\tfilesystem\t1\t1\t100\t50\t50\t-\ntank/vm:disk0\tvolume\t2\t5\t30\t30\t30\t-\n",
        "tank\tmountpoint\t/tank\tdefault\ntank\tencryption\toff\tdefault\n"
        "tank/vm:disk0\tmountpoint\t-\t-\ntank/vm:disk0\tencryption\taes-256-gcm\t-\n",
    )
    volume = inventory.datasets["tank/vm:disk0"]
    assert volume.kind == VOLUME
    assert volume.mountpoint is None
    assert not volume.mountpoint_is_local
    assert volume.encrypted


def test_parse_source_mountpoint_sources() -> None:
    inventory = parse_source(
        "tank\tfilesystem\t1\t1\t0\t0\t0\t-\n"
        "tank/home\tfilesystem\t2\t2\t0\t0\t0\t-\n"
        "tank/home/my data\tfilesystem\t3\t3\t0\t0\t0\t-\n",
        "tank\tmountpoint\t/tank\tdefault\n"
        "tank/home\tmountpoint\t/home\tlocal\n"
        "tank/home/my data\tmountpoint\t/home/my data\tinherited from tank/home\n",
    )
    home, data = inventory.datasets["tank/home"], inventory.datasets["tank/home/my data"]
    assert (home.mountpoint, home.mountpoint_is_local) == ("/home", True)
    assert data.mountpoint == "/home/my data"
    assert data.mountpoint_source == "inherited from tank/home"
    assert not data.mountpoint_is_local
    assert not inventory.datasets["tank"].mountpoint_is_local


# --- parse_local_dataset ------------------------------------------------------------------------


@given(st.data())
def test_parse_local_dataset_matches_the_batched_parse(data: st.DataObject) -> None:
    tree = data.draw(trees())
    name = data.draw(st.sampled_from(tree.names))
    dataset = parse_local_dataset(tree.local_get_output(name), name)
    assert dataset == tree.expected()[name]


def test_parse_local_dataset_rejects_a_snapshot_name() -> None:
    text = "tank/a@s1\ttype\tsnapshot\t-\n"
    with pytest.raises(ParseError, match="snapshot"):
        parse_local_dataset(text, "tank/a@s1")


def test_parse_local_dataset_reports_a_missing_dataset() -> None:
    with pytest.raises(ParseError, match="tank/my data"):
        parse_local_dataset("", "tank/my data")


def test_parse_local_dataset_reports_a_missing_property() -> None:
    text = "tank/a\ttype\tfilesystem\t-\ntank/a\tused\t0\t-\n"
    with pytest.raises(ParseError, match="referenced"):
        parse_local_dataset(text, "tank/a")


# --- parse_backup -----------------------------------------------------------------------------


@st.composite
def remote_trees(draw: st.DrawFn) -> tuple[str, list[GenRemote]]:
    """The backup's view of a source tree: some datasets received (with some of their
    snapshots, re-numbered in the backup's txgs), tokens and placeholders here and there."""
    tree = draw(trees())
    dest = draw(st.sampled_from(("backup", "b:2", "rx.pool")))
    remotes = []
    txg = draw(st.integers(1, 10**6))
    for source in tree.datasets:
        if not draw(st.booleans()):
            continue
        snapshots = []
        for snap in source.model().snapshots:
            if draw(st.booleans()):
                txg += draw(st.integers(1, 9))
                snapshots.append(received_copy(snap, dest, txg))
        name = dest_name(source.name, dest)
        remotes.append(
            GenRemote(
                name=name,
                kind=source.kind,
                referenced=draw(st.integers(0, 2**40)),
                written=draw(st.integers(0, 2**20)),
                token=draw(st.sampled_from((None, "1-e604ea4bf-e0-789c63a2"))),
                encryption=source.encryption,
                snapshots=tuple(snapshots),
                guid=draw(st.integers(1, 2**64 - 1)),
                encryption_root=dest_name(source.encryption_root, dest)
                if source.encryption_root
                else None,
                placeholder=not snapshots and draw(st.booleans()),
                mounted=source.kind == FILESYSTEM and draw(st.booleans()),
            )
        )
    return dest, remotes


@given(remote_trees())
def test_parse_backup_round_trip(generated: tuple[str, list[GenRemote]]) -> None:
    _, remotes = generated
    parsed = parse_backup(remote_list_output(remotes))
    assert parsed == {r.name: r.model() for r in remotes}


def test_parse_backup_token_dash_means_none() -> None:
    row = ["backup/x", FILESYSTEM, "1", "2", "100", "0", "-", "off", "-", "-", "no", "off", "-"]
    parsed = parse_backup("\t".join(row) + "\n")
    assert parsed["backup/x"].resume_token is None
    assert not parsed["backup/x"].placeholder and not parsed["backup/x"].mounted
    assert not parsed["backup/x"].readonly
    row[-2] = "on"
    assert parse_backup("\t".join(row) + "\n")["backup/x"].readonly


def backup_row(name: str, kind: str, guid: str, txg: str, creation: str) -> list[str]:
    """A row of the backup side's list: mounted no, readonly on, nothing else set."""
    mounted, readonly = ("no", "on") if kind == FILESYSTEM else ("-", "-")
    return [name, kind, guid, txg, "1", "0", "-", "off", "-", "-", mounted, readonly, creation]


def test_a_backup_snapshot_keeps_its_creation() -> None:
    """A received snapshot carries the source's `creation`: a pushed backup's age."""
    rows = [
        backup_row("backup/x", FILESYSTEM, "1", "2", "1700000000"),
        backup_row("backup/x@a", "snapshot", "10", "3", "1690000000"),
        backup_row("backup/x@b", "snapshot", "11", "4", "-"),
    ]
    parsed = parse_backup("".join("\t".join(row) + "\n" for row in rows))["backup/x"]
    assert [s.creation for s in parsed.snapshots] == [1690000000, 0]
    rows[1][-1] = "soon"
    with pytest.raises(ParseError):
        parse_backup("".join("\t".join(row) + "\n" for row in rows))


@pytest.mark.parametrize(
    ("value", "placeholder"),
    [("backup/x", True), ("backup", False), ("-", False), ("on", False)],
    ids=["its own name", "inherited from a placeholder above", "unset", "another value"],
)
def test_only_a_placeholder_mark_naming_the_dataset_itself_counts(
    value: str, placeholder: bool
) -> None:
    """Children inherit user properties: a mark naming the parent must not make them one."""
    row = ["backup/x", FILESYSTEM, "1", "2", "100", "0", "-", "off", "-", value, "no", "on", "-"]
    assert parse_backup("\t".join(row) + "\n")["backup/x"].placeholder is placeholder


def test_parse_backup_snapshots_sorted_by_backup_txg() -> None:
    rows = [
        ["backup/x", FILESYSTEM, "1", "2", "100", "0", "-", "off", "-", "-", "yes", "on", "-"],
        ["backup/x@b", "snapshot", "20", "900", "1", "0", "-", "off", "-", "-", "-", "-", "-"],
        ["backup/x@a", "snapshot", "10", "800", "1", "0", "-", "off", "-", "-", "-", "-", "-"],
    ]
    parsed = parse_backup("".join("\t".join(r) + "\n" for r in rows))
    assert [s.short for s in parsed["backup/x"].snapshots] == ["a", "b"]
    assert parsed["backup/x"].snapshots[0] == Snapshot("backup/x@a", 10, 800)


# --- captures -------------------------------------------------------------------------------


@given(
    forests(),
    st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")),
        max_size=30,
    ),
)
def test_capture_round_trip(pools: list[GenTree], version: str) -> None:
    names = tuple(tree.pool for tree in pools)
    capture = Capture(
        zfs_version=version,
        pools=names,
        list_output=forest_list_output(pools),
        get_output=forest_get_output(pools),
    )
    text = render_capture(
        capture, shlex.join(source_list_argv(names)), shlex.join(source_get_argv(names))
    )
    assert parse_capture(text) == capture
    assert parse_source(capture.list_output, capture.get_output) == parse_source(
        parse_capture(text).list_output, parse_capture(text).get_output
    )


def test_capture_header_records_the_commands() -> None:
    capture = Capture("zfs-2.3.2-1", ("tank",), "", "")
    list_cmd = shlex.join(source_list_argv(["tank"]))
    text = render_capture(capture, list_cmd, "zfs get …")
    assert f"# list-command: {list_cmd}\n" in text
    assert "# zfs-version: zfs-2.3.2-1\n" in text


def test_capture_without_newline_at_end_still_parses() -> None:
    capture = Capture("v", ("tank",), "tank\tfilesystem\t1\t1\t0\t0\t0", "")
    parsed = parse_capture(render_capture(capture, "l", "g"))
    assert parsed.list_output == "tank\tfilesystem\t1\t1\t0\t0\t0\n"


def test_not_a_capture() -> None:
    with pytest.raises(ParseError, match=r"my file\.zcap: not a zmake capture"):
        parse_capture("tank\tfilesystem\t1\n", origin="my file.zcap")


def test_capture_missing_section() -> None:
    with pytest.raises(ParseError, match="### zfs get"):
        parse_capture("# zmake capture v1\n### zfs list\n")


# --- malformed lines ---------------------------------------------------------------------------


@st.composite
def broken_field_counts(draw: st.DrawFn) -> tuple[str, list[str], int]:
    """A zfs list output where one line lost or gained a field: (text, lines, broken index)."""
    tree = draw(trees())
    lines = tree.list_output().splitlines()
    index = draw(st.integers(0, len(lines) - 1))
    fields = lines[index].split("\t")
    if draw(st.booleans()):
        fields.pop(draw(st.integers(0, len(fields) - 1)))
    else:
        fields.insert(draw(st.integers(0, len(fields))), draw(st.sampled_from(("", "0", "x y"))))
    lines[index] = "\t".join(fields)
    return "\n".join(lines) + "\n", lines, index


@given(broken_field_counts())
def test_wrong_field_count_names_the_line(broken: tuple[str, list[str], int]) -> None:
    text, lines, index = broken
    with pytest.raises(ParseError) as caught:
        parse_source(text, "")
    message = str(caught.value)
    assert f"line {index + 1}:" in message
    assert repr(lines[index]) in message


@given(trees(), st.data())
def test_wrong_field_count_in_zfs_get_names_the_line(tree: GenTree, data: st.DataObject) -> None:
    lines = tree.get_output().splitlines()
    index = data.draw(st.integers(0, len(lines) - 1))
    lines[index] = lines[index].rpartition("\t")[0]  # the source column went missing
    with pytest.raises(ParseError) as caught:
        parse_source(tree.list_output(), "\n".join(lines))
    assert f"line {index + 1}:" in str(caught.value)
    assert repr(lines[index]) in str(caught.value)


@given(trees(), st.data())
def test_non_numeric_column_names_the_line(tree: GenTree, data: st.DataObject) -> None:
    """What zfs prints without -p (or any other junk) in a numeric column is an error."""
    lines = tree.list_output().splitlines()
    index = data.draw(st.integers(0, len(lines) - 1))
    column = data.draw(st.sampled_from(NUMERIC_LIST_COLUMNS))
    fields = lines[index].split("\t")
    fields[SOURCE_LIST_PROPS.index(column)] = data.draw(st.sampled_from(HUMAN_VALUES))
    lines[index] = "\t".join(fields)
    with pytest.raises(ParseError) as caught:
        parse_source("\n".join(lines), tree.get_output())
    message = str(caught.value)
    assert repr(lines[index]) in message
    assert column in message


@pytest.mark.parametrize("column", ["guid", "createtxg", "referenced", "written"])
def test_non_numeric_remote_column_names_the_line(column: str) -> None:
    row = dict(zip(BACKUP_LIST_PROPS, backup_row("backup/my data", FILESYSTEM, "1", "2", "5"),
                   strict=True))  # fmt: skip
    row[column] = "1.5K"
    line = "\t".join(row[p] for p in BACKUP_LIST_PROPS)
    with pytest.raises(ParseError) as caught:
        parse_backup(line + "\n")
    assert repr(line) in str(caught.value)
    assert column in str(caught.value)


def test_remote_wrong_field_count_names_the_line() -> None:
    good = "\t".join(
        ["backup/a", FILESYSTEM, "1", "2", "3", "4", "-", "off", "-", "-", "no", "on", "-"]
    )
    bad = "backup/a@s\tsnapshot\t1\t2"
    with pytest.raises(ParseError, match=r"backup zfs list line 2: .*'backup/a@s"):
        parse_backup(f"{good}\n{bad}\n")


def test_non_numeric_local_property_names_the_dataset() -> None:
    text = "".join(
        f"tank/my data\t{prop}\t{value}\t-\n"
        for prop, value in [
            ("type", "filesystem"),
            ("guid", "1"),
            ("createtxg", "2"),
            ("written", "0"),
            ("referenced", "12.5M"),
            ("used", "0"),
            ("mountpoint", "/x"),
            ("encryption", "off"),
        ]
    )
    with pytest.raises(ParseError, match=r"referenced.*tank/my data"):
        parse_local_dataset(text, "tank/my data")


@pytest.mark.parametrize("kind", ["hold", "FILESYSTEM", ""])
def test_unexpected_type_is_an_error(kind: str) -> None:
    with pytest.raises(ParseError, match="unexpected type"):
        parse_source(f"tank/x\t{kind}\t1\t2\t3\t4\t5\t-\n", "")


def test_bookmarks_belong_to_their_dataset() -> None:
    text = (
        "tank/x\tfilesystem\t1\t2\t3\t4\t5\t-\n"
        "tank/x@a\tsnapshot\t10\t3\t0\t4\t4\t-\n"
        "tank/x#zmake-k-3\tbookmark\t10\t3\t-\t4\t-\t-\n"
    )
    dataset = parse_source(text, "").datasets["tank/x"]
    assert dataset.bookmarks == (Snapshot("tank/x#zmake-k-3", 10, 3),)
    assert dataset.bookmarks[0].is_bookmark and dataset.bookmarks[0].label == "#zmake-k-3"


def test_blank_lines_are_ignored_but_counted() -> None:
    text = "tank\tfilesystem\t1\t1\t0\t0\t0\t-\n\ntank/a\tfilesystem\t2\n"
    with pytest.raises(ParseError, match="line 3:"):
        parse_source(text, "")


@given(components())
def test_dataset_names_with_any_legal_character_survive(component: str) -> None:
    name = f"tank/{component}"
    inventory = parse_source(
        f"tank\tfilesystem\t1\t1\t0\t0\t0\t-\n{name}\tfilesystem\t2\t2\t0\t0\t0\t-\n"
        f"{name}@{component}\tsnapshot\t3\t3\t0\t0\t0\t-\n",
        f"{name}\tmountpoint\t/{component}\tlocal\n",
    )
    dataset = inventory.datasets[name]
    assert dataset == Dataset(
        name=name,
        kind=FILESYSTEM,
        mountpoint=f"/{component}",
        mountpoint_source="local",
        snapshots=(Snapshot(f"{name}@{component}", 3, 3),),
    )


@settings(max_examples=20)
@given(trees())
def test_parse_source_ignores_trailing_newline_and_empty_get(tree: GenTree) -> None:
    """Without the zfs get lines every filesystem falls back to an unknown, non-local mountpoint."""
    inventory = parse_source(tree.list_output().rstrip("\n"), "")
    assert list(inventory.datasets) == sorted(tree.names, key=lambda n: n.split("/"))
    assert not any(d.mountpoint_is_local or d.encrypted for d in inventory.datasets.values())


NOT_PLAIN_DIGITS = ["1_000", " 12", "12 ", "+5", "-1", "1.0", "\u0661\u0662", "\u00b2", "\uff11"]


@pytest.mark.parametrize("value", NOT_PLAIN_DIGITS)
def test_only_plain_digits_are_numbers(value: str) -> None:
    """`zfs -p` prints plain ASCII digits; int() would also take `_`, blanks, signs and
    other scripts' digits, which would hide output that is not what zmake asked for."""
    with pytest.raises(ParseError, match="not a number"):
        parse_source(f"tank\tfilesystem\t1\t1\t{value}\t0\t0\t-\n", "")
    row = dict.fromkeys(BACKUP_LIST_PROPS, "0") | {"name": "b/x", "type": "filesystem"}
    with pytest.raises(ParseError, match="not a number"):
        parse_backup("\t".join({**row, "referenced": value}.values()) + "\n")
    text = "".join(
        f"tank/a\t{prop}\t{value if prop == 'used' else val}\t-\n"
        for prop, val in [
            ("type", "filesystem"),
            ("guid", "1"),
            ("createtxg", "1"),
            ("written", "0"),
            ("referenced", "0"),
            ("used", "0"),
            ("mountpoint", "/a"),
            ("encryption", "off"),
        ]
    )
    with pytest.raises(ParseError, match="not a number"):
        parse_local_dataset(text, "tank/a")


@pytest.mark.parametrize("value", ["0", "007", str(2**64 - 1)])
def test_plain_digits_are_numbers(value: str) -> None:
    inventory = parse_source(f"tank\tfilesystem\t1\t1\t{value}\t0\t0\t-\n", "")
    assert inventory.datasets["tank"].used == int(value)


# Everything str.splitlines() breaks at besides "\n"; a mountpoint may hold any of them.
LINE_BREAKS = ["\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("char", LINE_BREAKS)
def test_mountpoint_with_unusual_line_breaks(char: str) -> None:
    mountpoint = f"/srv/a{char}b{char}"
    listing = "tank\tfilesystem\t1\t1\t0\t0\t0\t-\n"
    get = f"tank\tmountpoint\t{mountpoint}\tlocal\ntank\tencryption\toff\tdefault\n"
    inventory = parse_source(listing, get)
    assert inventory.datasets["tank"].mountpoint == mountpoint
    capture = parse_capture(render_capture(Capture("v", ("tank",), listing, get), "l", "g"))
    assert (capture.list_output, capture.get_output) == (listing, get)
    assert parse_source(capture.list_output, capture.get_output) == inventory
    local = "".join(
        f"tank\t{prop}\t{val}\t-\n"
        for prop, val in [
            ("type", "filesystem"),
            ("guid", "1"),
            ("createtxg", "1"),
            ("written", "0"),
            ("referenced", "0"),
            ("used", "0"),
        ]
    )
    assert parse_local_dataset(local + get, "tank").mountpoint == mountpoint


def test_capture_header_separates_pools_with_tabs() -> None:
    """Pool names may hold spaces (`zpool create 'my pool' …`), never a tab."""
    capture = Capture("v", ("my pool", "tank", "x "), "", "")
    text = render_capture(capture, "l", "g")
    assert "# pools: my pool\ttank\tx \n" in text.splitlines(keepends=True)
    assert parse_capture(text) == capture
    assert parse_capture(render_capture(Capture("v", (), "", ""), "l", "g")).pools == ()


def test_a_capture_recorded_before_creation_times_reads_them_as_unknown() -> None:
    """Captures written by earlier zmake (e.g. sample-pools/) list seven columns: their
    snapshots' creation is unknown (0), said so, never guessed."""
    legacy = "zfs list -H -p -o name,type,guid,createtxg,used,referenced,written -t all -r tank"
    listing = "tank\tfilesystem\t1\t1\t0\t0\t0\ntank@s\tsnapshot\t2\t2\t0\t0\t0\n"
    text = render_capture(Capture("v", ("tank",), listing, ""), legacy, "zfs get …")
    capture = parse_capture(text)
    snapshot = parse_source(capture.list_output, capture.get_output).datasets["tank"].snapshots[0]
    assert snapshot.guid == 2 and snapshot.creation == 0
    current = render_capture(Capture("v", ("tank",), capture.list_output, ""),
                             " ".join(source_list_argv(["tank"])), "zfs get …")  # fmt: skip
    assert parse_capture(current).list_output == capture.list_output  # not extended twice
