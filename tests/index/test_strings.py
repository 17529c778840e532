from hypothesis import given, settings, strategies as st

from rankstack.index.strings import StringTable

words = st.lists(st.text(min_size=0, max_size=6), max_size=30, unique=True)


@settings(max_examples=60, deadline=None)
@given(stored=words, probes=st.lists(st.text(max_size=6), max_size=10))
def test_every_lookup_mode_finds_exactly_the_stored_strings(tmp_path_factory, stored, probes):
    directory = tmp_path_factory.mktemp("strings")
    StringTable.write(directory, "sorted", sorted(stored))
    StringTable.write(directory, "hashed", stored, lookup=True)
    StringTable.write(directory, "lazy", stored)
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
@given(stored=st.lists(st.text(max_size=6), min_size=1, max_size=40), picks=st.lists(st.integers(0, 10**6), max_size=60))
def test_take_returns_the_strings_at_any_positions(tmp_path_factory, stored, picks):
    """Any text (non-ASCII, empty strings, NUL bytes), few or many positions, repeats and any order."""
    directory = tmp_path_factory.mktemp("take")
    StringTable.write(directory, "t", stored)
    table = StringTable(directory, "t")
    positions = [p % len(stored) for p in picks]
    assert table.take(positions) == [stored[p] for p in positions]
