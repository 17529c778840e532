"""Segments, updates, merges, snapshots and crash safety of the inverted index."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from rankstack.errors import IncompatibleIndexError, IndexFormatError, InputError, RankstackError
from rankstack.index import inverted
from rankstack.index.inverted import IndexWriter, InvertedIndex, read_manifest
from rankstack.index.search import InvertedParams
from rankstack.index.segment import SegmentBuilder
from rankstack.index.strings import StringTable
from rankstack.text.ascii_tokens import TokenTerms

WORDS = [f"w{i}" for i in range(60)]


def random_docs(rng, n, prefix="d"):
    return {f"{prefix}{i}": [rng.choice(WORDS[: 10 + i % 50]) for _ in range(rng.randint(1, 30))] for i in range(n)}


def results(index, queries, k=20, algorithm="exhaustive"):
    out = []
    for docnos, scores in index.search(queries, k, InvertedParams(algorithm)):
        out.append(list(zip(index.doc_ids.take(docnos), np.round(scores, 4).tolist())))
    return out


def build(path, docs, **settings):
    with IndexWriter(path, {"length_norm": "exact", **settings}) as w:
        for doc_id, terms in docs.items():
            w.add(doc_id, terms)
    return InvertedIndex(path)


QUERIES = [{"w1": 1, "w5": 1}, {"w30": 2, "w2": 1, "w44": 1}, {"w7": 1}, {"w59": 1, "w0": 1, "w20": 1}]


def test_updates_equal_a_fresh_build(tmp_path):
    rng = random.Random(0)
    docs = random_docs(rng, 300)
    path = tmp_path / "live"
    with IndexWriter(path, {"length_norm": "exact"}, buffer_tokens=500, merge_factor=4) as w:
        for doc_id, terms in list(docs.items())[:200]:
            w.add(doc_id, terms)
    index = InvertedIndex(path)
    assert len(index.segments) > 1  # small buffer: several segments, merged by policy
    with IndexWriter(path, buffer_tokens=500, merge_factor=4) as w:
        for doc_id, terms in list(docs.items())[200:]:
            w.add(doc_id, terms)
        replaced = {f"d{i}": ["w7", "w7", "w1"] for i in range(0, 300, 7)}
        w.delete([f"d{i}" for i in range(1, 300, 5)])
    with IndexWriter(path) as w:  # re-adding an id replaces it
        for doc_id, terms in replaced.items():
            w.add(doc_id, terms)
    expected = {d: t for d, t in docs.items() if int(d[1:]) % 5 != 1}
    expected.update(replaced)
    index = InvertedIndex(path)
    assert index.num_live == len(expected)
    # Scores depend on collection statistics, which (as in Lucene) count deleted documents until a
    # merge removes them: compare rankings of live documents, then exact results after a full merge.
    deleted = {f"d{i}" for i in range(1, 300, 5)} - set(replaced)
    for hits in results(index, QUERIES, k=400):
        assert not deleted & {d for d, _ in hits}
    with IndexWriter(path) as w:
        w.force_merge(1)
    merged = InvertedIndex(path)
    assert len(merged.segments) == 1 and merged.num_deleted == 0
    fresh = build(tmp_path / "fresh", expected)
    by_score = lambda runs: [sorted(hits, key=lambda h: (-h[1], h[0])) for hits in runs]  # doc order differs
    for algorithm in ("exhaustive", "maxscore", "bmw"):
        assert by_score(results(merged, QUERIES, k=400, algorithm=algorithm)) == by_score(results(fresh, QUERIES, k=400))


def test_documents_added_one_by_one_and_in_batches_share_one_vocabulary(tmp_path):
    """add() and add_batch() on one writer (a term first seen by either) index what a one-by-one build does."""
    rng = random.Random(3)
    docs = random_docs(rng, 60)
    with IndexWriter(tmp_path / "mixed", {"length_norm": "exact"}) as w:
        items = list(docs.items())
        for start in range(0, len(items), 10):
            part = items[start:start + 10]
            if start % 20:
                ids, terms = [d for d, _ in part], [t for _, ts in part for t in ts]
                w.add_batch(ids, terms + [None], [len(ts) for _, ts in part[:-1]] + [len(part[-1][1]) + 1])
            else:
                for doc_id, terms in part:
                    w.add(doc_id, terms)
    mixed, plain = InvertedIndex(tmp_path / "mixed"), build(tmp_path / "plain", docs)
    assert results(mixed, QUERIES, k=60) == results(plain, QUERIES, k=60)
    with pytest.raises(InputError, match="terms must be strings"):
        with IndexWriter(tmp_path / "bad", {"length_norm": "exact"}) as w:
            w.add("x", ["w1", None])
    with pytest.raises(InputError, match="index terms must be strings, got 7"):
        with IndexWriter(tmp_path / "bad2", {"length_norm": "exact"}) as w:
            w.add_batch(["x", "y"], ["w1", None, 7], [2, 1])
    for counts in ([3], [2, 2], [4, -1]):  # one count per document, summing to the terms, none negative
        with pytest.raises(InputError, match="add_batch: 2 documents need as many term counts"):
            with IndexWriter(tmp_path / "bad3", {"length_norm": "exact"}, overwrite=True) as w:
                w.add_batch(["x", "y"], ["w1", None, "w2"], counts)


def test_add_batch_with_codes_writes_what_flat_terms_write(tmp_path):
    """Distinct terms plus a code per token (what the analyzer gives) write the same segment file as every token's
    term; a term no token has is not indexed; codes out of range are refused."""
    rng = random.Random(5)
    docs = random_docs(rng, 40)
    ids, flat = list(docs), [t for ts in docs.values() for t in ts] + [None]
    counts = [len(ts) for ts in docs.values()]
    counts[-1] += 1
    distinct = ["unused"] + list(dict.fromkeys(flat))
    codes = np.array([distinct.index(t) for t in flat], np.int32)
    for name, kwargs in (("flat", {"terms": flat}), ("codes", {"terms": distinct, "codes": codes})):
        with IndexWriter(tmp_path / name, {"length_norm": "exact"}) as w:
            w.add_batch(ids, counts=counts, **kwargs)
    with IndexWriter(tmp_path / "growing", {"length_norm": "exact"}) as w:  # an analyzer's list, grown between calls
        half, cut = len(ids) // 2, sum(counts[:len(ids) // 2])
        growing = TokenTerms(distinct[:max(codes[:cut]) + 1])
        w.add_batch(ids[:half], growing, counts[:half], codes=codes[:cut])
        growing.extend(distinct[len(growing):])
        w.add_batch(ids[half:], growing, counts[half:], codes=codes[cut:])
    segment_bytes = [next((tmp_path / name).glob("*.rsx")).read_bytes() for name in ("flat", "codes", "growing")]
    assert segment_bytes[0] == segment_bytes[1] == segment_bytes[2]
    assert results(InvertedIndex(tmp_path / "codes"), [{"unused": 1}]) == [[]]  # not indexed
    for bad in (np.array([0, 2]), np.array([0.0, 1.0]), np.array([[0], [1]]), ["w1", "w2"]):
        with pytest.raises(InputError, match="codes must be one integer per token, indexing the 2 terms"):
            with IndexWriter(tmp_path / "bad", {"length_norm": "exact"}, overwrite=True) as w:
                w.add_batch(["x"], ["w1", "w2"], [2], codes=bad)


def test_pruned_search_equals_exhaustive_across_segments(tmp_path):
    rng = random.Random(1)
    path = tmp_path / "idx"
    with IndexWriter(path, {"length_norm": "lucene"}, buffer_tokens=700, merge_factor=100) as w:
        for doc_id, terms in random_docs(rng, 400).items():
            w.add(doc_id, terms)
        w.delete([f"d{i}" for i in range(0, 400, 3)])
    index = InvertedIndex(path)
    assert len(index.segments) > 3 and index.num_deleted > 0
    for k in (1, 5, 50, 10_000):
        reference = index.search(QUERIES, k, InvertedParams("exhaustive"))
        for algorithm in ("maxscore", "bmw"):
            for (d1, s1), (d2, s2) in zip(reference, index.search(QUERIES, k, InvertedParams(algorithm))):
                assert np.array_equal(d1, d2) and np.array_equal(s1, s2)


def test_reader_keeps_its_snapshot(tmp_path):
    path = tmp_path / "idx"
    build(path, {"a": ["x", "y"], "b": ["x"]})
    reader = InvertedIndex(path)
    before = results(reader, [{"x": 1}])
    with IndexWriter(path) as w:
        w.add("c", ["x", "x", "x"])
        w.delete(["a"])
    with IndexWriter(path) as w:
        w.force_merge(1)
    assert results(reader, [{"x": 1}]) == before  # old segments stay readable through their mappings
    assert [d for d, _ in results(InvertedIndex(path), [{"x": 1}])[0]] == ["c", "b"]


def test_impact_mode_quantises_with_a_recorded_scale(tmp_path):
    path = tmp_path / "imp"
    with IndexWriter(path, {"mode": "impact"}) as w:  # 8 bits; scale from the first batch's largest weight
        w.add("a", {"x": 1.0, "y": 0.01, "zero": 0.0})
        w.add("b", {"x": 0.3, "z": 2.55})
    index = InvertedIndex(path)
    assert index.settings["impact_scale"] == pytest.approx(2.55 / 255)
    (docnos, scores), = index.search([{"x": 2.0, "z": 1.0}], 10)
    assert index.doc_ids.take(docnos) == ["b", "a"]
    # b: 2 * 0.3 + 2.55 and a: 2 * 1.0, each weight rounded to a multiple of the scale
    assert scores.tolist() == pytest.approx([2 * 0.3 + 2.55, 2.0], abs=2 * 0.01)
    assert index.search([{"zero": 1.0}], 10)[0][0].size == 0  # zero weights are not indexed
    with IndexWriter(path) as w:  # later, larger weights clip to the top quantum
        w.add("c", {"x": 100.0})
    top = InvertedIndex(path).search([{"x": 1.0}], 1)[0][1][0]
    assert top == pytest.approx(2.55, abs=0.01)
    with IndexWriter(path) as w, pytest.raises(InputError, match="weight of 'x' must be a finite number"):
        w.add("d", {"x": float("nan")})


@pytest.mark.parametrize("colliding", [False, True])
def test_ids_are_unique_across_the_segments_of_one_commit(tmp_path, monkeypatch, colliding):
    """A flush or an adopted part looks up in earlier segments only the ids whose hash they hold: a repeat is found
    in any earlier segment or within the part, a deleted id may come back, and ids whose hashes collide (every hash
    equal here) are still told apart by their text."""
    if colliding:
        monkeypatch.setattr(inverted, "string_hashes", lambda ids: np.zeros(len(ids), np.uint64))
        monkeypatch.setattr(StringTable, "hashes", lambda table: np.zeros(len(table), np.uint64))
    path = tmp_path / "idx"
    with IndexWriter(path, {"length_norm": "exact"}, buffer_tokens=2) as w:  # a segment per document
        for i in range(6):
            w.add(f"d{i}", ["x", "y"])
        w.delete(["d1"])
        w.add("d1", ["z", "z"])
        for source, ids in (("add", ["new", "new2"]), ("adopt", ["d4"]), ("twice", ["p", "q", "p"])):
            builder = SegmentBuilder("bm25", store=True)
            for doc_id in ids:
                builder.add(doc_id, ["x"])
            builder.write(tmp_path / f"{source}.rsx")
            if source == "add":
                w.adopt(tmp_path / "add.rsx")
            else:
                with pytest.raises(InputError, match=f"duplicate document id '{ids[0]}'"):
                    w.adopt(tmp_path / f"{source}.rsx")
        with pytest.raises(InputError, match="duplicate document id 'd2'"):
            w.add("d2", ["x", "y"])  # flushed at once: found in the third segment
    index = InvertedIndex(path)
    assert sorted(index.doc_ids.take(np.arange(index.num_docs))) == ["d0", "d1", "d2", "d3", "d4", "d5", "new", "new2"]
    assert [doc for doc, _ in results(index, [{"z": 1}])[0]] == ["d1"]  # the d1 added again


def test_bad_states_are_clear_errors(tmp_path):
    path = tmp_path / "idx"
    build(path, {"a": ["x"]})
    with pytest.raises(RankstackError, match="already open for writing"):
        with IndexWriter(path):
            IndexWriter(path)
    with pytest.raises(IncompatibleIndexError, match="built with k1=0.9"):
        IndexWriter(path, {"k1": 1.2})
    with pytest.raises(InputError, match="duplicate document id 'b'"):
        with IndexWriter(path) as w:
            w.add("b", ["x"])
            w.add("b", ["y"])
    with pytest.raises(InputError, match="duplicate document id 'c'"):  # the first 'c' already flushed
        with IndexWriter(path, buffer_tokens=2) as w:
            w.add("c", ["x", "y"])
            w.add("d", ["x"])
            w.add("c", ["y", "z"])
    assert InvertedIndex(path).num_live == 1  # the failed commits changed nothing
    manifest = path / "manifest.json"
    manifest.write_text(manifest.read_text()[:20])
    with pytest.raises(IndexFormatError, match="damaged"):
        InvertedIndex(path)
    with pytest.raises(IndexFormatError, match="no manifest.json"):
        InvertedIndex(tmp_path)


WRITER = """
import sys
from rankstack.index.inverted import IndexWriter
path, phase = sys.argv[1], sys.argv[2]
with IndexWriter(path, {"length_norm": "exact"}, buffer_tokens=2000, merge_factor=1000) as w:
    for i in range(300):
        w.add(f"c{i}", [f"t{(i * j) % 97}" for j in range(20)])
