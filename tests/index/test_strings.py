import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rankstack.errors import IndexFormatError
from rankstack.index.strings import StringTable

words = st.lists(st.text(min_size=0, max_size=6), max_size=30, unique=True)
blocks = st.sampled_from([1, 2, 3, 4, 16])


@settings(max_examples=60, deadline=None)
@given(stored=words, probes=st.lists(st.text(max_size=6), max_size=10), block=blocks)
def test_every_lookup_mode_finds_exactly_the_stored_strings(stored, probes, block):
    arrays = {**StringTable.arrays("sorted", sorted(stored), block=block),
              **StringTable.arrays("hashed", stored, lookup=True, block=block),
              **StringTable.arrays("lazy", stored, block=block)}
    by_bytes = sorted(stored)
    assert by_bytes == sorted(stored, key=lambda s: s.encode("utf-8"))  # Python's order is UTF-8 byte order
    queries = stored + probes
    expected = {name: [table.index(q) if q in table else -1 for q in queries]
                for name, table in (("sorted", by_bytes), ("hashed", stored), ("lazy", stored))}
    for name in expected:
        table = StringTable(arrays, name, sorted=name == "sorted")
        assert table.positions(queries).tolist() == expected[name]
        assert list(table) == (by_bytes if name == "sorted" else stored)
        table.check()


@settings(max_examples=60, deadline=None)
@given(stored=st.lists(st.text(max_size=6), min_size=1, max_size=40), picks=st.lists(st.integers(0, 10**6), max_size=60),
       block=blocks)
def test_take_returns_the_strings_at_any_positions(stored, picks, block):
    """Any text (non-ASCII, empty strings, NUL bytes), few or many positions, repeats and any order."""
    table = StringTable(StringTable.arrays("t", stored, block=block), "t")
    positions = [p % len(stored) for p in picks]
    assert table.take(positions) == [stored[p] for p in positions]
    assert table.take(sorted(positions)) == [stored[p] for p in sorted(positions)]  # runs within one block
    for outside in ([len(stored)], [-1], positions + [len(stored)]):
        with pytest.raises(IndexError):
            table.take(outside)


@settings(max_examples=40, deadline=None)
@given(stored=st.lists(st.text(min_size=0, max_size=120), min_size=1, max_size=30),
       picks=st.lists(st.integers(0, 10**6), min_size=1, max_size=200), block=blocks)
def test_take_of_long_strings_grows_its_buffer(stored, picks, block):
    """Strings longer than the 16 bytes a take first makes room for: decoding goes on in a grown buffer, from the
    string it stopped at (a run within a block, a repeat, a jump)."""
    stored = [s * 3 for s in stored]  # shared prefixes and lengths up to 360 characters
    table = StringTable(StringTable.arrays("t", stored, block=block), "t")
    positions = [p % len(stored) for p in picks]
    for order in (positions, sorted(positions), sorted(positions, reverse=True)):
        assert table.take(order) == [stored[p] for p in order]


def test_front_coding_stores_shared_prefixes_once():
    ids = [f"package-name-{i:06d}" for i in range(10_000)]
    arrays = StringTable.arrays("ids", ids, block=16)
    assert sum(a.nbytes for a in arrays.values()) < sum(map(len, ids)) / 3
    table = StringTable(arrays, "ids")
    assert table.take([9_999, 0, 17, 16, 15]) == [ids[9_999], ids[0], ids[17], ids[16], ids[15]]


def test_a_corrupt_table_is_an_error_not_a_crash():
    strings = [f"doc-{i}" for i in range(100)]
    arrays = StringTable.arrays("t", strings, lookup=True)
    data = arrays["t.fc"]
    with pytest.raises(IndexFormatError, match="t"):
        StringTable({**arrays, "t.fc": data[:-5]}, "t")  # the data ends early
    table = StringTable({**arrays, "t.fc": np.full_like(data, 0xFF)}, "t")  # varints that never end
    for call in (lambda: table.take([3]), lambda: table.take(np.arange(100)), lambda: table.position("doc-3"),
                 table.check):
        with pytest.raises(IndexFormatError, match="corrupt"):
            call()
    short = StringTable({**arrays, "t.fc": np.full_like(data, 0x05)}, "t", sorted=True)  # lengths that do not fit
    with pytest.raises(IndexFormatError, match="corrupt"):
        short.positions(["doc-3", "zzz"])
    starts = arrays["t.fc_blocks"].copy()
    starts[5] = -10**9  # a block that starts far before the data: refused, never read
    negative = StringTable({**arrays, "t.fc_blocks": starts}, "t", sorted=True)
    with pytest.raises(IndexFormatError, match="corrupt"):
        negative.take([21])
    wild = StringTable({**arrays, "t.order": np.full(100, 10**6, np.int32)}, "t")  # hash index pointing outside
    with pytest.raises(IndexFormatError, match="points outside"):
        wild.position("doc-3")
