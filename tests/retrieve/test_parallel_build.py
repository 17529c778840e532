"""BM25 builds with analysis and inversion in worker processes (rankstack.retrieve.parallel)."""

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rankstack import BM25, Corpus, Document
from rankstack.errors import InputError
from rankstack.index.commit import MANIFEST, WriterLock
from rankstack.index.inverted import IndexWriter, InvertedIndex
from rankstack.retrieve.bm25 import bm25_settings
from rankstack.retrieve.parallel import index_in_parallel
from rankstack.text.analyzer import Analyzer

SCIFACT = Path(__file__).resolve().parents[2] / "src/rankstack/data/embedded/scifact/corpus.jsonl.gz"
QUERIES = ["vitamin d bone density", "cancer cells", "the protein binds", "malaria vaccine trial", "zzz unknownword"]


def build_parallel(path, corpus, workers=2, part_docs=700, **settings):
    analyzer = Analyzer()
    with IndexWriter(path, bm25_settings(analyzer, **settings)) as writer:
        count = index_in_parallel(writer, corpus, analyzer, workers, progress=False, part_docs=part_docs)
    return count, BM25(path)


def same_index(a: BM25, b: BM25, k=50):
    """Same documents in the same order, same statistics, same hits and scores bit for bit."""
    assert len(a.index) == len(b.index) and a.index.num_docs == b.index.num_docs
    assert a.index.sum_lengths == b.index.sum_lengths
    assert list(a.index.doc_ids.take(np.arange(a.index.num_docs))) == \
        list(b.index.doc_ids.take(np.arange(b.index.num_docs)))
    for q in QUERIES:
        ha, hb = a.at_depth(k)({"q": q})["q"], b.at_depth(k)({"q": q})["q"]
        assert np.array_equal(ha.docnos, hb.docnos) and np.array_equal(ha.scores, hb.scores)
    assert a.document("4983") == b.document("4983")


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    return BM25.build(SCIFACT, tmp_path_factory.mktemp("serial") / "idx", progress=False)


def test_parallel_build_equals_serial_build(serial, tmp_path):
    count, parallel = build_parallel(tmp_path / "par", Corpus(SCIFACT))
    assert count == 5183
    # 8 parts of 700 documents: 8 segments adopted in corpus order (fewer than the merge factor: no merge)
    assert len(parallel.index.segments) == 8 and [s.num_docs for s in parallel.index.segments][:2] == [700, 700]
    same_index(parallel, serial)
    assert not [p for p in (tmp_path / "par").iterdir() if p.name.startswith("parts_")]  # staging removed
    listed = InvertedIndex(tmp_path / "par").manifest.file_names() | {MANIFEST, "write.lock"}
    assert {p.name for p in (tmp_path / "par").iterdir()} == listed


def test_many_parts_are_merged_by_the_writer_policy(serial, tmp_path):
    count, parallel = build_parallel(tmp_path / "par", Corpus(SCIFACT), part_docs=300)  # 18 parts
    assert count == 5183 and len(parallel.index.segments) < 18
    # a tiered merge writes the smallest segments together: the same documents, in another order
    for q in QUERIES:
        assert sorted(parallel.search(q, k=6000)) == sorted(serial.search(q, k=6000))


def test_bm25_build_workers_option(serial, tmp_path):
    parallel = BM25.build(SCIFACT, tmp_path / "par", workers=2, progress=False)
    same_index(parallel, serial)
    docs = [Document(f"n{i}", f"new document number {i} about zebras") for i in range(50)]
    assert parallel.add(docs, workers=2) == 50
    assert parallel.search("zebras", k=100)[0][0].startswith("n") and len(parallel.search("zebras", k=100)) == 50
    with pytest.raises(InputError, match="workers must be a positive integer"):
        BM25.build(SCIFACT, tmp_path / "bad", workers=0)


def test_parallel_parts_are_reordered_when_the_index_says_so(serial, tmp_path):
    """The workers write their parts reordered (the index's setting): same documents and scores as the serial
    build, each part's documents in a new order."""
    count, reordered = build_parallel(tmp_path / "par", Corpus(SCIFACT), reorder=True)
    assert count == 5183 and reordered.index.settings["reorder"] is True
    ids = list(reordered.index.doc_ids.take(np.arange(700)))
    assert sorted(ids) == sorted(serial.index.doc_ids.take(np.arange(700))) and ids != list(
        serial.index.doc_ids.take(np.arange(700)))
    for q in QUERIES:
        assert sorted(reordered.search(q, k=6000)) == sorted(serial.search(q, k=6000))


