"""Sharded indexes built on a local Ray cluster and searched by shard actors give the single-node index's results,
scores included, bit for bit; the sharded stages follow the Stage contract."""

import numpy as np
import pytest

from rankstack import BM25
from rankstack.distributed import ShardedBM25, ShardedDense, ShardedSparse, ShardTexts, build
from rankstack.errors import IncompatibleIndexError, InputError
from rankstack.index.commit import MANIFEST
from rankstack.pipeline.config import parse
from rankstack.rerank.texts import IndexTexts

from .conftest import same_runs


@pytest.fixture(scope="module")
def bm25_indexes(cluster, pypi, tmp_path_factory):
    """One BM25 index (BM25.build) and 2- and 4-shard ones (the two builds share their analysed parts)."""
    folder = tmp_path_factory.mktemp("bm25")
    single = BM25.build(pypi["bm25"], folder / "single", progress=False)
    parts = folder / "parts"
    part_size = max(1, -(-int(single.index.num_docs) // 8))  # 8 parts
    sharded = {n: build(pypi["bm25"], folder / f"shards{n}", "bm25", shards=n, part_size=part_size, parts=parts,
                        keep_parts=True, progress=False) for n in (2, 4)}
    return single, sharded


def test_bm25_shards_equal_one_index(bm25_indexes, pypi):
    single, sharded = bm25_indexes
    queries = pypi["queries"]
    expected = single(queries)  # k=1000
    for n, index in sharded.items():
        assert len(index.shards) == n and sum(s.num_docs for s in index.shards) == single.index.num_docs
        stage = ShardedBM25(index.path)
        try:
            hits = same_runs(stage(queries), expected)
            assert hits > 20 * len(queries)  # most queries have many hits
            cut = (stage % 10)(queries)  # the cut-off is pushed into the shards
            assert same_runs(cut, single.at_depth(10)(queries)) and max(len(cut[q].docnos) for q in cut) == 10
            # every exact algorithm, with the collection's statistics (on 2 shards: fewer actors to start)
            few = queries.subset(list(queries)[:200])
            for algorithm in ("bmw", "exhaustive") if n == 2 else ():
                other = ShardedBM25(index.path, k=100, algorithm=algorithm)
                try:
                    same_runs(other(few), BM25(single.index, k=100, algorithm=algorithm)(few))
                finally:
                    other.close()
        finally:
            stage.close()


def test_a_shard_is_an_index_and_shards_hold_the_corpus_in_order(bm25_indexes):
    single, sharded = bm25_indexes
    ids = []
    for shard in sharded[4].shards:
        alone = BM25(shard.path)  # each shard is a complete BM25 index
        ids += alone.index.doc_ids.take(np.arange(alone.index.num_docs))
    assert ids == single.index.doc_ids.take(np.arange(single.index.num_docs))
    assert {p.name for p in sharded[4].path.iterdir()} == {s.name for s in sharded[4].shards} | {MANIFEST,
                                                                                                "write.lock"}


def test_sharded_stage_contract(bm25_indexes, pypi):
    single, sharded = bm25_indexes
    stage = ShardedBM25(sharded[2].path, k=50, replicas=2)
    queries = pypi["queries"].subset(list(pypi["queries"])[:50])
    try:
        text = repr(stage)
        assert text == f"ShardedBM25(index={str(sharded[2].path)!r}, k=50, replicas=2, algorithm='maxscore', " \
                       "theta=1.0)"
        rebuilt = parse(text)
        try:
            same_runs(rebuilt(queries), stage(queries))
        finally:
            rebuilt.close()
        assert repr(stage % 10) == f"{text} % 10"
        assert stage.search(queries[list(queries)[0]], k=3) == single.search(queries[list(queries)[0]], k=3)
        assert stage.identity() == [s.commit for s in sharded[2].shards]
        ids = single.index.doc_ids.take(np.array([0, single.index.num_docs - 1, 7]))
        assert ShardTexts(stage).texts(ids) == IndexTexts(single).texts(ids)
        with pytest.raises(InputError, match="not in the sharded index"):
            ShardTexts(stage).texts(["no such document"])
        with pytest.raises(IncompatibleIndexError, match="bm25 shards"):
            ShardedDense(sharded[2].path)
    finally:
        stage.close()


def test_build_refuses_bad_input(cluster, tmp_path):
    with pytest.raises(InputError, match="unknown kind"):
        build(tmp_path / "x.jsonl", tmp_path / "i", "colbert")
    with pytest.raises(InputError, match="does not exist"):
        build(tmp_path / "missing.jsonl", tmp_path / "i", "bm25")
    with pytest.raises(InputError, match="shards must be a positive integer"):
        build(tmp_path / "missing.jsonl", tmp_path / "i", "bm25", shards=0)
    with pytest.raises(InputError, match="needs an encoder"):
        corpus = tmp_path / "c.jsonl"
        corpus.write_text('{"_id": "a", "text": "x"}\n')
        build(corpus, tmp_path / "i", "sparse")


@pytest.fixture(scope="module")
def neural(cluster, pypi, encoders, tmp_path_factory):
    """A SPLADE-style and a dense encoder (tiny, random: see conftest) over a small slice: 2- and 4-shard indexes
    from one encoding (shared parts), and the one-node index that LearnedSparse.build / Dense.build make of the
    same encoded parts (so that both hold the same vectors)."""
    from rankstack.retrieve.dense import Dense
    from rankstack.retrieve.sparse import LearnedSparse

    folder = tmp_path_factory.mktemp("neural")
    corpus = pypi["neural"]
    out = {}
    for kind, encoder in encoders.items():
        parts, part_size = folder / f"{kind}-parts", 25
        sharded = {n: build(corpus, folder / f"{kind}{n}", kind, encoder, shards=n, part_size=part_size,
                            parts=parts, keep_parts=True, progress=False) for n in (2, 4)}
        if kind == "sparse":
            single = LearnedSparse.build(corpus, folder / f"{kind}1", encoder, shards=parts, shard_size=part_size,
                                         progress=False)
        else:
            single = Dense.build(corpus, folder / f"{kind}1", encoder, shards=parts, shard_size=part_size)
        out[kind] = (single, sharded, encoder)
    return out


def batches(queries, size):
    qids = list(queries)
    return [queries.subset(qids[i:i + size]) for i in range(0, len(qids), size)]


@pytest.mark.parametrize("kind", ["sparse", "dense"])
def test_neural_shards_equal_one_index(neural, pypi, kind):
    """Sparse: the whole batch at once. Dense: both sides are given the same batches of 10 queries (each encoded in
    one call, so both hold the same query vectors), which FAISS scores one dot product per (query, document) pair
    (below its BLAS threshold of 20 queries), the same float sums whatever the shard; a larger batch is scored by a
    blocked matrix product whose rounding depends on the matrix shapes (bench_ray.py measures that difference).
    Documents of equal text tie: which of those tied at the k-th score FAISS keeps is its heap's choice, so the
    one-node side is searched at 2k and cut to k, which keeps the lowest doc numbers, as the shards' merge does."""
    single, sharded, encoder = neural[kind]
    queries = pypi["neural_queries"]
    for n, index in sharded.items():
        stage = (ShardedSparse if kind == "sparse" else ShardedDense)(index.path, encoder, k=100)
        try:
            if kind == "sparse":
                assert same_runs(stage(queries), single.at_depth(100)(queries)) >= 10 * len(queries)
            else:
                hits = sum(same_runs(stage(part), single.at_depth(200)(part).cut(100))
                           for part in batches(queries, 10))
                assert hits == 100 * len(queries)  # every query has k hits (dense: every document scores)
        finally:
            stage.close()
