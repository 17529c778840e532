"""Inference-free learned sparse retrieval: SPLADE-style documents, queries weighted by the tokenizer and an
IDF table alone (as OpenSearch's inference-free sparse models)."""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from rankstack.encoders.base import Encoder
from rankstack.encoders.batching import check_texts
from rankstack.encoders.loading import ModelSpec, PathLike
from rankstack.encoders.splade import SpladeEncoder, format_sparse
from rankstack.errors import InputError
from rankstack.records import InMemory

#: The name of the IDF table an index keeps beside the encoder's record (`index_files`).
QUERY_IDF = "query_idf"


class InferenceFreeSparseEncoder(Encoder):
    """Documents through a SPLADE-style encoder; a query is its distinct tokens, each weighted by `idf`.

    `idf`: a {token: weight} mapping or an `idf.json` path (OpenSearch's format); None takes the model folder's
    `idf.json` when there is one, else weighs every token 1.0. Tokens missing from a table weigh
    `missing_weight` (0.0, as OpenSearch). `fit_idf(documents)` computes the table from a corpus instead.
    Special tokens never appear in queries. Other arguments go to `SpladeEncoder` (document side).
    """

    kind = "inference-free-sparse"

    def __init__(self, model: PathLike | ModelSpec, *, idf: Mapping[str, float] | PathLike | None = None,
                 missing_weight: float = 0.0, query_max_length: int | None = None, **document_options: Any):
        for key in ("query_model", "query_top_k"):
            if document_options.get(key) is not None:
                raise InputError(f"{key} does not apply to an inference-free encoder (its queries need no model)")
            document_options.pop(key, None)
        self.splade = SpladeEncoder(model, **document_options)
        self.tokenizer = self.splade.documents.lm.tokenizer
        self.vocab_size = self.splade.vocab_size
        self.query_max_length = query_max_length or self.splade.documents.lm.max_length
        self.missing_weight = float(missing_weight)
        self._special = np.array(sorted(self.tokenizer.all_special_ids), dtype=np.int64)
        bundled = self.splade.documents.lm.spec.transformer_path / "idf.json"
        if idf is None and bundled.exists():
            idf = bundled
        self.idf: np.ndarray | None = None
        self._idf_source: str | InMemory | None = None  # where the table came from, for the repr
        if isinstance(idf, (str, os.PathLike)):
            self.idf = self._table(_read_idf(Path(idf)))
            self._idf_source = None if Path(idf) == bundled else os.fspath(idf)
        elif idf is not None:
            self.idf = self._table(idf)
            self._idf_source = self._in_memory()
        splade_defaults = self.splade._model_defaults
        self._model_defaults = {**{k: splade_defaults[k] for k in ("document_max_length", "document_top_k",
                                                                    "activation")},
                                "query_max_length": splade_defaults["document_max_length"]}
        self._runtime = self.splade._runtime

    @property
    def name(self) -> str:
        return self.splade.name

    def _in_memory(self) -> InMemory:
        return InMemory("idf table", int(np.count_nonzero(self.idf != self.missing_weight)), self._idf_hash())

    def _idf_hash(self) -> str | None:
        return None if self.idf is None else "sha256:" + hashlib.sha256(self.idf.tobytes()).hexdigest()[:24]

    def _table(self, weights: Mapping[str, float]) -> np.ndarray:
        table = np.full(self.vocab_size, self.missing_weight, dtype=np.float32)
        unknown = []
        for token, w in weights.items():
            tid = self.tokenizer.convert_tokens_to_ids(token)
            if tid is None or tid >= self.vocab_size or (tid == self.tokenizer.unk_token_id
                                                         and token != self.tokenizer.unk_token):
                unknown.append(token)
            else:
                table[tid] = float(w)
        if unknown and len(unknown) == len(weights):
            raise InputError(f"no token of the IDF table is in the tokenizer's vocabulary (e.g. {unknown[:3]})")
        return table

    def fit_idf(self, documents: Iterable[str]) -> dict[str, float]:
        """Set the IDF table from document frequencies, ln(1 + (N - df + 0.5) / (df + 0.5)); return it by token."""
        df = np.zeros(self.vocab_size, dtype=np.int64)
        n, batch = 0, []
        for doc in documents:
            batch.append(doc)
            if len(batch) == 4096:
                n += self._count(batch, df)
                batch = []
        n += self._count(batch, df)
        if n == 0:
            raise InputError("fit_idf needs at least one document")
        self.idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
        self._idf_source = self._in_memory()
        vocab = self.splade.vocabulary()
        return {vocab[i]: float(self.idf[i]) for i in np.flatnonzero(df)}

    def _count(self, docs: list[str], df: np.ndarray) -> int:
        for ids in self._token_ids(docs, self.splade.documents.max_length):
            df[ids] += 1
        return len(docs)

    def _token_ids(self, texts: list[str], max_length: int) -> list[np.ndarray]:
        """Distinct non-special token ids of each text, ascending."""
        if not texts:
            return []
        enc = self.splade.documents.lm.tokenize(texts, max_length, add_special_tokens=False)
        return [np.setdiff1d(np.asarray(ids, dtype=np.int64), self._special) for ids in enc]

    def save_idf(self, path: PathLike) -> None:
        """Write the IDF table as {token: weight} JSON (tokens with the missing weight left out)."""
        if self.idf is None:
            raise InputError("no IDF table to save: pass idf= or call fit_idf first")
        Path(path).write_bytes(self._idf_json())

    def _idf_json(self) -> bytes:
        """The IDF table as {token: weight} JSON (tokens with the missing weight left out)."""
        vocab = self.splade.vocabulary()
        table = {vocab[i]: float(self.idf[i]) for i in np.flatnonzero(self.idf != self.missing_weight)}
        return json.dumps(table, ensure_ascii=False).encode("utf-8")

    def encode_queries(self, texts: Sequence[str], *, output: str = "csr") -> Any:
        """Query vectors without a model: each distinct token weighted by its IDF (or 1.0 with no table)."""
        texts = check_texts(texts)
        rows = self._token_ids(texts, self.query_max_length)
        weights = [self.idf[ids] if self.idf is not None else np.ones(len(ids), np.float32) for ids in rows]
        keep = [w != 0 for w in weights]
        indices = [ids[k].astype(np.int32) for ids, k in zip(rows, keep)]
        data = [w[k] for w, k in zip(weights, keep)]
        indptr = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum([len(i) for i in indices], out=indptr[1:])
        matrix = sp.csr_matrix((np.concatenate(data) if data else np.zeros(0, np.float32),
                                np.concatenate(indices) if indices else np.zeros(0, np.int32), indptr),
                               shape=(len(texts), self.vocab_size))
        return format_sparse(matrix, output, self.splade.vocabulary)

    def encode_documents(self, texts: Sequence[str], *, output: str = "csr") -> Any:
        """Document vectors from the SPLADE-style encoder."""
        return self.splade.encode_documents(texts, output=output)

    def to_record(self) -> dict[str, Any]:
        doc = self.splade.to_record()
        for key in ("query_max_length", "query_top_k", "query_model"):
            doc.pop(key)
        return {**doc, "encoder": "inference-free-sparse", "query_idf": self._idf_hash(),
                "query_max_length": self.query_max_length}

    @classmethod
    def record_arguments(cls, record: dict[str, Any]) -> dict[str, Any]:
        return {key: record.get(key) for key in ("document_max_length", "document_top_k", "activation",
                                                 "query_max_length")}

    def index_files(self) -> dict[str, bytes]:
        return {} if self.idf is None else {QUERY_IDF: self._idf_json()}

    @classmethod
    def _files(cls, files: Any) -> dict[str, Any]:
        data = None if files is None else files.read_file(QUERY_IDF)
        return {} if data is None else {"idf": _parse_idf(data, QUERY_IDF)}

    def _unrecorded(self) -> dict[str, Any]:
        out: dict[str, Any] = {} if self._idf_source is None else {"idf": self._idf_source}
        if self.missing_weight != 0.0:
            out["missing_weight"] = self.missing_weight
        return out


def _read_idf(path: Path) -> dict[str, float]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read IDF table: {e}", path) from e
    return _parse_idf(data, path)


def _parse_idf(data: bytes, where: Any) -> dict[str, float]:
    try:
        table = json.loads(data)
    except ValueError as e:
        raise InputError(f"cannot read IDF table: {e}", where) from e
    if not isinstance(table, dict) or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in table.values()):
        raise InputError("an IDF table must be a JSON object of token: number", where)
    return table