def test_duplicate_ids_across_parts_commit_nothing(tmp_path):
    docs = [Document(f"d{i}", f"text {i}") for i in range(30)] + [Document("d3", "again")]
    with pytest.raises(InputError, match="duplicate document id 'd3'.*documents 31 to 31"):
        build_parallel(tmp_path / "dup", docs, part_docs=10)
    assert not (tmp_path / "dup" / MANIFEST).exists()
    corpus = tmp_path / "dup.jsonl"  # within a part: the worker names both lines
    corpus.write_text('{"_id": "x", "text": "a"}\n{"_id": "y", "text": "b"}\n{"_id": "x", "text": "c"}\n')
    with pytest.raises(InputError, match=r"duplicate document id 'x' \(at .*line 1 and .*line 3\)"):
        build_parallel(tmp_path / "dup2", Corpus(corpus), part_docs=10)
    with IndexWriter(tmp_path / "dup") as w:  # the next writer removes what the failed build left
        w.commit()
    assert {p.name for p in (tmp_path / "dup").iterdir()} == {MANIFEST, "write.lock"}


class KillAWorker:
    """Documents that, once the pool is busy, SIGKILL one of its worker processes (a crashed worker)."""

    def __init__(self, corpus, after):
        self.corpus, self.after, self.killed = corpus, after, None

    def __iter__(self):
        for i, doc in enumerate(self.corpus):
            if i == self.after and self.killed is None:
                children = multiprocessing.active_children()
                assert children
                self.killed = children[0].pid
                os.kill(self.killed, signal.SIGKILL)
                time.sleep(0.2)
            yield doc


def test_a_killed_worker_has_its_part_redone(serial, tmp_path):
    docs = KillAWorker(Corpus(SCIFACT), after=2100)
    count, parallel = build_parallel(tmp_path / "par", docs)
    assert docs.killed and count == 5183
    same_index(parallel, serial)


KILLED_BUILD = """
import sys
from rankstack import Corpus
from rankstack.index.inverted import IndexWriter
from rankstack.retrieve.parallel import index_in_parallel
from rankstack.text.analyzer import Analyzer
with IndexWriter(sys.argv[2]) as writer:  # 26 parts of 200 documents, added to the index there
    index_in_parallel(writer, Corpus(sys.argv[1]), Analyzer(), 2, progress=False, part_docs=200)
"""


def test_a_killed_build_commits_nothing_and_leaves_nothing(serial, tmp_path):
    path = tmp_path / "killed"
    BM25.build([Document("old", "an older index")], path)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_BUILD, str(SCIFACT), str(path)], stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    # kill it once the first part was analysed (the staging folder holds a part file)
    deadline = time.time() + 120
    while time.time() < deadline and not any(path.glob("parts_*/part_*.rsx")):
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # still building: killed mid-build
    proc.kill()
    proc.wait()
    lock = WriterLock(path)
    lock.acquire()  # the dead writer's lock went with it (its workers, maybe still alive, hold none)
    lock.release()
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # then its workers too, as a crash of the machine would
    except ProcessLookupError:
        pass
    assert BM25(path).search("older") == [("old", pytest.approx(BM25(path).search("older")[0][1]))]
    with IndexWriter(path) as w:
        w.commit()
    listed = InvertedIndex(path).manifest.file_names() | {MANIFEST, "write.lock"}
    assert {p.name for p in path.iterdir()} == listed


WARM_WORKERS = """
import os, sys
from rankstack import Corpus
from rankstack.index.inverted import IndexWriter
from rankstack.retrieve import parallel
from rankstack.retrieve.bm25 import bm25_settings
from rankstack.text.ascii_tokens import _spans
from rankstack.index.segment import _invert

def write_part(*args):  # records, in each process, whether the kernels were loaded before its first part
    print(os.getpid(), bool(_spans.overloads), bool(_invert.overloads), flush=True)
    return write(*args)

write, parallel.write_part = parallel.write_part, write_part
analyzer = parallel.Analyzer()
with IndexWriter(sys.argv[2], bm25_settings(analyzer)) as writer:
    parallel.index_in_parallel(writer, Corpus(sys.argv[1]), analyzer, 2, progress=False, part_docs=1000)
print("driver", os.getpid())
"""


def test_forked_workers_inherit_the_drivers_loaded_kernels(tmp_path):
    """The driver loads the compiled kernels before the pool forks (a one-document part written and checked), so
    that no worker loads them again; run in a fresh interpreter, where nothing was loaded before."""
    out = subprocess.run([sys.executable, "-c", WARM_WORKERS, str(SCIFACT), str(tmp_path / "idx")],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    driver = out[-2].split()[1]
    calls = [line.split() for line in out[:-2]]
    assert calls[0] == [driver, "False", "False"]  # the warm-up part, in the driver
    workers = calls[1:]
    assert len(workers) == 6 and {pid for pid, *_ in workers} - {driver}
    assert all(pid != driver and loaded == ["True", "True"] for pid, *loaded in workers)
    assert len(BM25(tmp_path / "idx").index) == 5183


def test_cli_workers_flag(serial, tmp_path, capsys):
    from rankstack.cli import main

    assert main(["index", str(SCIFACT), str(tmp_path / "cli"), "--workers", "2"]) == 0
    same_index(BM25(tmp_path / "cli"), serial)
    assert main(["index", str(SCIFACT), str(tmp_path / "bad"), "--workers", "0"]) == 2
    assert "workers must be a positive integer" in capsys.readouterr().err
