"""zmake/core/token.py: resume tokens as OpenZFS writes them, decoded without a zfs call."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zmake.core.decide import resumable
from zmake.core.errors import ParseError
from zmake.core.model import FILESYSTEM, Dataset, Snapshot
from zmake.core.token import ResumeToken, decode, encode

# Printed by OpenZFS 2.3.2 in the guest: `zfs send -L -c -i s/a#b1 s/a@2 | head -c 300000 |
# zfs recv -s …` (an incremental from a bookmark); `zfs send -nvP -t` showed these fields.
REAL_INCREMENTAL = (
    "1-dbbc4a735-f8-789c636064000310a501c49c50360710a715e5e7a69766a63040c19b067635fb32ef1a0520"
    "9b1d495d7e52566a7209034303541d867c5a5a716a094886092ecf86249f5459925a0ca40f48b360d55f920f71"
    "c5e10b8b7e040a7db98e2ccf0996cf4bcc4d656028d64f743082eae76640f82b393fb7a028b5b8383f9b010e00"
    "1b692077"
)
# A full stream's token from the OpenZFS test suite's published example (no fromguid).
PUBLISHED_FULL = (
    "1-badbdec4c-c0-789c636064000310a500c4ec50360710e72765a52697303028439460caa7a515a79630c00148"
    "9e0d493ea9b224b518486fd0c2aebf243fbd343305a86edbd65e4f45a6650648f29c60f9bcc4dc54209d5b5095"
    "56ec50945a9093a96b646064a06b60aa6b6006361300c1bf18b7"
)


def test_a_real_incremental_token() -> None:
    token = decode(REAL_INCREMENTAL)
    assert token.toname == "s/a@2"
    assert (token.toguid, token.fromguid) == (0xD7F41251F8A2D0C3, 0x7C4B763F260780EC)
    assert token.incremental and not token.raw and token.flags == {"compressok"}
    assert token.needed_guids == {0xD7F41251F8A2D0C3, 0x7C4B763F260780EC}


def test_a_full_token() -> None:
    token = decode(PUBLISHED_FULL)
    assert (token.toname, token.toguid) == ("tmpzfs@repli-2020-05-06", 0xA60221498DB5B662)
    assert not token.incremental and token.needed_guids == {0xA60221498DB5B662}


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "1-abc-def",
        "2-" + REAL_INCREMENTAL[2:],  # another version
        REAL_INCREMENTAL[:-8],  # cut: checksum mismatch
        REAL_INCREMENTAL.replace("-f8-", "-f0-"),  # wrong length
        "1-0-10-zz",
        "1-0-10-00",
    ],
)
def test_anything_else_is_a_parse_error(bad: str) -> None:
    with pytest.raises(ParseError, match="resume token"):
        decode(bad)


NAMES = st.text(st.characters(codec="utf-8", exclude_characters="\0"), min_size=1, max_size=60)
GUIDS = st.integers(1, 2**64 - 1)


@given(
    GUIDS,
    NAMES,
    st.one_of(st.just(0), GUIDS),
    st.booleans(),
    st.frozensets(st.sampled_from(["embedok", "compressok", "largeblockok", "savedok"])),
)
def test_encode_and_decode_are_inverse(
    toguid: int, toname: str, fromguid: int, raw: bool, flags: frozenset[str]
) -> None:
    marks = flags | ({"rawok"} if raw else set())
    token = ResumeToken(toguid, toname, fromguid, raw=raw, flags=marks)
    decoded = decode(encode(token))
    assert decoded == token
    written = {"object", "offset", "bytes", "toguid", "toname"} | (
        {"fromguid"} if fromguid else set()
    )
    assert decoded.names == written | marks


def test_a_pair_of_another_type_is_named_not_taken_for_a_flag() -> None:
    token = ResumeToken(7, "tank/a@b", names=frozenset({"savedok"}))
    decoded = decode(encode(token))
    assert "savedok" in decoded.names and "savedok" not in decoded.flags


def test_encode_writes_what_zfs_writes() -> None:
    """Byte for byte the real token's payload, but for the object/offset/bytes zmake zeroes."""
    real = decode(REAL_INCREMENTAL)
    assert decode(encode(real)) == real
    assert encode(real).split("-")[2] == REAL_INCREMENTAL.split("-")[2]  # same length


def dataset(snapshots: list[int], bookmarks: tuple[int, ...] = ()) -> Dataset:
    return Dataset(
        name="s/a",
        kind=FILESYSTEM,
        snapshots=tuple(Snapshot(f"s/a@{g}", g, g) for g in snapshots),
        bookmarks=tuple(Snapshot(f"s/a#{g}", g, g) for g in bookmarks),
    )


def test_a_token_is_resumable_while_the_source_holds_what_it_needs() -> None:
    token = encode(ResumeToken(toguid=20, toname="s/a@2", fromguid=10))
    assert resumable(token, dataset([10, 20]))
    assert resumable(token, dataset([20], bookmarks=(10,)))  # from a bookmark
    assert not resumable(token, dataset([10]))  # its snapshot was destroyed
    assert not resumable(token, dataset([20]))  # its base was destroyed
    assert not resumable("1-garbage", dataset([10, 20]))
