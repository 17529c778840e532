"""Faults on a local Ray cluster: shard actors killed mid-batch (restarted, or a replica takes over), shards that
cannot answer (partial results, flagged), an encoding worker killed during a build, a driver killed and its build
resumed, a shard writer killed before its commit."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from rankstack import BM25, Queries, Run
from rankstack.distributed import PartialResultsWarning, ShardedBM25, ShardedSparse, build
from rankstack.distributed.workers import PART_RECORD
from rankstack.errors import InputError, RankstackError
from rankstack.index.commit import MANIFEST
from rankstack.index.inverted import IndexWriter, InvertedIndex

from .conftest import NEURAL_DOCS, SCIFACT, same_runs

SCIFACT_QUERIES = SCIFACT.with_name("queries.jsonl.gz")


@pytest.fixture(scope="module")
def scifact(cluster, tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults")
    single = BM25.build(SCIFACT, folder / "single", progress=False)
    sharded = build(SCIFACT, folder / "sharded", "bm25", shards=2, part_size=1000, progress=False)
    texts = list(Queries.read(SCIFACT_QUERIES).values())
    queries = Queries({f"q{i}": texts[i % len(texts)] for i in range(2500)})  # a batch that keeps shards busy
    return single, sharded, queries, single.at_depth(1000)(queries)


def kill_during_batch(stage, queries, shard):
    """Run the batch in a thread; SIGKILL the actor of `shard` that is searching; return the run and its pid."""
    ray = stage.pool.ray
    out = {}
    thread = threading.Thread(target=lambda: out.update(run=stage(queries)))
    thread.start()
    killed = None
    deadline = time.time() + 120
    while killed is None and time.time() < deadline and thread.is_alive():
        for status in ray.get([actor.status.remote() for actor in stage.pool.actors[shard]]):
            if status["busy"]:
                os.kill(status["pid"], signal.SIGKILL)
                killed = status["pid"]
                break
        else:
            time.sleep(0.002)
    thread.join()
    assert killed is not None, "the batch ended before the actor was seen searching"
    return out.get("run"), killed


def subset(run, qids):
    return Run({q: run[q] for q in qids}, run.doc_ids, presorted=True)


def test_a_killed_shard_actor_is_restarted_and_its_part_retried(scifact):
    single, sharded, queries, expected = scifact
    stage = ShardedBM25(sharded.path, algorithm="exhaustive")
    try:
        run, killed = kill_during_batch(stage, queries, shard=1)
        assert stage.pool.failures >= 1 and not run.partial
        same_runs(run, expected)
        assert stage.pool.status()[1][0]["pid"] != killed  # Ray started it again
    finally:
        stage.close()


def test_a_replica_takes_over(scifact):
    single, sharded, queries, expected = scifact
    stage = ShardedBM25(sharded.path, algorithm="exhaustive", replicas=2)
    try:
        run, killed = kill_during_batch(stage, queries, shard=0)
        same_runs(run, expected)
        assert stage.pool.failures >= 1 and killed not in [s['pid'] for s in stage.pool.status()[0]]
    finally:
        stage.close()


def test_a_shard_that_cannot_answer(scifact, tmp_path):
    single, sharded, queries, expected = scifact
    few = queries.subset(list(queries)[:20])
    lost = sharded.shards[1].path
    for partial in (True, False):
        # a server that keeps failing to start may also read as unreachable: waited for 2 s, not the default 30
        stage = ShardedBM25(sharded.path, allow_partial=partial, retries=2, unreachable_wait=2)
        pid = stage.pool.status()[1][0]["pid"]
        hidden = tmp_path / "hidden"
        lost.rename(hidden)  # the restarted actor cannot open its shard
        try:
            os.kill(pid, signal.SIGKILL)
            if partial:
                with pytest.warns(PartialResultsWarning, match=r"shards \[1\]"):
                    run = stage(few)
                assert run.partial and run.missing_shards == (1,)
                assert all((run[q].docnos < stage.pool.bases[1]).all() for q in run)  # only shard 0's documents
                assert sum(len(run[q].docnos) for q in run) > 0
            else:
                with pytest.raises(RankstackError, match="shard 1 .* failed: its actors died"):
                    stage(few)
        finally:
            hidden.rename(lost)
            stage.close()
    stage = ShardedBM25(sharded.path)  # the shard is back: complete results
    try:
        run = stage(few)
        assert not run.partial
        same_runs(run, subset(expected, few))
    finally:
        stage.close()


def test_bad_fault_settings_are_refused_before_any_server_starts(scifact):
    sharded = scifact[1]
    for bad in (-1, "30", True, float("nan")):
        with pytest.raises(InputError, match="unreachable_wait"):
            ShardedBM25(sharded.path, unreachable_wait=bad)
    with pytest.raises(InputError, match="replicas"):
        ShardedBM25(sharded.path, replicas=0)


def part_writer_pids(ray):
    from ray._private import state

    return [a["Pid"] for a in state.actors().values() if "PartWriter" in a["ActorClassName"] and a["State"] == "ALIVE"]


def test_a_killed_encoding_worker_loses_and_duplicates_nothing(cluster, pypi, encoders, tmp_path):
    from rankstack.retrieve.sparse import LearnedSparse

    encoder = encoders["sparse"]
    parts, out = tmp_path / "parts", {}
    total = -(-NEURAL_DOCS // 2)  # parts of 2 texts (every document has a title): many parts, a wide window
    thread = threading.Thread(target=lambda: out.update(index=build(
        pypi["neural"], tmp_path / "sharded", "sparse", encoder, shards=2, part_size=2, parts=parts,
        keep_parts=True, progress=False)))
    thread.start()
    killed, done_then = None, 0
    deadline = time.time() + 300
    while killed is None and time.time() < deadline and thread.is_alive():
        pids = part_writer_pids(cluster)
        done_then = len(list(parts.glob("part-*.json")))
        if pids and 0 < done_then < total:  # encoding is under way
            os.kill(pids[0], signal.SIGKILL)
            killed = pids[0]
        time.sleep(0.01)
    thread.join()
    assert killed is not None and done_then < total and "index" in out
    assert len(list(parts.glob("part-*.json"))) == total
    single = LearnedSparse.build(pypi["neural"], tmp_path / "single", encoder, shards=parts, shard_size=2,
                                 progress=False)
    ids = []
    for shard in out["index"].shards:
        index = InvertedIndex(shard.path)
        ids += index.doc_ids.take(np.arange(index.num_docs))
    assert ids == single.index.doc_ids.take(np.arange(single.index.num_docs))  # each document once, in order
    stage = ShardedSparse(out["index"].path, encoder, k=50)
    try:
        queries = pypi["neural_queries"].subset(list(pypi["neural_queries"])[:30])
        same_runs(stage(queries), single.at_depth(50)(queries))
    finally:
        stage.close()


DRIVER = """
import sys
from rankstack import distributed
distributed.init(address=sys.argv[1])
distributed.build(sys.argv[2], sys.argv[3], "bm25", shards=2, part_size=250, workers=1, progress=False)
"""


def test_a_build_resumes_after_its_driver_died(scifact, tmp_path):
    ray = pytest.importorskip("ray")
    single = scifact[0]
    path = tmp_path / "sharded"
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, ray.get_runtime_context().gcs_address, str(SCIFACT),
                             str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list((path / "parts").glob("part-*.json"))) < 3 and proc.poll() is None:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    done = {p.name: p.stat().st_mtime_ns for p in (path / "parts").glob("part-*.json")}
    assert 3 <= len(done) < 21 and not (path / MANIFEST).exists()
    index = build(SCIFACT, path, "bm25", shards=2, part_size=250, progress=False)
    assert not (path / "parts").exists()
    stage = ShardedBM25(index.path)
    try:
        queries = scifact[2].subset(list(scifact[2])[:300])
        same_runs(stage(queries), single.at_depth(1000)(queries))
    finally:
        stage.close()
    ids = []
    for shard in index.shards:
        ids += InvertedIndex(shard.path).doc_ids.take(np.arange(shard.num_docs))
    assert ids == single.index.doc_ids.take(np.arange(single.index.num_docs))


def test_resumed_parts_are_not_encoded_again(scifact, tmp_path):
    single = scifact[0]
    parts = tmp_path / "parts"
    build(SCIFACT, tmp_path / "a", "bm25", part_size=1000, parts=parts, keep_parts=True, progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in parts.glob("part-*")}
    assert len(before) == 2 * 6  # 6 parts: a segment and a record each
    (parts / PART_RECORD.format(2)).unlink()  # as if the build had died before part 2 was done
    build(SCIFACT, tmp_path / "b", "bm25", shards=3, part_size=1000, parts=parts, keep_parts=True, progress=False)
    after = {p.name: p.stat().st_mtime_ns for p in parts.glob("part-*")}
    assert sorted(name for name in after if after[name] != before.get(name)) == ["part-000002.json",
                                                                                 "part-000002.rsx"]
    stage = ShardedBM25(tmp_path / "b", k=10)
    try:
        queries = scifact[2].subset(list(scifact[2])[:100])
        same_runs(stage(queries), single.at_depth(10)(queries))
    finally:
        stage.close()


def test_a_shard_writer_that_dies_leaves_its_shard_at_its_last_commit(scifact):
    import ray

    single, sharded, queries, expected = scifact
    shard = sharded.shards[0].path
    before = InvertedIndex(shard).commit_id

    @ray.remote(max_retries=0)
    def doomed(path):
        writer = IndexWriter(path, buffer_tokens=1)
        writer.add("zebra-doc", ["zebra"])  # flushed: a segment file written, not committed
        writer.add("other-doc", ["zebra"])
        os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(ray.exceptions.RayError):
        ray.get(doomed.remote(str(shard)))
    assert InvertedIndex(shard).commit_id == before
    stage = ShardedBM25(sharded.path, k=1000)
    try:
        few = queries.subset(list(queries)[:50])
        same_runs(stage(few), subset(expected, few))
        assert stage.search("zebra") == []
    finally:
        stage.close()
    with IndexWriter(shard) as w:  # the next writer removes what the dead one left
        w.commit()
    listed = InvertedIndex(shard).manifest.file_names() | {MANIFEST, "write.lock"}
    assert {p.name for p in shard.iterdir()} == listed
