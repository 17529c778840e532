"""Block-compressed postings: round trips, block metadata, upper-bound points, size."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rankstack.errors import InputError
from rankstack.index.postings import BLOCK, FORMAT_VERSION, decode_term, encode_postings, postings_nbytes, term_df

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# list lengths around block boundaries, gaps from dense to huge, values up to 65535 (and beyond)
lengths = st.one_of(st.sampled_from([0, 1, 2, 127, 128, 129, 255, 256, 257, 385]), st.integers(0, 600))
values = st.one_of(st.integers(1, 3), st.integers(1, 65535), st.sampled_from([1, 65535, 70000, 2**32 - 1]))


@st.composite
def posting_lists(draw, huge: bool = False, max_value: int = 2**32 - 1):
    """(term_offsets, docnos, values, doc_lengths) for a few random posting lists; ``huge``:
    docnos up to ~2**31 (and no doc_lengths, which would be too big)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    gaps = st.sampled_from([1, 2, 3, 50, 1000] + ([2**20] if huge else []))
    jumps = st.sampled_from([2**16] + ([2**24, 2**29] if huge else []))
    n_terms = draw(st.integers(0, 6))
    lists, vals = [], []
    for _ in range(n_terms):
        n = draw(lengths)
        d = np.cumsum(rng.integers(1, draw(gaps) + 1, size=n)) - 1 + draw(st.integers(0, 2**16))
        if n > 1 and draw(st.booleans()):  # one huge gap somewhere
            d[rng.integers(1, n):] += draw(jumps)
        lists.append(d)
        vals.append(rng.integers(1, min(draw(values), max_value), size=n, endpoint=True))
    offsets = np.zeros(n_terms + 1, np.int64)
    offsets[1:] = np.cumsum([len(x) for x in lists])
    docnos = np.concatenate(lists + [np.zeros(0, np.int64)]).astype(np.int32)
    values_ = np.concatenate(vals + [np.zeros(0, np.int64)]).astype(np.uint32)
    if huge:
        return offsets, docnos, values_, None
    doc_lengths = np.zeros(int(docnos.max()) + 1 if docnos.size else 0, np.int32)
    doc_lengths[docnos] = rng.integers(0, 200, size=docnos.size)
    return offsets, docnos, values_, doc_lengths


@SETTINGS
@given(posting_lists(huge=True, max_value=65535))
def test_round_trip_huge_docnos(lists):
    offsets, docnos, values, _ = lists
    arrays = encode_postings(offsets, docnos, values, None, "impact")
    for t in range(len(offsets) - 1):
        d, v = decode_term(arrays, t)
        np.testing.assert_array_equal(d, docnos[offsets[t]:offsets[t + 1]])
        np.testing.assert_array_equal(v, values[offsets[t]:offsets[t + 1]])


@SETTINGS
@given(posting_lists(), st.sampled_from(["bm25", "impact"]))
def test_round_trip(lists, mode):
    offsets, docnos, values, doc_lengths = lists
    if mode == "impact":
        values = np.minimum(values, 65535)
    arrays = encode_postings(offsets, docnos, values, doc_lengths, mode)
    for t in range(len(offsets) - 1):
        d, v = decode_term(arrays, t)
        assert d.dtype == np.int32 and v.dtype == np.uint32
        np.testing.assert_array_equal(d, docnos[offsets[t]:offsets[t + 1]])
        np.testing.assert_array_equal(v, values[offsets[t]:offsets[t + 1]])


