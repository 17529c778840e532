"""The workers of a distributed build: a Ray Data actor turns each part of the corpus it is given into one file in
the build's `parts` folder, written atomically under the part's number, then a small record that marks it done.

- BM25: the part analysed and inverted into a segment file (`rankstack.retrieve.parallel.write_part`), which the
  shard's writer later adopts (`IndexWriter.adopt`);
- learned sparse and dense: the part's texts encoded into a shard file of `encode_corpus_to_shards`, which the
  shard's `LearnedSparse.build` / `Dense.build` then reads as already encoded.

A retried task writes the same part again under the same name (the last complete write wins); a part already done
is not encoded again.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from rankstack.data.corpus import Document
from rankstack.errors import InputError
from rankstack.index.commit import write_atomic
from rankstack.distributed.parts import END

PART_RECORD = "part-{:06d}.json"
SEGMENT = "part-{:06d}.rsx"     # a BM25 part
ENCODED = "shard-{:06d}.npz"    # an encoded part (encode_corpus_to_shards' name for shard number i)


def part_done(folder: Path, kind: str, number: int) -> dict[str, Any] | None:
    """The record of a part whose file is written, or None."""
    try:
        record = json.loads((folder / PART_RECORD.format(number)).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    payload = folder / (SEGMENT if kind == "bm25" else ENCODED).format(number)
    return record if record["texts"] == 0 or payload.exists() else None


class EncoderFiles:
    """What an encoder keeps beside its record in an index (`Encoder.index_files()`, e.g. an inference-free
    encoder's IDF table), read back the way an index gives it (`read_file(name)`)."""

    def __init__(self, files: dict[str, bytes] | None):
        self.files = dict(files or {})

    def read_file(self, name: str) -> bytes | None:
        return self.files.get(name)


def load_encoder(options: dict[str, Any], device: str | None = None) -> Any:
    """The encoder of a build (`options`: its record, "encoder", and its index files, "files"), rebuilt by the one
    loader (rankstack.encoders.encoder_from_record) and checked against the record."""
    from rankstack.encoders import encoder_from_record

    return encoder_from_record(options["encoder"], files=EncoderFiles(options.get("files")), device=device,
                               progress=False)


class PartWriter:
    """A Ray Data actor writing parts (see the module docstring). `options`: for "bm25" the analyzer config,
    `store` and `length_norm`; for "sparse" / "dense" the encoder's record (`encoder`) and index files (`files`),
    `device`, `threads`."""

    def __init__(self, folder: str, kind: str, options: dict[str, Any]):
        self.folder, self.kind, self.options = Path(folder), kind, options
        self.encoder = None  # loaded for the first part to encode (a resumed build may have none left)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        number = int(row["part"])
        if number == END:
            return {"part": END, "first": int(row["first"]), "docs": 0, "texts": 0, "digest": "", "max_weight": 0.0,
                    "parts": int(row["parts"])}
        record = part_done(self.folder, self.kind, number)
        if record is None or record["digest"] != row["digest"]:
            docs = [(loc, Document(i, text, title)) for loc, i, text, title in
                    zip(row["locations"], row["ids"], row["texts"], row["titles"])]
            record = {"part": number, "first": int(row["first"]), "docs": len(docs), "digest": row["digest"],
                      **(self._segment(number, docs) if self.kind == "bm25" else self._encode(number, docs))}
            write_atomic(self.folder / PART_RECORD.format(number), json.dumps(record).encode())
        return {**record, "parts": -1}

    def _encoder(self) -> Any:
        if self.encoder is None:
            if self.options.get("threads"):
                import torch
                torch.set_num_threads(int(self.options["threads"]))
            self.encoder = load_encoder(self.options, self.options.get("device"))
        return self.encoder

    def _segment(self, number: int, docs: list[tuple[str, Document]]) -> dict[str, Any]:
        from rankstack.retrieve.bm25 import Columns
        from rankstack.retrieve.parallel import write_part

        tmp = self.folder / f".{SEGMENT.format(number)}.tmp-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        o = self.options
        write_part(Columns.of(docs), tmp, o["analyzer"], o["store"], o["length_norm"], o.get("reorder", False))
        os.replace(tmp, self.folder / SEGMENT.format(number))
        return {"texts": len(docs), "max_weight": 0.0}

    def _encode(self, number: int, docs: list[tuple[str, Document]]) -> dict[str, Any]:
        from rankstack.encoders.batching import encode_corpus_to_shards, load_shards

        if self.kind == "sparse":
            texts = [d.contents for _, d in docs if d.contents.strip()]  # as LearnedSparse.build: empty ones skipped
        else:
            empty = next((loc or repr(d.id) for loc, d in docs if not d.contents.strip()), None)
            if empty is not None:
                raise InputError(f"{empty}: a document without text; a dense encoder needs at least one word")
            texts = [d.contents for _, d in docs]
        if not texts:
            return {"texts": 0, "max_weight": 0.0}
        with tempfile.TemporaryDirectory(dir=self.folder, prefix=".encoding-") as tmp:
            encode_corpus_to_shards(self._encoder(), texts, tmp, shard_size=len(texts))
            weights = load_shards(tmp)
            max_weight = float(weights.data.max()) if self.kind == "sparse" and weights.nnz else 0.0
            os.replace(Path(tmp) / ENCODED.format(0), self.folder / ENCODED.format(number))
        return {"texts": len(texts), "max_weight": max_weight}


def clean(folder: Path) -> None:
    """Remove what killed workers left half-written in a parts folder."""
    for stale in list(folder.glob(".*.tmp-*")) + list(folder.glob(".encoding-*")):
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
