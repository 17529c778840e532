"""Query kernels: exhaustive equals an independent numpy reference, and the (safe) pruning
algorithms (MaxScore, Block-Max WAND, Block-Max Pruning) and the batch entry point return exactly the exhaustive
top-k."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rankstack.errors import InputError
from rankstack.index import postings
from rankstack.index.postings import encode_postings
from rankstack.index.query import SegmentSearcher

PRUNING = ("maxscore", "bmw", "bmp")  # every safe algorithm but the exhaustive reference
ALGORITHMS = [*PRUNING, "exhaustive"]
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Corpus:
    """A random segment: raw CSR lists, lengths, deletions, and its SegmentSearcher."""

    def __init__(self, seed: int, n_docs: int, n_terms: int, mode: str, ties: bool, deletes: float):
        rng = np.random.default_rng(seed)
        self.n_docs, self.mode = n_docs, mode
        lists, vals = [], []
        for t in range(n_terms):
            # a mix of dense (many blocks) and sparse lists, some empty
            df = min(n_docs, int(n_docs * rng.choice([0.0, 0.002, 0.02, 0.1, 0.5, 0.9])) + int(rng.integers(0, 3)))
            lists.append(np.sort(rng.choice(n_docs, size=df, replace=False)))
            hi = 3 if ties else (12 if mode == "bm25" else 65535)
            v = rng.integers(1, hi, size=df, endpoint=True)
            if mode == "bm25" and df and rng.random() < 0.2:
                v[rng.integers(0, df)] = rng.choice([200, 65535, 70000])  # rare huge tf
            vals.append(v)
        self.offsets = np.zeros(n_terms + 1, np.int64)
        self.offsets[1:] = np.cumsum([len(x) for x in lists])
        self.docnos = np.concatenate(lists).astype(np.int32)
        self.values = np.concatenate(vals).astype(np.uint32)
        self.lengths = rng.integers(0, 4 if ties else 40, size=n_docs).astype(np.int32)
        self.live = rng.random(n_docs) >= deletes if deletes else None
        arrays = encode_postings(self.offsets, self.docnos, self.values, self.lengths, mode)
        self.searcher = SegmentSearcher(arrays, self.lengths, self.live)

    def reference_scores(self, terms, weights, norm) -> np.ndarray:
        """float32 score of every doc, summed in query-term order (plain numpy)."""
        acc = np.zeros(self.n_docs, np.float32)
        for t, w in zip(terms, weights):
            sl = slice(self.offsets[t], self.offsets[t + 1])
            d, v = self.docnos[sl], self.values[sl].astype(np.float32)
            acc[d] += (w * v) / (v + norm[d]) if self.mode == "bm25" else w * v
        return acc

    def reference_topk(self, scores, k):
        ok = scores > 0
        if self.live is not None:
            ok &= self.live
        docs = np.flatnonzero(ok)
        order = np.lexsort((docs, -scores[docs]))[:k]
        return docs[order].astype(np.int32), scores[docs[order]]


@st.composite
def cases(draw, mode=None):
    mode = mode or draw(st.sampled_from(["bm25", "impact"]))
    # > 4096 docs: several MaxScore windows
    n_docs = draw(st.one_of(st.integers(1, 40), st.integers(1, 2000), st.integers(4000, 20000)))
    n_terms = draw(st.integers(1, 12))
    corpus = Corpus(draw(st.integers(0, 2**32 - 1)), n_docs, n_terms, mode, draw(st.booleans()),
                    draw(st.sampled_from([0.0, 0.0, 0.1, 0.5, 0.99])))
    q = draw(st.lists(st.integers(0, n_terms - 1), min_size=1, max_size=min(8, n_terms), unique=True))
    weight = st.one_of(st.floats(0.015625, 20.0, width=32), st.sampled_from([1.0, 2.5]))
    w = np.array(draw(st.lists(weight, min_size=len(q), max_size=len(q))), np.float32)
    k = draw(st.one_of(st.integers(1, 12), st.integers(1, n_docs + 5)))
    params = dict(k1=draw(st.sampled_from([0.0, 0.9, 1.2, 2.0])), b=draw(st.sampled_from([0.0, 0.4, 0.75, 1.0])),
                  avgdl=draw(st.sampled_from([0.5, 3.0, 10.0, 25.0])))
    return corpus, np.array(q, np.int32), w, k, params


def _norm(corpus: Corpus, k1, b, avgdl) -> np.ndarray:
    return (k1 * (1 - b + b * corpus.lengths.astype(np.float64) / avgdl)).astype(np.float32)


def _equal(a, b):
    assert np.array_equal(a[0], b[0]), (a, b)
    assert np.array_equal(a[1], b[1]), (a, b)
    assert a[0].dtype == np.int32 and a[1].dtype == np.float32


@SETTINGS
@given(cases())
def test_exhaustive_matches_numpy(case):
    corpus, q, w, k, params = case
    norm = _norm(corpus, **params)
    expected = corpus.reference_topk(corpus.reference_scores(q, w, norm), k)
    _equal(corpus.searcher.search(q, w, k, algorithm="exhaustive", **params), expected)


@SETTINGS
@given(cases())
def test_pruning_is_exact(case):
    corpus, q, w, k, params = case
    s = corpus.searcher
    expected = s.search(q, w, k, algorithm="exhaustive", **params)
    for algorithm in PRUNING:
        _equal(s.search(q, w, k, algorithm=algorithm, **params), expected)
    if corpus.live is not None:
        assert corpus.live[expected[0]].all()


@SETTINGS
@given(cases(), st.sampled_from(ALGORITHMS), st.sampled_from([None, 1, 2]))
def test_batch_is_exact(case, algorithm, threads):
    corpus, q, w, k, params = case
    s = corpus.searcher
    queries = [(q, w), (q[:1], w[:1]), (q[::-1].copy(), w[::-1].copy()), (q[:0], w[:0])]
    got = s.search_batch(queries, k, algorithm=algorithm, threads=threads, **params)
    assert len(got) == len(queries)
    for (qt, qw), res in zip(queries, got):
        _equal(res, s.search(qt, qw, k, algorithm="exhaustive", **params))


@SETTINGS
@given(cases(), st.sampled_from([1.1, 1.5, 3.0, 100.0]))
def test_unsafe_theta_scores_are_exact(case, theta):
    corpus, q, w, k, params = case
    s = corpus.searcher
    full = corpus.reference_scores(q, w, _norm(corpus, **params))
    exact = s.search(q, w, k, algorithm="exhaustive", **params)
    for algorithm in PRUNING:
        docs, scores = s.search(q, w, k, algorithm=algorithm, theta=theta, **params)
        assert len(docs) <= len(exact[0]) and len(set(docs.tolist())) == len(docs)
        np.testing.assert_array_equal(scores, full[docs])  # returned scores are exact
        assert np.all(scores > 0)
        order = np.lexsort((docs, -scores))
        np.testing.assert_array_equal(order, np.arange(len(docs)))  # sorted as specified
        if corpus.live is not None:
            assert corpus.live[docs].all()


@pytest.mark.parametrize("mode", ["bm25", "impact"])
def test_large_corpus_many_windows(mode):
    """Tens of thousands of docs (many windows, skipped ones, both refinement strategies,
    collector compactions), several thresholds via k, with deletions."""
    rng = np.random.default_rng(7)
    for seed in range(4):
        corpus = Corpus(seed, 60_000, 10, mode, ties=seed % 2 == 0, deletes=0.1 * seed)
        for _ in range(12):
            q = rng.choice(10, size=rng.integers(1, 9), replace=False).astype(np.int32)
            w = (rng.random(len(q)) * 5 + 0.05).astype(np.float32)
            k = int(rng.choice([1, 10, 100, 1000, 10_000]))
            s = corpus.searcher
            expected = s.search(q, w, k, algorithm="exhaustive")
            for algorithm in PRUNING:
                _equal(s.search(q, w, k, algorithm=algorithm), expected)


def test_no_terms_and_empty_lists():
    corpus = Corpus(3, 500, 4, "bm25", False, 0.0)
    s = corpus.searcher
    for algorithm in ALGORITHMS:
        d, sc = s.search(np.zeros(0, np.int32), np.zeros(0, np.float32), 10, algorithm=algorithm)
        assert d.size == 0 and sc.size == 0


def test_large_k_all_docs():
    corpus = Corpus(5, 1500, 6, "impact", False, 0.2)
    s = corpus.searcher
    q, w = np.arange(6, dtype=np.int32), np.linspace(0.5, 2, 6).astype(np.float32)
    expected = s.search(q, w, 10_000, algorithm="exhaustive")
    assert len(expected[0]) == np.count_nonzero(corpus.reference_scores(q, w, None)[corpus.live] > 0)
    for algorithm in PRUNING:
        _equal(s.search(q, w, 10_000, algorithm=algorithm), expected)


def test_rejects_bad_queries():
    s = Corpus(1, 100, 3, "bm25", False, 0.0).searcher
    one, wt = np.array([0], np.int32), np.array([1.0], np.float32)
    for bad in ([3], [-2]):  # past the segment's terms; below -1 (absent)
        with pytest.raises(InputError, match="term id out of range"):
            s.search(np.array(bad, np.int32), wt)
    for bad in (-1.0, np.nan, np.inf):
        with pytest.raises(InputError, match="finite and >= 0"):
            s.search(one, np.array([bad], np.float32))
    with pytest.raises(InputError):
        s.search(one, wt, 0)
    with pytest.raises(InputError):
        s.search(one, wt, algorithm="wand")
    with pytest.raises(InputError):
        s.search(one, wt, theta=0.5)


def test_floor_postings_are_each_long_terms_best_and_optional():
    """Each term of 2+ blocks keeps its FLOOR_K best postings at k1=0.9, b=0.4 and the mean length; a segment
    written without them (before they existed) searches the same."""
    corpus = Corpus(11, 20_000, 12, "bm25", ties=False, deletes=0.3)
    arrays = encode_postings(corpus.offsets, corpus.docnos, corpus.values, corpus.lengths, "bm25")
    K = postings.FLOOR_K
    assert len(arrays["ub_terms"]) > 3 and len(arrays["floor_docs"]) == K * len(arrays["ub_terms"])
    norm = _norm(corpus, 0.9, 0.4, corpus.lengths.mean()).astype(np.float64)
    for j, t in enumerate(arrays["ub_terms"]):
        span = slice(corpus.offsets[t], corpus.offsets[t + 1])
        docs, values = corpus.docnos[span], corpus.values[span].astype(np.float64)
        floor = arrays["floor_docs"][j * K:(j + 1) * K]
        assert np.all(np.diff(floor) > 0) and np.isin(floor, docs).all()
        scores = values / (values + norm[docs])
        np.testing.assert_allclose(np.sort(scores[np.searchsorted(docs, floor)]), np.sort(scores)[-K:], rtol=1e-6)
    without = {name: a for name, a in arrays.items() if not name.startswith("floor_")}
    assert postings.check(without, corpus.n_docs, 0, corpus.lengths) is None
    old = SegmentSearcher(without, corpus.lengths, corpus.live)
    rng = np.random.default_rng(3)
    for _ in range(20):
        q = rng.choice(12, size=rng.integers(1, 5), replace=False).astype(np.int32)
        w = (rng.random(len(q)) * 3 + 0.1).astype(np.float32)
        for algorithm in PRUNING:
            _equal(corpus.searcher.search(q, w, 10, algorithm=algorithm), old.search(q, w, 10, algorithm=algorithm))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_check_accepts_every_segment_the_encoder_writes(case):
    corpus = case[0]
    arrays = encode_postings(corpus.offsets, corpus.docnos, corpus.values, corpus.lengths, corpus.mode)
    assert postings.check(arrays, corpus.n_docs, postings.MODES[corpus.mode], corpus.lengths) is None


def test_check_names_each_damage_the_kernels_would_trip_over():
    corpus = Corpus(7, 3000, 40, "bm25", ties=False, deletes=0.0)
    good = encode_postings(corpus.offsets, corpus.docnos, corpus.values, corpus.lengths, corpus.mode)
    long_term = int(np.argmax(np.diff(good["term_blocks"])))
    b = int(good["term_blocks"][long_term]) + 1  # a full block that is not its term's first

    def damaged(name, change):
        arrays = {k: v.copy() for k, v in good.items()}
        change(arrays[name])
        return postings.check(arrays, corpus.n_docs, 0, corpus.lengths)

    def swap(a):
        a[long_term], a[long_term + 1] = a[long_term + 1] + 1, a[long_term]

    cases = {
        "term_blocks is not ascending": damaged("term_blocks", swap),
        "bit widths exceed 32": damaged("block_doc_bits", lambda a: a.__setitem__(b, 40)),
        "data lies outside": damaged("block_offsets", lambda a: a.__setitem__(b, len(good["data"]))),
        "exceeds the documents": damaged("block_last", lambda a: a.__setitem__(-1, corpus.n_docs)),
        "do not end at its block_last": damaged("data", lambda a: a.__setitem__(
            int(good["block_offsets"][b]), a[int(good["block_offsets"][b])] ^ 0xFFFF)),
        "above its block_max": damaged("block_max", lambda a: a.__setitem__(b, 0)),
        "floor postings are not postings": damaged("floor_values", lambda a: a.__setitem__(3, a[3] + 1)),
        "in docno order": damaged("floor_docs", lambda a: a.__setitem__(slice(0, 2), a[1::-1].copy())),
        "wrong type": postings.check({**good, "data": good["data"].astype(np.int64)}, corpus.n_docs, 0),
        "meta does not match": postings.check(good, corpus.n_docs + 1, 0),
    }
    for expected, problem in cases.items():
        assert problem is not None and expected in problem, (expected, problem)


@SETTINGS
@given(cases(), st.sampled_from(ALGORITHMS), st.sampled_from([None, 1, 2]),
       st.integers(0, 2**32 - 1))
def test_csr_batch_skips_absent_terms(case, algorithm, threads, seed):
    """search_csr (the inverted index's path): a term id of -1 (absent from the segment) is left out, on one
    thread or many; every query equals the exhaustive top-k of its present terms."""
    corpus, q, w, k, params = case
    s, rng = corpus.searcher, np.random.default_rng(seed)
    rows = []
    for _ in range(int(rng.integers(1, 5))):
        keep = rng.random(len(q)) < 0.7
        t = np.where(keep, q, -1).astype(np.int32)
        rows.append((t, w.copy()))
    indptr = np.zeros(len(rows) + 1, np.int64)
    np.cumsum([len(t) for t, _ in rows], out=indptr[1:])
    docs, scores, counts = s.search_csr(indptr, np.concatenate([t for t, _ in rows]),
                                        np.concatenate([x for _, x in rows]), k, algorithm=algorithm,
                                        threads=threads, **params)
    for i, (t, x) in enumerate(rows):
        present = t >= 0
        _equal((docs[i, :counts[i]], scores[i, :counts[i]]),
               s.search(t[present], x[present], k, algorithm="exhaustive", **params))


def test_csr_batch_rejects_bad_term_ids_and_weights():
    s = Corpus(1, 100, 3, "bm25", False, 0.0).searcher
    ptr = np.array([0, 1], np.int64)
    with pytest.raises(InputError):
        s.search_csr(ptr, np.array([-2], np.int32), np.array([1.0], np.float32))
    with pytest.raises(InputError):
        s.search_csr(ptr, np.array([0], np.int32), np.array([np.nan], np.float32))
    for bad_ptr in ([1, 1], [0, 2], [0, 1, 0, 1], []):  # not from 0 to len(term_ids), decreasing, empty
        with pytest.raises(InputError, match="indptr"):
            s.search_csr(np.array(bad_ptr, np.int64), np.array([0], np.int32), np.array([1.0], np.float32))
    with pytest.raises(InputError, match="as many weights"):
        s.search_csr(ptr, np.array([0], np.int32), np.array([1.0, 2.0], np.float32))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_threads_share_a_large_batch_exactly(algorithm):
    """A batch of many queries, handed out in chunks to two threads, gives each query the rows it gets alone."""
    corpus = Corpus(7, 3000, 60, "bm25", False, 0.1)
    s, rng = corpus.searcher, np.random.default_rng(7)
    queries = [(rng.choice(60, size=int(rng.integers(0, 6)), replace=False).astype(np.int32),
                rng.random(6).astype(np.float32)) for _ in range(700)]
    queries = [(t, w[:len(t)]) for t, w in queries]
    together = s.search_batch(queries, 20, algorithm=algorithm, threads=2)
    for (t, w), got in zip(queries, together):
        _equal(got, s.search(t, w, 20, algorithm=algorithm))
    bad = [*queries[:650], (np.array([0], np.int32), np.array([np.nan], np.float32)), *queries[650:]]
    with pytest.raises(InputError, match="finite"):
        s.search_batch(bad, 20, algorithm=algorithm, threads=2)


def test_thread_hand_out_covers_each_query_once_and_raises_a_threads_error():
    from rankstack.index.query import _in_threads

    seen, lock = [], threading.Lock()

    def rows(first, end):
        with lock:
            seen.extend(range(first, end))
        return 0

    assert _in_threads(rows, 1001, 2) == 0
    assert sorted(seen) == list(range(1001))

    def failing(first, end):
        if first >= 500:
            raise RuntimeError("chunk failed")
        return 0

    with pytest.raises(RuntimeError, match="chunk failed"):
        _in_threads(failing, 1000, 2)
    assert _in_threads(lambda first, end: 2 if first <= 10 < end else 0, 100, 2) == 2  # a chunk's problem


def test_block_max_pruning_gallops_to_the_first_position_at_or_above():
    """The forward searches of Block-Max Pruning, from any start, including an exhausted one."""
    from rankstack.index.bmp import _gallop, _row_gallop

    rng = np.random.default_rng(0)
    for _ in range(2000):
        a = np.sort(rng.integers(0, 50, rng.integers(0, 30))).astype(np.int32)
        lo, x = int(rng.integers(0, len(a) + 1)), int(rng.integers(-2, 55))
        expected = lo + int(np.searchsorted(a[lo:], x))
        assert _gallop(a, lo, len(a), x) == expected
        assert _row_gallop(np.vstack([a[::-1], a]), 1, lo, len(a), x) == expected


def test_maxscore_finds_each_bit_of_its_64_bit_summary_words():
    """MaxScore lists the docs marked in its window bitmap (32 docs per word) through the summary of the words in
    use (64 words per summary word), every bit position included (the sign bits too), and clears both."""
    from rankstack.index.maxscore import WINDOW, _marked

    rng = np.random.default_rng(5)
    for trial in range(70):
        want = np.sort(rng.choice(WINDOW, size=rng.integers(1, 200), replace=False)) if trial >= 64 else \
            np.array([trial * 32 + 31, (trial + 64) * 32, (trial + 64) * 32 + 31])  # words trial, trial + 64: edges
        want = np.unique(want)
        bits, used = np.zeros(WINDOW // 32, np.int64), np.zeros(WINDOW // 2048, np.int64)
        for doc in want:
            bits[doc // 32] |= np.int64(1) << np.int64(doc % 32)
            used[doc // 2048] |= (np.uint64(1) << np.uint64(doc // 32 % 64)).astype(np.int64)
        out = np.full(WINDOW, -1, np.int64)
        n = _marked(bits, used, out)
        assert out[:n].tolist() == want.tolist()
        assert not bits.any() and not used.any()