@SETTINGS
@given(posting_lists(), st.sampled_from(["bm25", "impact"]))
def test_block_metadata(lists, mode):
    offsets, docnos, values, doc_lengths = lists
    if mode == "impact":
        values = np.minimum(values, 65535)
    a = encode_postings(offsets, docnos, values, doc_lengths, mode)
    assert a["meta"].tolist() == [FORMAT_VERSION, 0 if mode == "bm25" else 1, doc_lengths.shape[0], BLOCK]
    np.testing.assert_array_equal(term_df(a), np.diff(offsets))
    for t in range(len(offsets) - 1):
        d, v = docnos[offsets[t]:offsets[t + 1]], values[offsets[t]:offsets[t + 1]]
        blocks = range(a["term_blocks"][t], a["term_blocks"][t + 1])
        assert len(blocks) == -(-d.size // BLOCK)
        for j, blk in enumerate(blocks):
            sl = slice(j * BLOCK, (j + 1) * BLOCK)
            assert a["block_last"][blk] == d[sl][-1]
            assert a["block_max"][blk] == min(v[sl].max(), 65535)  # saturated
            if mode == "bm25":
                assert a["block_min_len"][blk] == min(doc_lengths[d[sl]].min(), 65535)
        j = np.searchsorted(a["ub_terms"], t)
        has_points = j < len(a["ub_terms"]) and a["ub_terms"][j] == t
        pts = slice(a["ub_offsets"][j], a["ub_offsets"][j + 1]) if has_points else slice(0, 0)
        pv, pl = a["ub_values"][pts].astype(np.int64), a["ub_lengths"][pts].astype(np.int64)
        if d.size <= BLOCK:  # bounded by the block's metadata
            assert pv.size == 0
        elif mode == "impact":
            assert pv.tolist() == [v.max()]
        else:
            # every posting is dominated by a point (more tf, shorter doc); points are postings
            lens = doc_lengths[d].astype(np.int64)
            dominated = (pv[None, :] >= v[:, None]) & (pl[None, :] <= lens[:, None])
            assert dominated.any(axis=1).all()
            assert set(zip(pv.tolist(), pl.tolist())) <= set(zip(v.tolist(), lens.tolist()))
            # and no point is dominated by another one
            assert np.all(np.diff(pv) < 0) and np.all(np.diff(pl) < 0)


def test_empty_segment():
    a = encode_postings(np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.uint32),
                        np.zeros(0, np.int32), "bm25")
    assert a["term_blocks"].tolist() == [0] and a["data"].size == 8


@pytest.mark.parametrize("docnos, values, message", [
    ([3, 2], [1, 1], "ascending"),
    ([1, 1], [1, 1], "ascending"),
    ([1, 2], [0, 1], ">= 1"),
    ([1, 2**31 - 1], [1, 1], "< 2"),
])
def test_rejects_bad_input(docnos, values, message):
    with pytest.raises(InputError, match=message):
        encode_postings(np.array([0, 2]), np.array(docnos, np.int32), np.array(values, np.uint32),
                        np.ones(10, np.int32), "bm25")


def test_rejects_missing_lengths_and_mode():
    args = np.array([0, 1]), np.array([0], np.int32), np.array([1], np.uint32)
    with pytest.raises(InputError):
        encode_postings(*args, None, "bm25")
    with pytest.raises(InputError):
        encode_postings(*args, np.ones(1, np.int32), "tfidf")
    with pytest.raises(InputError, match="65535"):
        encode_postings(*args[:2], np.array([65536], np.uint32), None, "impact")


def test_size_short_text_bm25():
    """Zipfian short-text collection: the whole postings stay well under 4 bytes/posting."""
    rng = np.random.default_rng(1)
    n_docs, vocab = 100_000, 50_000
    lens = rng.integers(4, 16, size=n_docs)
    ranks = np.minimum(rng.zipf(1.1, size=int(lens.sum())), vocab) - 1
    doc = np.repeat(np.arange(n_docs), lens)
    pairs, tfs = np.unique(ranks.astype(np.int64) * n_docs + doc, return_counts=True)
    terms, docs = pairs // n_docs, pairs % n_docs
    offsets = np.searchsorted(terms, np.arange(vocab + 1)).astype(np.int64)
    a = encode_postings(offsets, docs.astype(np.int32), tfs.astype(np.uint32), lens.astype(np.int32), "bm25")
    per_posting = postings_nbytes(a) / docs.size
    assert per_posting < 3.0, per_posting
