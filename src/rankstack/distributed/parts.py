"""A corpus cut into numbered parts, streamed as a Ray Data dataset (one row per part).

Part i holds consecutive documents of the corpus, in order: `part_size` of them, or, when only documents with
text count (a learned-sparse encoder skips empty ones, as `LearnedSparse.build` does), as many as it takes to hold
`part_size` texts. The cut depends only on the corpus and `part_size`, so a rerun (a retried task, a resumed build)
cuts the same parts, and a part's file, written once under its number, is never written for other documents.
The file is read by one Ray task that streams the rows out as it goes: nothing is held on the driver.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterator, Mapping

from rankstack.data.corpus import Corpus
from rankstack.distributed.cluster import ray_module

END = -1  # the number of the last row: it carries the count of parts and documents


def ids_digest(ids: list[str]) -> str:
    """A digest of a part's document ids (a resumed build checks that a part on disk holds the same documents)."""
    h = hashlib.blake2b(digest_size=16)
    for doc_id in ids:
        h.update(doc_id.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()


def iter_parts(corpus: Corpus, part_size: int, texts_only: bool) -> Iterator[dict[str, Any]]:
    """The parts of `corpus` as rows: part number, position of its first document, and its documents' ids,
    titles, texts and locations; then an END row holding the number of parts and of documents."""
    number, position = 0, 0
    columns: dict[str, list] = {"ids": [], "titles": [], "texts": [], "locations": []}
    texts, first = 0, 0

    def row() -> dict[str, Any]:
        return {"part": number, "first": first, "digest": ids_digest(columns["ids"]), **columns}

    for location, doc in corpus.located():
        counts = not texts_only or bool(doc.contents.strip())
        if counts and texts == part_size:
            yield row()
            number, texts, first = number + 1, 0, position
            columns = {"ids": [], "titles": [], "texts": [], "locations": []}
        columns["ids"].append(doc.id)
        columns["titles"].append(doc.title)
        columns["texts"].append(doc.text)
        columns["locations"].append(location)
        texts += counts
        position += 1
    if columns["ids"]:
        yield row()
        number += 1
    yield {"part": END, "first": position, "digest": "", "ids": [], "titles": [], "texts": [], "locations": [],
           "parts": number}


def corpus_parts(corpus: Corpus, part_size: int, texts_only: bool, done: Mapping[int, str] | None = None) -> Any:
    """A Ray Data dataset of the corpus's parts (see `iter_parts`), leaving out the parts in `done` (part number ->
    ids digest) whose documents are unchanged: a resumed build reads the corpus again but encodes only the rest."""
    ray = ray_module()
    import pyarrow as pa
    from ray.data import Datasource, ReadTask
    from ray.data.block import BlockMetadata

    skip = dict(done or {})
    schema = pa.schema([("part", pa.int64()), ("first", pa.int64()), ("digest", pa.string()),
                        ("ids", pa.list_(pa.string())), ("titles", pa.list_(pa.string())),
                        ("texts", pa.list_(pa.string())), ("locations", pa.list_(pa.string())),
                        ("parts", pa.int64())])

    def read() -> Iterator[Any]:
        for part in iter_parts(corpus, part_size, texts_only):
            if skip.get(part["part"]) == part["digest"]:
                continue
            part.setdefault("parts", None)
            yield pa.Table.from_pylist([part], schema=schema)

    class CorpusParts(Datasource):
        def estimate_inmemory_data_size(self) -> int | None:
            return None

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                           data_context: Any = None) -> list[ReadTask]:
            return [ReadTask(read, BlockMetadata(num_rows=None, size_bytes=None, input_files=[str(corpus.path)],
                                                 exec_stats=None), schema=schema)]

    # the reader takes no CPU of its own: it must never wait for the workers' CPUs (they wait for its parts)
    return ray.data.read_datasource(CorpusParts(), num_cpus=0)
