"""Where a one-process BM25 build's time goes: each stage of `BM25.build` run alone over the whole corpus, in the
order the build runs them, thread CPU seconds each (the cyclic garbage collector paused, as the build pauses it).

    PYTHONPATH=src python bench/build_stages.py [--docs N]
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

from bench_build import CORPUS, read_corpus
from rankstack import Document
from rankstack.index.segment import SegmentBuilder
from rankstack.retrieve.bm25 import INDEX_BATCH, Columns, analyze_documents, batches, located
from rankstack.text import Analyzer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=None, help="the first N documents (default: all)")
    args = parser.parse_args()
    ids, texts = read_corpus(CORPUS, args.docs)
    Analyzer().analyze_batch(["load the compiled kernels"])
    gc.disable()
    seconds: dict[str, float] = {}

    def timed(stage: str, work):
        start = time.thread_time()
        result = work()
        seconds[stage] = time.thread_time() - start
        return result

    docs = timed("Documents", lambda: [Document(i, t) for i, t in zip(ids, texts)])
    columns = timed("batches and columns", lambda: [Columns.of(b) for b in batches(located(docs), INDEX_BATCH)])
    analyzer = Analyzer()
    analyzed = timed("analysis", lambda: [analyze_documents(c, analyzer, False) for c in columns])
    builder = SegmentBuilder("bm25", False, "lucene")
    timed("add_batch", lambda: [builder.add_batch(**a) for a in analyzed])
    with tempfile.TemporaryDirectory() as tmp:
        timed("segment write", lambda: builder.write(Path(tmp) / "segment.rsx"))
    total = sum(seconds.values())
    print(f"{len(ids):,} documents, {total:.2f} CPU s in all")
    for stage, s in seconds.items():
        print(f"{stage:20} {s:6.2f} s  {s / total:5.1%}")


if __name__ == "__main__":
    main()
