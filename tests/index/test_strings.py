import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rankstack.errors import IndexFormatError
from rankstack.index.storage import save_arrays
from rankstack.index.strings import StringTable

words = st.lists(st.text(min_size=0, max_size=6), max_size=30, unique=True)
blocks = st.sampled_from([1, 2, 3, 4, 16])


@settings(max_examples=60, deadline=None)
@given(stored=words, probes=st.lists(st.text(max_size=6), max_size=10), block=blocks)
def test_every_lookup_mode_finds_exactly_the_stored_strings(tmp_path_factory, stored, probes, block):
    directory = tmp_path_factory.mktemp("strings")
    StringTable.write(directory, "sorted", sorted(stored), block=block)
    StringTable.write(directory, "hashed", stored, lookup=True, block=block)
    StringTable.write(directory, "lazy", stored, block=block)
    by_bytes = sorted(stored)
    assert by_bytes == sorted(stored, key=lambda s: s.encode("utf-8"))  # Python's order is UTF-8 byte order
    queries = stored + probes
    expected = {name: [table.index(q) if q in table else -1 for q in queries]
                for name, table in (("sorted", by_bytes), ("hashed", stored), ("lazy", stored))}
    for name in expected:
        table = StringTable(directory, name, sorted=name == "sorted")
        assert table.positions(queries).tolist() == expected[name]
        assert list(table) == (by_bytes if name == "sorted" else stored)


@settings(max_examples=60, deadline=None)
@given(stored=st.lists(st.text(max_size=6), min_size=1, max_size=40), picks=st.lists(st.integers(0, 10**6), max_size=60),
       block=blocks)
def test_take_returns_the_strings_at_any_positions(tmp_path_factory, stored, picks, block):
    """Any text (non-ASCII, empty strings, NUL bytes), few or many positions, repeats and any order."""
    directory = tmp_path_factory.mktemp("take")
    StringTable.write(directory, "t", stored, block=block)
    table = StringTable(directory, "t")
    positions = [p % len(stored) for p in picks]
    assert table.take(positions) == [stored[p] for p in positions]
    assert table.take(sorted(positions)) == [stored[p] for p in sorted(positions)]  # runs within one block


def test_front_coding_stores_shared_prefixes_once(tmp_path):
    ids = [f"package-name-{i:06d}" for i in range(10_000)]
    StringTable.write(tmp_path, "ids", ids, block=16)
    stored = sum(f.stat().st_size for f in tmp_path.glob("ids.*"))
    assert stored < sum(map(len, ids)) / 3
    table = StringTable(tmp_path, "ids")
    assert table.take([9_999, 0, 17, 16, 15]) == [ids[9_999], ids[0], ids[17], ids[16], ids[15]]


def test_tables_written_before_front_coding_are_still_read(tmp_path):
    strings = sorted(["alpha", "beta", "", "gamma", "ü"])
    raw = [s.encode("utf-8") for s in strings]
    offsets = np.cumsum([0] + [len(b) for b in raw]).astype(np.int32)
    save_arrays(tmp_path, {"t.blob": np.frombuffer(b"".join(raw), np.uint8), "t.offsets": offsets})
    table = StringTable(tmp_path, "t", sorted=True)
    assert list(table) == strings and table.take([4, 1]) == [strings[4], strings[1]]
    assert table.positions(["gamma", "delta", ""]).tolist() == [strings.index("gamma"), -1, strings.index("")]
    assert StringTable(tmp_path, "t").position("ü") == strings.index("ü")


def test_a_corrupt_table_is_an_error_not_a_crash(tmp_path):
    strings = [f"doc-{i}" for i in range(100)]
    StringTable.write(tmp_path, "t", strings)
    data = np.load(tmp_path / "t.fc.npy")
    save_arrays(tmp_path, {"t.fc": data[:-5]})  # the data ends early
    with pytest.raises(IndexFormatError, match="t"):
        StringTable(tmp_path, "t")
    save_arrays(tmp_path, {"t.fc": np.full_like(data, 0xFF)})  # varints that never end
    table = StringTable(tmp_path, "t")
    for call in (lambda: table.take([3]), lambda: table.take(np.arange(100)), lambda: table.position("doc-3")):
        with pytest.raises(IndexFormatError, match="corrupt"):
            call()
    save_arrays(tmp_path, {"t.fc": np.full_like(data, 0x05)})  # lengths and prefixes that do not fit
    with pytest.raises(IndexFormatError, match="corrupt"):
        StringTable(tmp_path, "t", sorted=True).positions(["doc-3", "zzz"])
