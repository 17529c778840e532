"""Cost of Document checks (field types, lone surrogates): this tree against another source tree, in one run.

For each tree, in alternating rounds, a child process times (1) iterating ``Corpus`` over pypi-summaries'
corpus.jsonl.gz (778k documents: read, decompress, parse, build Documents) and (2) building the same Documents
in Python, ``Document(id, text, title)``, from fields already in memory (the path of Documents built by users).

    PYTHONPATH=src python bench/bench_documents.py --before /path/to/other/checkout/src [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = """
import json, sys, time
from rankstack.data.corpus import Corpus, Document
path = sys.argv[1]
start = time.perf_counter()
fields = [tuple(d) for d in Corpus(path)]
iterate = time.perf_counter() - start
start = time.perf_counter()
for doc_id, text, title in fields:
    Document(doc_id, text, title)
construct = time.perf_counter() - start
print(json.dumps({"iterate": iterate, "construct": construct, "documents": len(fields),
                  "non_ascii": sum(not (i.isascii() and t.isascii() and ti.isascii()) for i, t, ti in fields)}))
"""


def measure(src: Path, corpus: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(corpus)], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(src), "PATH": ""})
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="src folder of the tree to compare against")
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/pypi-summaries"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": (Path(__file__).resolve().parents[1] / "src")}
    corpus = args.data / "corpus.jsonl.gz"

    runs: dict[str, list[dict]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, src in trees.items():
            runs[name].append(measure(src, corpus))
    first = runs["after"][0]
    print(f"{first['documents']:,} documents, {first['non_ascii']:,} with a non-ASCII field; "
          f"median of {args.rounds} rounds")
    for what in ("iterate", "construct"):
        before, after = (statistics.median(r[what] for r in runs[name]) for name in trees)
        label = "Corpus iteration" if what == "iterate" else "Document(...) in Python"
        print(f"{label:24s} before {before:6.3f}s  after {after:6.3f}s  "
              f"({(after - before) / first['documents'] * 1e9:+.0f} ns/doc, {after / before - 1:+.1%})")


if __name__ == "__main__":
    main()
