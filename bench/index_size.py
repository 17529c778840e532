"""Size on disk of rankstack's BM25 index of a corpus, by component (README, issue 3).

    PYTHONPATH=src python bench/index_size.py [../shared/data/pypi-summaries/corpus.jsonl.gz]
"""

import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from rankstack import BM25, Corpus  # noqa: E402

GROUPS = {"ids": "doc-id table", "terms": "vocabulary", "doc_lengths": "document lengths", "data": "postings"}


def main() -> None:
    corpus = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared/data/pypi-summaries/corpus.jsonl.gz"
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        BM25.build(Corpus(corpus), Path(tmp) / "index", store=False, progress=False)
        seconds = time.perf_counter() - start
        sizes = Counter()
        for f in (Path(tmp) / "index").rglob("*"):
            if f.is_file():
                sizes[next((g for p, g in GROUPS.items() if f.name.startswith(p)), "postings metadata")] += \
                    f.stat().st_size
    total = sum(sizes.values())
    print(f"{corpus}: built in {seconds:.0f} s, {total / 1e6:.1f} MB")
    for group, size in sizes.most_common():
        print(f"  {group:<20} {size / 1e6:6.1f} MB")
    print(f"  {'without the id table':<20} {(total - sizes['doc-id table']) / 1e6:6.1f} MB")


if __name__ == "__main__":
    main()
