"""Damage harness: build small indexes of every type, damage a copy (a flipped byte, a truncated file), and search
it in a worker process, so that a crash (a signal, a heap abort) is caught rather than taking the tests down.

The outcome of each case is one of "unchanged" (the same results as the undamaged index), "error" (an
IndexFormatError), or a failure: "wrong" (other results, silently), "exception" (any other exception: a
traceback for the user) or "crash" (the worker died). Used by tests/index/test_fuzz.py and bench/soak.py.

    python -m tests.index.damage    # the worker: reads "kind path" lines, prints one JSON result a line
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from rankstack.index.search import DenseParams, InvertedParams, PlaidParams, SeismicParams, SparseQueries

KINDS = ("inverted", "impact", "dense", "plaid", "seismic")
DIM = 16


def build(kind: str, path: Path, seed: int = 0) -> None:
    """A small index of `kind` at `path`, with several segments and deletions where the type has them."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(60)]
    if kind in ("inverted", "impact"):
        from rankstack.index.inverted import IndexWriter
        settings = {"mode": "bm25"} if kind == "inverted" else {"mode": "impact"}
        for part in range(3):
            with IndexWriter(path, settings, merge_factor=100) as w:
                for i in range(150):
                    terms = rng.choice(words, size=int(rng.integers(1, 30)))
                    if kind == "inverted":
                        w.add(f"p{part}-{i}", list(terms), stored=f"text {i}")
                    else:
                        w.add(f"p{part}-{i}", {t: float(rng.random() * 3) for t in set(terms)})
                w.delete([f"p{part - 1}-{i}" for i in range(0, 150, 7)])
    elif kind == "dense":
        from rankstack.index.dense import DenseIndexWriter
        with DenseIndexWriter(path, factory="Flat", dim=DIM, metric="ip", encoder={}, store_vectors="float16") as w:
            w.add([f"d{i}" for i in range(300)], rng.standard_normal((300, DIM)))
        with DenseIndexWriter(path) as w:
            w.delete([f"d{i}" for i in range(0, 300, 9)])
    elif kind == "plaid":
        from rankstack.index.plaid import PlaidIndex
        docs = [_unit(rng.standard_normal((int(rng.integers(2, 8)), DIM))) for _ in range(120)]
        index = PlaidIndex.create(path, {"model": "m"}, docs, nbits=2, num_centroids=8, store_vectors="float16")
        index.add([f"d{i}" for i in range(60)], docs[:60])
        index.add([f"d{i}" for i in range(60, 120)], docs[60:])
        index.delete([f"d{i}" for i in range(0, 120, 11)])
    elif kind == "seismic":
        import scipy.sparse as sp
        from rankstack.index.seismic import SeismicIndex
        m = sp.random(400, 80, density=0.08, format="csr", random_state=seed, dtype=np.float32)
        m.data += 0.05
        SeismicIndex.build(path, m, n_postings=60, small_list=4)
    else:
        raise ValueError(kind)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def search(kind: str, path: Path) -> list:
    """Deterministic searches over the index: what a damaged copy must reproduce exactly (or refuse)."""
    rng = np.random.default_rng(7)
    if kind in ("inverted", "impact"):
        from rankstack.index.inverted import InvertedIndex
        index = InvertedIndex(path)
        out = []
        for q in range(6):
            query = {f"w{int(t)}": float(rng.integers(1, 3)) for t in rng.choice(60, size=3)}
            for k, algorithm in ((5, "maxscore"), (1000, "bmw"), (50, "exhaustive")):
                docs, scores = index.search([query], k, InvertedParams(algorithm))[0]
                out.append([index.doc_ids.take(docs), scores.tolist()])
        if kind == "inverted":
            out.append(index.stored([index.docno("p1-3")]))
        return out
    if kind == "dense":
        from rankstack.index.dense import DenseIndex
        index = DenseIndex(path, gpu=False)
        hits = index.search(rng.standard_normal((4, DIM)).astype(np.float32), 20, DenseParams(rescore=True))
        return [[index.doc_ids.take(h.docnos), h.scores.tolist()] for h in hits]
    if kind == "plaid":
        from rankstack.index.plaid import PlaidIndex
        index = PlaidIndex(path)
        out = []
        for _ in range(4):
            for rescore in (False, True):
                [hits] = index.search([_unit(rng.standard_normal((3, DIM)))], 10, PlaidParams(2, rescore=rescore))
                out.append([index.doc_ids.take(hits.docnos), hits.scores.tolist()])
        return out
    import scipy.sparse as sp
    from rankstack.index.seismic import SeismicIndex
    index = SeismicIndex(path)
    queries = sp.random(4, 80, density=0.1, format="csr", random_state=3, dtype=np.float32)
    batch = SparseQueries.from_matrix(queries, [str(i) for i in range(80)])
    return [[d.tolist(), s.tolist()] for d, s in index.search(batch, 20, SeismicParams(threads=1))]


def damage(path: Path, rng: random.Random) -> str:
    """Flip one byte of one file of the index (or truncate it); returns what was done."""
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name != "write.lock")
    target = rng.choice(files)
    data = bytearray(target.read_bytes())
    if not data or rng.random() < 0.25:
        cut = rng.randrange(len(data)) if data else 0
        target.write_bytes(bytes(data[:cut]))
        return f"truncated {target.name} to {cut} of {len(data)} bytes"
    at = rng.randrange(len(data))
    data[at] ^= rng.randrange(1, 256)
    target.write_bytes(bytes(data))
    return f"flipped byte {at} of {target.name} ({len(data)} bytes)"


class Worker:
    """A process that searches index copies on request; restarted after it dies."""

    def __init__(self):
        self.proc = None

    def ask(self, kind: str, path: Path, timeout: float = 60.0) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            root = Path(__file__).resolve().parents[2]
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *sys.path])}
            self.proc = subprocess.Popen([sys.executable, "-m", "tests.index.damage"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                                         cwd=root)
        self.proc.stdin.write(f"{kind} {path}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait(timeout)
            self.proc = None
            return {"crash": code}
        return json.loads(line)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


def outcome(result: dict, reference: list) -> str:
    if "crash" in result:
        return "crash"
    if "error" in result:
        return "error" if result["error"] == "IndexFormatError" else "exception"
    return "unchanged" if result["results"] == reference else "wrong"


def run_case(worker: Worker, kind: str, original: Path, scratch: Path, rng: random.Random,
             reference: list) -> tuple[str, str, dict]:
    """Damage a fresh copy of `original` and search it: (outcome, what was damaged, the worker's answer)."""
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(original, scratch)
    what = damage(scratch, rng)
    result = worker.ask(kind, scratch)
    return outcome(result, reference), what, result


def _serve() -> None:
    from rankstack.errors import RankstackError
    for line in sys.stdin:
        kind, path = line.split(maxsplit=1)
        try:
            answer = {"results": json.loads(json.dumps(search(kind, Path(path.strip()))))}
        except RankstackError as e:
            answer = {"error": type(e).__name__, "message": str(e)}
        except Exception as e:  # noqa: BLE001 - reported as a failure by the caller
            answer = {"error": type(e).__name__, "message": str(e)}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    _serve()