print("committed", flush=True)
with IndexWriter(path, buffer_tokens=2000, merge_factor=1000) as w:
    if phase == "merge":
        print("merging", flush=True)
        w.force_merge(1)
    else:
        for i in range(10**9):
            w.add(f"n{i}", [f"t{(i * j) % 89}" for j in range(20)])
            if i == 0:
                print("adding", flush=True)
"""


@pytest.mark.parametrize("phase", ["add", "merge"])
def test_killed_writer_leaves_last_commit_intact(tmp_path, phase):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    reference = None
    for trial, delay in enumerate([0.0, 0.05, 0.2, 0.5]):
        path = tmp_path / f"idx{trial}"
        proc = subprocess.Popen([sys.executable, str(script), str(path), phase], stdout=subprocess.PIPE, text=True,
                                env=env)
        assert proc.stdout.readline().strip() == "committed"
        assert proc.stdout.readline().strip() in ("adding", "merging")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        index = InvertedIndex(path)
        if phase == "add":
            assert index.num_live == 300 and index.docno("n0") == -1
        else:  # the merge either committed whole or not at all
            assert index.num_live == 300 and len(index.segments) in (1, len(read_manifest(path).segments))
        got = results(index, [{"t1": 1, "t5": 1}, {"t42": 1}], k=50)
        reference = reference or got
        assert got == reference
        with IndexWriter(path) as w:  # a new writer cleans up what the dead one left behind
            w.add("after", ["t1"])
        names = {p.name for p in path.iterdir()}
        assert names == {"manifest.json", "write.lock"} | read_manifest(path).file_names()
        assert InvertedIndex(path).num_live == 301


def test_an_index_of_another_format_is_refused_by_name(tmp_path):
    path = tmp_path / "idx"
    with IndexWriter(path) as w:
        w.add("a", ["x"])
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, "version": 1}))  # as written by an older rankstack
    with pytest.raises(IndexFormatError, match="version 1; this rankstack reads version 2: rebuild"):
        InvertedIndex(path)


def test_term_cache_starts_over_when_full_and_changes_no_result(tmp_path, monkeypatch):
    import rankstack.index.inverted as inverted

    rng = random.Random(3)
    path = tmp_path / "idx"
    with IndexWriter(path, {"length_norm": "exact"}, buffer_tokens=300, merge_factor=100) as w:
        for doc_id, terms in random_docs(rng, 120).items():
            w.add(doc_id, terms)
    queries = QUERIES + [{w: 1} for w in WORDS] + [{"absent": 1, "w3": 2}]
    expected = results(InvertedIndex(path), queries)
    monkeypatch.setattr(inverted, "TERM_CACHE", 3)
    index = InvertedIndex(path)
    assert len(index.segments) > 1
    assert results(index, queries) == expected
    assert [list(zip(index.doc_ids.take(d), np.round(s, 4).tolist())) for d, s in
            index.search(queries, 20, InvertedParams("exhaustive"))] == expected
    one_by_one = [index.search([q], 20, InvertedParams("exhaustive"))[0] for q in queries]  # small vocabularies
    assert [list(zip(index.doc_ids.take(d), np.round(s, 4).tolist())) for d, s in one_by_one] == expected
    assert 0 < len(index._terms) <= 3


def test_a_query_alone_scores_bit_for_bit_as_in_a_batch(tmp_path):
    """A batch of one takes the per-query path (the bag straight to segment term ids); its hits and float32 scores
    equal those of the same query searched among others, in BM25 and impact indexes of several segments."""
    rng = random.Random(5)
    for mode in ("bm25", "impact"):
        path = tmp_path / mode
        with IndexWriter(path, {"mode": mode}, buffer_tokens=300, merge_factor=100) as w:
            for doc_id, terms in random_docs(rng, 150).items():
                w.add(doc_id, terms if mode == "bm25" else {t: rng.random() + 0.05 for t in terms})
        index = InvertedIndex(path)
        assert len(index.segments) > 1
        queries = [{t: rng.choice([1, 2, 0.7, 1.3e-3, 3.3, 0]) for t in rng.sample(WORDS, 3)} for _ in range(40)]
        queries += [{"absent": 1.5}, {}, {"w1": 1, "absent": 2}]
        for algorithm in ("maxscore", "exhaustive"):
            batch = index.search(queries, 15, InvertedParams(algorithm))
            for q, hits in zip(queries, batch):
                [alone] = index.search([q], 15, InvertedParams(algorithm))
                assert np.array_equal(alone.docnos, hits.docnos) and np.array_equal(alone.scores, hits.scores)


def test_write_segment_groups_interleaved_postings_by_term_and_refuses_bad_order(tmp_path):
    """write_segment takes postings with terms interleaved (each term's docnos increasing): grouped by term (a
    stable counting sort) they write the same file as the same postings given grouped; a term given the same doc
    twice, or its docnos out of order, is refused."""
    from rankstack.index.segment import Segment, write_segment

    rng = np.random.default_rng(0)
    terms = [f"t{i}" for i in range(40)]
    pairs = sorted({(int(t), int(d)) for t, d in zip(rng.integers(0, 40, 600), rng.integers(0, 50, 600))},
                   key=lambda p: (p[1], p[0]))  # doc after doc: terms interleaved, each term's docnos increasing
    t, d = np.array(pairs).T
    v = rng.integers(1, 5, len(t))
    lengths = np.bincount(d, weights=v, minlength=50).astype(np.int32)
    ids = [f"d{i}" for i in range(50)]
    write_segment(tmp_path / "interleaved.rsx", "bm25", "exact", terms, ids, None, t, d, v, lengths)
    by_term = np.lexsort((d, t))
    write_segment(tmp_path / "grouped.rsx", "bm25", "exact", terms, ids, None, t[by_term], d[by_term], v[by_term],
                  lengths)
    assert (tmp_path / "interleaved.rsx").read_bytes() == (tmp_path / "grouped.rsx").read_bytes()
    seg = Segment(tmp_path / "grouped.rsx")
    seg.verify()
    assert seg.term_df(seg.terms.positions(["t3"]))[0] == np.count_nonzero(t == 3)
    twice = np.concatenate([t, t[:1]]), np.concatenate([d, d[:1]]), np.concatenate([v, v[:1]])
    backwards = t[::-1], d[::-1], v[::-1]  # each term's docnos decreasing
    for bad_t, bad_d, bad_v in (twice, backwards):
        with pytest.raises(InputError, match="same term twice|out of docno order"):
            write_segment(tmp_path / f"bad{len(bad_t)}{bad_d[0]}.rsx", "bm25", "exact", terms, ids, None, bad_t, bad_d,
                          bad_v, lengths)
    for outside in (40, -1):
        with pytest.raises(InputError, match="term ids outside the 40 terms"):
            write_segment(tmp_path / f"outside{outside}.rsx", "bm25", "exact", terms, ids, None,
                          np.concatenate([t, [outside]]), np.concatenate([d, [49]]), np.concatenate([v, [1]]), lengths)
