"""Kill harness: a writer process of each index type commits in a loop, announcing each commit's live document
count; it is killed (SIGKILL) at a random moment; the index must then open at a committed state (the last
announced, or the next one when the kill fell between the publish and the announcement), search, and take
a new writer that leaves only the files its manifest names. Used by tests/index/test_kills.py and bench/soak.py.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

KINDS = ("inverted", "dense", "plaid", "seismic")

# Each writer prints "p N" before a commit whose index holds N live documents, and "c N" once it returned.
WRITERS = {
    "inverted": """
from rankstack.index.inverted import IndexWriter
i = 0
while True:
    with IndexWriter(PATH, merge_factor=4, buffer_tokens=3000) as w:
        for j in range(200):
            w.add(f"d{i}-{j}", [f"t{(i * 31 + j * 7 + x) % 500}" for x in range(30)])
        w.delete([f"d{i - 1}-{j}" for j in range(0, 200, 2)])
        live = 200 + 100 * i
        print("p", live, flush=True)
    print("c", live, flush=True)
    i += 1
""",
    "dense": """
import numpy as np
from rankstack.index.dense import DenseIndexWriter
rng = np.random.default_rng(0)
i = 0
while True:
    with DenseIndexWriter(PATH, factory="Flat", dim=16, metric="ip", encoder={}, store_vectors="float16") as w:
        w.add([f"d{i}-{j}" for j in range(200)], rng.standard_normal((200, 16)))
        w.delete([f"d{i - 1}-{j}" for j in range(0, 200, 2)], missing="ignore")
        live = 200 + 100 * i
        print("p", live, flush=True)
    print("c", live, flush=True)
    i += 1
""",
    "plaid": """
import numpy as np
from rankstack.index.plaid import PlaidIndex
rng = np.random.default_rng(0)
def docs(n):
    out = [rng.standard_normal((4, 16)).astype(np.float32) for _ in range(n)]
    return [v / np.linalg.norm(v, axis=1, keepdims=True) for v in out]
print("p", 0, flush=True)
index = PlaidIndex.create(PATH, {"model": "m"}, docs(100), nbits=2, num_centroids=8)
print("c", 0, flush=True)
i = 0
while True:
    print("p", 50 * i + 100, flush=True)
    index.add([f"d{i}-{j}" for j in range(100)], docs(100))
    print("c", 50 * i + 100, flush=True)
    print("p", 50 * i + 50, flush=True)
    index.delete([f"d{i}-{j}" for j in range(0, 100, 2)])
    print("c", 50 * i + 50, flush=True)
    i += 1
""",
    "seismic": """
import numpy as np
import scipy.sparse as sp
from rankstack.index.seismic import SeismicIndex
i = 0
while True:
    m = sp.random(300 + i, 50, density=0.1, format="csr", random_state=i, dtype=np.float32)
    m.data += 0.1
    print("p", 300 + i, flush=True)
    SeismicIndex.build(PATH, m)
    print("c", 300 + i, flush=True)
    i += 1
""",
}


def live_count(kind: str, path: Path) -> int:
    """Open the index, search it, and return its number of live documents."""
    import numpy as np
    from rankstack.index.search import DenseParams, SparseQueries
    if kind == "inverted":
        from rankstack.index.inverted import InvertedIndex
        index = InvertedIndex(path)
        index.search([{"t1": 1}], 10)
        return index.num_live
    if kind == "dense":
        from rankstack.index.dense import DenseIndex
        index = DenseIndex(path, gpu=False)
        index.search(np.ones((1, 16), np.float32), 5, DenseParams(rescore=True))
        return index.num_live
    if kind == "plaid":
        from rankstack.index.plaid import PlaidIndex
        index = PlaidIndex(path)
        if index.num_docs:
            index.search([np.ones((2, 16), np.float32) / 4], 5)
        return index.num_docs
    from rankstack.index.seismic import SeismicIndex
    import scipy.sparse as sp
    index = SeismicIndex(path)
    index.search(SparseQueries.from_matrix(sp.csr_matrix(np.ones((1, 50), np.float32)), [str(i) for i in range(50)]), 5)
    return len(index)


def clean_up(kind: str, path: Path) -> set[str]:
    """Run the next writer (which removes what a killed one left) and return the files the directory holds
    beyond those its manifest names."""
    import numpy as np
    from rankstack.index import commit
    from rankstack.index.check import open_index
    if kind == "inverted":
        from rankstack.index.inverted import IndexWriter
        IndexWriter(path).close()
    elif kind == "dense":
        from rankstack.index.dense import DenseIndexWriter
        DenseIndexWriter(path).close()
    elif kind == "plaid":
        from rankstack.index.plaid import PlaidIndex
        PlaidIndex(path).add(["after"], [np.ones((2, 16), np.float32) / 4])
    else:
        import scipy.sparse as sp
        from rankstack.index.seismic import SeismicIndex
        SeismicIndex.build(path, sp.csr_matrix(np.ones((3, 50), np.float32)))
    names = {commit.MANIFEST, commit.LOCK} | open_index(path).manifest.file_names()
    return {p.name for p in path.iterdir()} - names


def _announcements(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if re.fullmatch(r"[pc] \d+", line.strip())]


def kill_once(kind: str, path: Path, delay: float) -> tuple[set[int], int, set[str]]:
    """Start a writer, let it commit at least once, kill it `delay` seconds later: (the live counts the index may
    hold: the last committed, or the one being committed when it died; the count it opens with; stray files
    left after a new writer)."""
    code = f"PATH = {str(path)!r}\n" + WRITERS[kind]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    lines: list[list[str]] = []  # ["p" or "c", count]; other output (a library's notice) is skipped
    while not lines or lines[-1][0] != "c":
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {kind} writer ended before its first commit")
        lines += _announcements(line)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    rest, _ = proc.communicate()
    lines += _announcements(rest)
    committed = [int(n) for tag, n in lines if tag == "c"][-1]
    pending = int(lines[-1][1]) if lines[-1][0] == "p" else committed
    return {committed, pending}, live_count(kind, path), clean_up(kind, path)
