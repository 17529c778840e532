"""Any ir_datasets id as a named collection (`datasets.load("irds:beir/nfcorpus/test")`), when the ir_datasets
package is installed: its documents, queries and qrels are converted once into BEIR's layout in the cache."""

from __future__ import annotations

import gzip
import json
import shutil
import tempfile
from functools import partial
from pathlib import Path

from rankstack.errors import DatasetNotFoundError


def collection(dataset_id: str):
    """The datasets.Collection of an ir_datasets id (DatasetNotFoundError without the package)."""
    from rankstack.data.datasets import Collection

    try:
        import ir_datasets  # noqa: F401
    except ImportError:
        raise DatasetNotFoundError(f"irds:{dataset_id} needs the ir_datasets package: pip install ir_datasets") \
            from None
    return Collection("irds/" + dataset_id.replace("/", "__"), "test", partial(_convert, dataset_id),
                      description=f"ir_datasets {dataset_id}")


def _convert(dataset_id: str, target: Path) -> None:
    import ir_datasets

    try:
        dataset = ir_datasets.load(dataset_id)
    except KeyError:
        raise DatasetNotFoundError(f"ir_datasets knows no dataset {dataset_id!r}") from None
    lacking = [part for part in ("docs", "queries", "qrels") if not getattr(dataset, f"has_{part}")()]
    if lacking:
        raise DatasetNotFoundError(f"ir_datasets {dataset_id!r} has no {' or '.join(lacking)}: rankstack needs "
                                   "documents, queries and qrels (pick a dataset id with all three)")
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        build = Path(tmp) / "build"
        (build / "qrels").mkdir(parents=True)
        try:
            with gzip.open(build / "corpus.jsonl.gz", "wt", encoding="utf-8") as f:
                for doc in dataset.docs_iter():
                    title = getattr(doc, "title", "") or ""
                    text = next((getattr(doc, a) for a in ("text", "body", "passage") if getattr(doc, a, None)),
                                None)
                    text = doc.default_text() if text is None else text
                    f.write(json.dumps({"_id": doc.doc_id, "title": title, "text": text}, ensure_ascii=False) + "\n")
            with open(build / "queries.jsonl", "w", encoding="utf-8") as f:
                for query in dataset.queries_iter():
                    text = query.default_text() if hasattr(query, "default_text") else query.text
                    f.write(json.dumps({"_id": query.query_id, "text": text}, ensure_ascii=False) + "\n")
            with open(build / "qrels" / "test.tsv", "w", encoding="utf-8") as f:
                f.write("query-id\tcorpus-id\tscore\n")
                f.writelines(f"{q.query_id}\t{q.doc_id}\t{q.relevance}\n" for q in dataset.qrels_iter())
        except OSError as e:  # ir_datasets downloads its files on first use
            raise DatasetNotFoundError(f"ir_datasets could not fetch {dataset_id!r} ({e})") from None
        shutil.move(str(build), target)
