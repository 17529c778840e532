"""Index integrity: the defects of issue 13, each reproduced, and the guarantees of the commit module."""

import os
import subprocess
import sys

import numpy as np
import pytest

from rankstack import BM25, Document
from rankstack.errors import IndexFormatError, InputError, RankstackError
from rankstack.index.check import check_index, open_index
from rankstack.index.inverted import IndexWriter, InvertedIndex
from rankstack.index.search import PlaidParams, SeismicParams, SparseQueries
from rankstack.index.seismic import SeismicIndex

DOCS = [Document("a", "cats and dogs"), Document("b", "dogs chase cats"), Document("c", "stock markets fell")]


def ids(index, query, k=10):
    return index.doc_ids.take(index.search([query], k)[0].docnos)


def test_documents_without_indexable_terms_break_no_search(tmp_path):
    bm25 = BM25.build(DOCS + [Document("empty", "")], tmp_path / "idx", progress=False)
    bm25.add([Document("stop", "the of and")])  # stopwords only: a segment with no terms at all
    for stage in (bm25, BM25(tmp_path / "idx")):
        assert [d for d, _ in stage.search("cats")] == ["a", "b"]
        assert stage.search("the") == []
        assert stage.document("stop").text == "the of and"
    with IndexWriter(tmp_path / "only") as w:
        w.add("x", [])
    assert InvertedIndex(tmp_path / "only").search([{"y": 1}], 5)[0].docnos.tolist() == []


def test_operations_apply_in_order_within_one_commit(tmp_path):
    path = tmp_path / "idx"
    with IndexWriter(path) as w:
        w.add("a", ["old"])
        w.add("b", ["old"])
    with IndexWriter(path, buffer_tokens=1) as w:  # flushes after every document: pending segments too
        w.delete(["a"])
        w.add("a", ["new"])  # added after its delete: survives, as in Lucene
        w.add("c", ["new"])
        w.delete(["c"])      # added before its delete: gone
        w.add("c", ["newer"])
    index = InvertedIndex(path)
    assert ids(index, {"old": 1}) == ["b"]
    assert ids(index, {"new": 1}) == ["a"] and ids(index, {"newer": 1}) == ["c"]
    assert index.num_live == 3
    with IndexWriter(path) as w:
        w.add("d", ["x"])
        w.delete(["d"])
        w.add("d", ["y"])
        w.delete(["d"])
    assert InvertedIndex(path).docno("d") == -1


def test_overwrite_takes_the_writer_lock_and_replaces_at_commit(tmp_path):
    path = tmp_path / "idx"
    BM25.build(DOCS, path, progress=False)
    writer = IndexWriter(path)
    writer.add("pending", ["x"])
    with pytest.raises(RankstackError, match="already open for writing"):
        BM25.build([Document("z", "zebra")], path, overwrite=True, progress=False)
    writer.commit()
    writer.close()
    assert InvertedIndex(path).docno("pending") >= 0  # the other writer's documents were not destroyed

    def failing():
        yield Document("z", "zebra")
        raise RuntimeError("the corpus broke midway")

    with pytest.raises(RuntimeError):
        BM25.build(failing(), path, overwrite=True, progress=False)
    assert InvertedIndex(path).num_live == 4  # the old index, whole, until a rebuild commits
    rebuilt = BM25.build([Document("z", "zebra")], path, overwrite=True, progress=False)
    assert len(rebuilt.index) == 1 and rebuilt.search("zebra") == [("z", pytest.approx(rebuilt.search("zebra")[0][1]))]
    manifest = InvertedIndex(path).manifest
    assert {p.name for p in path.iterdir()} == {"manifest.json", "write.lock", *manifest.file_names()}


def test_a_commit_fsyncs_every_new_file_and_the_directory_before_the_manifest(tmp_path, monkeypatch):
    path = tmp_path / "idx"
    with IndexWriter(path) as w:
        w.add("a", ["x"])
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    with IndexWriter(path) as w:
        w.add("b", ["y"])
        w.delete(["a"])
    monkeypatch.undo()
    manifest = InvertedIndex(path).manifest
    new_files = {s.files["data"].name for s in manifest.segments} | {s.deletes.name for s in manifest.segments
                                                                      if s.deletes}
    published = events.index(("replace", "manifest.json"))
    synced_before = {name for kind, name in events[:published] if kind == "fsync"}
    assert new_files <= synced_before and "idx" in synced_before and "manifest.json.tmp" in synced_before
    assert ("fsync", "idx") in events[published:]  # the rename itself made durable


def test_query_weights_must_be_finite_and_bounded(tmp_path):
    with IndexWriter(tmp_path / "idx") as w:
        w.add("a", ["x", "y"])
    index = InvertedIndex(tmp_path / "idx")
    for bad in (float("nan"), float("inf"), -1.0, 1e38, "2"):
        with pytest.raises(InputError, match="query weight of 'x'"):
            index.search([{"x": bad, "y": 1.0}])
    assert np.isfinite(index.search([{"x": 1e6}])[0].scores).all()
    for k in (2.5, 0, True):
        with pytest.raises(InputError, match="k must be"):
            index.search([{"x": 1}], k)


def test_a_snapshot_holds_at_most_one_descriptor_per_segment(tmp_path):
    path = tmp_path / "idx"
    with IndexWriter(path, {"length_norm": "exact"}, merge_factor=1000) as w:
        for s in range(20):
            for i in range(3000):  # segments over a MiB: memory-mapped, not read whole
                w.add(f"s{s}-{i}", [f"t{(i * 7 + j) % 5000}" for j in range(60)], stored="x" * 200)
            w.commit()
    before = len(os.listdir("/proc/self/fd"))
    snapshots = [InvertedIndex(path), InvertedIndex(path)]
    for s in snapshots:
        s.search([{"t1": 1}], 10)
    opened = len(os.listdir("/proc/self/fd")) - before
    assert len(snapshots[0].segments) == 20 and opened <= 2 * 20  # was 21 per segment: 847 for two snapshots


def test_killed_seismic_rebuild_leaves_nothing_behind(tmp_path):
    import scipy.sparse as sp

    path = tmp_path / "seismic"
    matrix = sp.random(200, 50, density=0.1, format="csr", random_state=1, dtype=np.float32)
    matrix.data += 0.1
    SeismicIndex.build(path, matrix)
    (path / "data_0123456789ab.rsx").write_bytes(b"half a build")  # what a killed rebuild leaves
    (path / "manifest.json.tmp").write_text("{")
    SeismicIndex.build(path, matrix)
    assert {p.name for p in path.iterdir()} == {"manifest.json", "write.lock",
                                                 *SeismicIndex(path).manifest.file_names()}


def test_a_manifest_that_is_not_an_object_is_a_format_error(tmp_path):
    BM25.build(DOCS, tmp_path / "idx", progress=False)
    for text in ("[]", "null", '"x"', '{"format": "rankstack-inverted-index", "version": 2}', "\x00\xff"):
        (tmp_path / "idx" / "manifest.json").write_text(text, encoding="latin-1")
        with pytest.raises(IndexFormatError):
            InvertedIndex(tmp_path / "idx")


def test_every_byte_of_a_container_is_checked(tmp_path):
    """A flipped byte anywhere (header, table of contents, alignment padding, an array) is an IndexFormatError."""
    from rankstack.index.container import Container, write_container

    write_container(tmp_path / "c.rsx", {"a": np.arange(3, dtype=np.int8), "b": np.arange(5, dtype=np.int64)}, {"m": 1})
    good = (tmp_path / "c.rsx").read_bytes()
    for at in range(len(good)):
        (tmp_path / "d.rsx").unlink(missing_ok=True)
        (tmp_path / "d.rsx").write_bytes(good[:at] + bytes([good[at] ^ 0x10]) + good[at + 1:])
        with pytest.raises(IndexFormatError):
            Container(tmp_path / "d.rsx")


def test_check_reports_every_damaged_file_and_open_index_opens_any_type(tmp_path):
    path = tmp_path / "idx"
    with IndexWriter(path, merge_factor=100) as w:
        for i in range(3):
            w.add(f"d{i}", ["x", f"t{i}"])
            w.commit()
        w.delete(["d0"])
    assert check_index(path).ok and isinstance(open_index(path), InvertedIndex)
    manifest = InvertedIndex(path).manifest
    for segment in manifest.segments[:2]:
        target = path / segment.files["data"].name
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0x10  # (in an array or in the padding between two)
        target.write_bytes(bytes(data))
    report = check_index(path)
    assert not report.ok and sum(status.startswith("is damaged") for _, _, status in report.files) == 2


def _concurrent(tmp_path, writer_code, reader_code, seconds=4.0):
    """Run a writer process that commits continuously while this process opens and searches snapshots."""
    script = tmp_path / "writer.py"
    script.write_text(writer_code)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "idx")], stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "ready"
        import time
        reader_code(tmp_path / "idx")  # untimed: on a cold numba cache it compiles the kernels
        deadline, opens = time.monotonic() + seconds, 0
        while time.monotonic() < deadline:
            reader_code(tmp_path / "idx")
            opens += 1
    finally:
        proc.kill()
        proc.wait()
    return opens


INVERTED_WRITER = """
import sys
from rankstack.index.inverted import IndexWriter
path = sys.argv[1]
with IndexWriter(path, merge_factor=3) as w:
    for i in range(50):
        w.add(f"base{i}", ["x", f"t{i % 7}"])
print("ready", flush=True)
i = 0
while True:
    with IndexWriter(path, merge_factor=3) as w:
        w.add(f"n{i}", ["x", "y"])
        w.delete([f"base{i % 50}", f"n{i - 2}"])
    i += 1
"""


def test_inverted_readers_never_fail_under_a_writer(tmp_path):
    def read(path):
        index = InvertedIndex(path)
        docs, _ = index.search([{"x": 1}], 100)[0]
        assert len(docs) == index.num_live  # every live document matches "x": a consistent snapshot

    assert _concurrent(tmp_path, INVERTED_WRITER, read) > 20


PLAID_WRITER = """
import sys
import numpy as np
from rankstack.index.plaid import PlaidIndex
path = sys.argv[1]
rng = np.random.default_rng(0)
def doc():
    v = rng.standard_normal((4, 8)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)
index = PlaidIndex.create(path, {"model": "m"}, np.concatenate([doc() for _ in range(60)]), nbits=2,
                          num_centroids=4)
index.add([f"b{i}" for i in range(30)], [doc() for _ in range(30)])
print("ready", flush=True)
i = 0
while True:
    index.add([f"n{i}"], [doc()])
    if i:
        index.delete([f"n{i - 1}"])
    i += 1
"""


def test_plaid_readers_never_fail_under_a_writer(tmp_path):
    from rankstack.index.plaid import PlaidIndex

    def read(path):
        index = PlaidIndex(path)
        [hits] = index.search([np.ones((2, 8), np.float32) / np.sqrt(8)], 200, PlaidParams(4, 1000))
        assert len(hits.docnos) == index.num_docs

    assert _concurrent(tmp_path, PLAID_WRITER, read) > 10


DENSE_WRITER = """
import sys
import numpy as np
from rankstack.index.dense import DenseIndexWriter
path = sys.argv[1]
rng = np.random.default_rng(0)
with DenseIndexWriter(path, factory="Flat", dim=8, metric="ip", encoder={}) as w:
    w.add([f"b{i}" for i in range(40)], rng.standard_normal((40, 8)))
print("ready", flush=True)
i = 0
while True:
    with DenseIndexWriter(path) as w:
        w.add([f"n{i}"], rng.standard_normal((1, 8)))
        w.delete([f"b{i % 40}", f"n{i - 40}"], missing="ignore")  # live count stays near 40
    i += 1
"""


def test_dense_readers_never_fail_under_a_writer(tmp_path):
    pytest.importorskip("faiss")
    from rankstack.index.dense import DenseIndex

    def read(path):
        index = DenseIndex(path, gpu=False)
        rows, _ = index.search_arrays(np.ones((1, 8), np.float32), k=1000)
        assert (rows >= 0).sum() == index.num_live

    assert _concurrent(tmp_path, DENSE_WRITER, read) > 20


SEISMIC_WRITER = """
import sys
import numpy as np
import scipy.sparse as sp
from rankstack.index.search import PlaidParams, SeismicParams, SparseQueries
from rankstack.index.seismic import SeismicIndex
path = sys.argv[1]
i = 0
while True:
    m = sp.random(100 + i % 50, 30, density=0.2, format="csr", random_state=i, dtype=np.float32)
    m.data += 0.1
    SeismicIndex.build(path, m)
    if i == 0:
        print("ready", flush=True)
    i += 1
"""


def test_seismic_readers_never_fail_under_rebuilds(tmp_path):
    import scipy.sparse as sp

    query = sp.csr_matrix(np.ones((1, 30), np.float32))
    range30 = [str(i) for i in range(30)]

    def read(path):
        index = SeismicIndex(path)
        docs, _ = index.search(SparseQueries.from_matrix(query, range30), 500, SeismicParams(None, 1.0))[0]
        assert len(docs) <= len(index)

    assert _concurrent(tmp_path, SEISMIC_WRITER, read) > 20
