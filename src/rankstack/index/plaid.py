"""A PLAID-style multi-vector index (ColBERTv2 residual compression, PLAID search) on disk.

Every document token vector is stored as the id of its nearest k-means centroid plus its residual compressed to
`nbits` (1, 2, 4 or 8) bits per dimension: bucket cut-offs and bucket values are quantiles of the residuals, over
all dimensions (ColBERTv2) or per dimension (`buckets="per_dimension"`, for vectors not trained for compression).
Inverted lists map each centroid to the documents holding a token assigned to it.

Search (PLAID): each query token's top `nprobe` centroids give the candidate documents; centroid interaction
(every document token replaced by its centroid, MaxSim over those scores) keeps the best `ncandidates`; their
residuals are decompressed and they are rescored with exact MaxSim. An index created with
`store_vectors="float16"` also keeps every token vector in float16 (memory-mapped, same token order as the codes):
`search(..., PlaidParams(rescore=True))` then rescores the surviving candidates with those instead of the
decompressed codes (exact MaxSim over the stored vectors; the codes still drive candidate generation and centroid
interaction).

    >>> index = PlaidIndex.create("idx", encoder.model_info(), sample_vectors, nbits=2)
    >>> index.add(doc_ids, vectors)                 # per document a float [n_tokens, dim] array; a new chunk
    >>> index.delete(["doc3"])
    >>> [hits] = index.search([query_vectors], k=10, params=PlaidParams(nprobe=4, ncandidates=256))
    >>> index.doc_ids.take(hits.docnos)
    >>> index = PlaidIndex.create("idx16", info, sample_vectors, nbits=2, store_vectors="float16")
    >>> index.add(doc_ids, vectors); index.search([query_vectors], 10, PlaidParams(rescore=True))   # exact rescoring

Directory (rankstack.index.commit): `manifest.json` (encoder `model_info`, dimension, nbits, the codec file and the
chunks, each with its tombstones; published atomically last, so a crash leaves the previous snapshot), a codec
container file (centroids, bucket cut-offs and values), and per `add` a chunk: one container file (codes, packed
residuals, token offsets, doc ids, inverted lists, and the vectors when the settings' `vector_dtype` is set).
Re-adding an id replaces its earlier version; deleted documents are per-chunk tombstones. Every file is
checksummed; arrays are memory-mapped; the first search checks checksums and structure.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from rankstack.data.run import Hits
from rankstack.errors import IncompatibleIndexError, IndexFormatError, InputError
from rankstack.index import commit
from rankstack.index import plaid_kernels as K
from rankstack.index import topk
from rankstack.index.commit import Snapshot, WriterLock, check_hint, new_name
from rankstack.index.container import Container, write_container
from rankstack.index.search import PlaidParams, check_k
from rankstack.index.segment import read_tombstones, write_tombstones
from rankstack.index.strings import StringTable
from rankstack.records import check_compatible

FORMAT = "rankstack-plaid"
VERSION = 2  # 2: checksummed container files (rankstack.index.commit)
WHAT = "PLAID index"
VECTOR_DTYPES = ("float16", "float32")  # store_vectors: full-precision copies for exact rescoring
_ASSIGN_BLOCK = 1 << 24  # floats of the [rows, centroids] score block when assigning vectors to centroids


# --- exact MaxSim ----------------------------------------------------------------------------------------------


def maxsim_scores(query: np.ndarray, vectors: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Exact MaxSim of one query ([n_query_tokens, dim]) against documents whose token vectors are the rows
    vectors[bounds[i]:bounds[i+1]]: per document, the sum over query tokens of the best token similarity."""
    if len(bounds) < 2:
        return np.zeros(0, np.float32)
    sims = np.ascontiguousarray(np.asarray(query, np.float32) @ np.asarray(vectors, np.float32).T)
    return K.segment_maxsim(sims, np.asarray(bounds, np.int64))


# --- training the codec ----------------------------------------------------------------------------------------


def default_num_centroids(num_tokens: int) -> int:
    """ColBERTv2's rule: the power of two at or below 16 * sqrt(number of token vectors)."""
    return int(2 ** math.floor(math.log2(16 * math.sqrt(max(num_tokens, 1)))))


def assign(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (L2) of each vector, in blocks of rows."""
    half_norms = 0.5 * np.einsum("ij,ij->i", centroids, centroids)
    out = np.empty(len(vectors), dtype=np.int64)
    step = max(1, _ASSIGN_BLOCK // max(len(centroids), 1))
    for start in range(0, len(vectors), step):
        block = np.asarray(vectors[start:start + step], np.float32) @ centroids.T
        block -= half_norms
        out[start:start + step] = block.argmax(1)
    return out


def kmeans(vectors: np.ndarray, k: int, iters: int = 10, seed: int = 0, spherical: bool = True) -> np.ndarray:
    """Lloyd's k-means (float32, BLAS assignment); spherical: centroids re-normalised each iteration. Empty
    clusters are re-seeded with random vectors."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    rng = np.random.default_rng(seed)
    centroids = x[rng.choice(len(x), size=k, replace=False)].copy()
    for _ in range(iters):
        labels = assign(x, centroids)
        order = np.argsort(labels, kind="stable")
        counts = np.bincount(labels, minlength=k)
        empty = counts == 0
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[~empty]
        centroids = np.zeros_like(centroids)
        centroids[~empty] = np.add.reduceat(x[order], starts, axis=0) / counts[~empty, None]
        centroids[empty] = x[rng.choice(len(x), size=int(empty.sum()), replace=False)]
        if spherical:
            centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    return centroids.astype(np.float32)


BUCKETS = ("global", "per_dimension")


def bucket_quantiles(residuals: np.ndarray, nbits: int, per_dimension: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """ColBERTv2's buckets: 2**nbits - 1 cut-offs at the residual values' quantiles i / 2**nbits, and each bucket's
    value at the quantile (i + 0.5) / 2**nbits, over all dimensions together ([2**nbits - 1] and [2**nbits]), or
    per dimension ([dim, 2**nbits - 1] and [dim, 2**nbits]: dimensions whose residuals spread differently, as in
    vectors not trained for compression, each get their own scale)."""
    n = 1 << nbits
    r = np.asarray(residuals, np.float32)
    values, axis = (r, 0) if per_dimension else (r.ravel(), None)
    cutoffs = np.quantile(values, np.arange(1, n) / n, axis=axis).astype(np.float32)
    weights = np.quantile(values, (np.arange(n) + 0.5) / n, axis=axis).astype(np.float32)
    return np.ascontiguousarray(cutoffs.T), np.ascontiguousarray(weights.T)


# --- the index -------------------------------------------------------------------------------------------------


class PlaidDocIds:
    """External ids of an index's global doc numbers (chunk after chunk), for runs."""

    def __init__(self, tables: list[StringTable], bases: np.ndarray):
        self._tables, self._bases = tables, bases

    def __len__(self) -> int:
        return int(self._bases[-1])

    def __getitem__(self, docno: int) -> str:
        return self.take(np.array([docno]))[0]

    def take(self, docnos: np.ndarray) -> list[str]:
        docnos = np.asarray(docnos, np.int64)
        if len(docnos) and (docnos.min() < 0 or docnos.max() >= len(self)):
            raise IndexError(f"doc number out of range (index of {len(self)} documents)")
        which = np.searchsorted(self._bases, docnos, side="right") - 1
        out: list[str] = [""] * len(docnos)
        for c in np.unique(which).tolist():
            rows = np.flatnonzero(which == c)
            for r, s in zip(rows.tolist(), self._tables[c].take(docnos[rows] - self._bases[c])):
                out[r] = s
        return out


class _Chunk:
    """One chunk's container file: codes, packed residuals, token offsets, inverted lists, ids, stored vectors."""

    def __init__(self, path: Path, entry: commit.Segment, base: int, dim: int, nbits: int, num_centroids: int,
                 vector_dtype: str | None, hint: str):
        self.path, self.base, self.num_centroids = path, base, num_centroids
        self.container = c = Container(path / entry.files["data"].name, entry.files["data"], hint)
        self.codes, self.residuals, self.offsets = c["codes"], c["residuals"], c["offsets"]
        self.ivf_offsets, self.ivf_docs = c["ivf_offsets"], c["ivf_docs"]
        self.ids = StringTable(c, "ids", where=f"{c.path}:ids")
        self.stored = c["vectors"] if vector_dtype else None  # [tokens, dim] or None
        n, t = entry.num_docs, entry.meta.get("tokens")
        if (len(self.offsets) != n + 1 or self.offsets[-1] != t or len(self.codes) != t or len(self.ids) != n
                or self.residuals.shape != (t, dim * nbits // 8) or len(self.ivf_offsets) != num_centroids + 1
                or (vector_dtype and (self.stored.shape != (t, dim) or self.stored.dtype != vector_dtype))):
            raise IndexFormatError(f"{c.path} does not match the manifest ({n} documents, {t} tokens){hint}")
        self.num_docs = n
        self.live = read_tombstones(path / entry.deletes.name, entry.deletes, n, hint) if entry.deletes \
            else np.ones(n, dtype=bool)
        self._hint = hint

    def verify(self) -> None:
        """Checksums, and every offset and id the kernels index with (IndexFormatError if any is off)."""
        self.container.verify()
        off, ivf = self.offsets.astype(np.int64), self.ivf_offsets.astype(np.int64)
        problems = []
        if off[0] != 0 or np.any(np.diff(off) < 0):
            problems.append("token offsets are not ascending")
        if len(self.codes) and (int(self.codes.min()) < 0 or int(self.codes.max()) >= self.num_centroids):
            problems.append("codes name centroids that do not exist")
        if ivf[0] != 0 or np.any(np.diff(ivf) < 0) or ivf[-1] != len(self.ivf_docs):
            problems.append("inverted list offsets are not ascending to the end of the lists")
        if len(self.ivf_docs) and (int(self.ivf_docs.min()) < 0 or int(self.ivf_docs.max()) >= self.num_docs):
            problems.append("inverted lists name documents that do not exist")
        if problems:
            raise IndexFormatError(f"{self.container.path} is damaged: {'; '.join(problems)}{self._hint}")
        self.ids.check()


class PlaidIndex(Snapshot):
    """A read-mostly PLAID index directory; `add` and `delete` commit a new snapshot and reload it."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).absolute()
        self.manifest = commit.open_snapshot(self.path, self._read_manifest, self._open)

    def _read_manifest(self) -> commit.Manifest:
        return commit.read_manifest(self.path, FORMAT, VERSION, WHAT)

    def _open(self, m: commit.Manifest) -> commit.Manifest:
        hint = check_hint(self.path)
        try:
            settings = m.settings
            self.dim, self.nbits, self.normalize = int(settings["dim"]), int(settings["nbits"]), \
                bool(settings["normalize"])
            self.encoder_info: dict[str, Any] = settings["encoder"]
            self.vector_dtype: str | None = settings["vector_dtype"]
            codec = m.files["codec"]
        except (KeyError, TypeError, ValueError) as e:
            raise IndexFormatError(f"{self.path}/manifest.json is malformed (missing or bad {e}){hint}") from None
        if self.vector_dtype not in (None, *VECTOR_DTYPES):
            raise IndexFormatError(f"{self.path}/manifest.json is malformed (vector_dtype {self.vector_dtype!r})")
        c = Container(self.path / codec.name, codec, hint)
        self.centroids = np.ascontiguousarray(c["centroids"], np.float32)
        self.cutoffs, self.weights = np.array(c["cutoffs"]), np.array(c["weights"])
        n = 1 << self.nbits
        if self.nbits not in (1, 2, 4, 8) or self.centroids.shape[1:] != (self.dim,) or not len(self.centroids) \
                or (self.cutoffs.shape, self.weights.shape) not in (((n - 1,), (n,)), ((self.dim, n - 1),
                                                                                        (self.dim, n))):
            raise IndexFormatError(f"{self.path}: centroids or buckets do not match the manifest{hint}")
        self.manifest_generation = m.generation
        self._table = K.byte_tables(self.weights, self.nbits, self.dim)
        self._cutoffs = np.ascontiguousarray(np.broadcast_to(self.cutoffs, (self.dim, n - 1)))
        self.chunks: list[_Chunk] = []
        base = 0
        for entry in m.segments:
            self.chunks.append(_Chunk(self.path, entry, base, self.dim, self.nbits, len(self.centroids),
                                      self.vector_dtype, hint))
            base += entry.num_docs
        self._bases = np.array([c.base for c in self.chunks] + [base], dtype=np.int64)
        self.doc_ids = PlaidDocIds([c.ids for c in self.chunks], self._bases)
        self.live = np.concatenate([c.live for c in self.chunks] + [np.zeros(0, bool)])
        return m

    def _verify(self) -> None:
        for chunk in self.chunks:
            chunk.verify()

    # --- building ----------------------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike, encoder_info: dict[str, Any], sample: np.ndarray | Sequence[np.ndarray],
               *, nbits: int = 2, num_centroids: int | None = None, kmeans_iters: int = 10,
               kmeans_sample: int | None = None, centroids: np.ndarray | None = None, seed: int = 0,
               estimated_tokens: int | None = None, buckets: str = "global", store_vectors: str | None = None,
               overwrite: bool = False) -> "PlaidIndex":
        """Train centroids and buckets on `sample` (token vectors: an array or per-document arrays) and write an
        empty index. `num_centroids` defaults to ColBERTv2's rule for `estimated_tokens` (default: the sample's
        size). k-means runs on at most `kmeans_sample` vectors (default 256 per centroid, as faiss); 5% of the
        sample, held out from k-means, sets the bucket quantiles: `buckets` "global" (ColBERTv2: one set for all
        dimensions) or "per_dimension" (one set per dimension: a more faithful reconstruction of vectors whose
        dimensions differ in spread, at the same size). `centroids` given (e.g. another index's) are used as they
        are, without k-means. `store_vectors` "float16" (or "float32"): every `add` also stores the token vectors
        in that type, for rescoring (`PlaidParams(rescore=True)`; 2 bytes per dimension more per token in float16)."""
        path = Path(path)
        if nbits not in (1, 2, 4, 8):
            raise InputError(f"nbits must be 1, 2, 4 or 8, got {nbits!r}")
        if buckets not in BUCKETS:
            raise InputError(f"buckets must be one of {BUCKETS}, got {buckets!r}")
        if store_vectors not in (None, *VECTOR_DTYPES):
            raise InputError(f"store_vectors must be None, 'float16' or 'float32', got {store_vectors!r}")
        x = np.concatenate([np.asarray(v, np.float32) for v in sample]) if isinstance(sample, (list, tuple)) \
            else np.asarray(sample, np.float32)
        if x.ndim != 2 or not len(x):
            raise InputError(f"the training sample must be a non-empty [n, dim] array, got shape {x.shape}")
        dim = x.shape[1]
        if dim % (8 // nbits):
            raise InputError(f"dimension {dim} is not a multiple of {8 // nbits}, as {nbits}-bit packing needs")
        if not np.isfinite(x).all():
            raise InputError("the training sample holds NaN or infinite values")
        commit.refuse_existing(path, overwrite, "PlaidIndex")
        rng = np.random.default_rng(seed)
        x = x[rng.permutation(len(x))]
        held = len(x) // 20 if len(x) >= 200 else 0
        heldout, train = x[:held], x[held:]
        normalize = bool(np.allclose(np.linalg.norm(x[:1000], axis=1), 1, atol=1e-2))
        if centroids is not None:
            centroids = np.ascontiguousarray(centroids, np.float32)
            if centroids.ndim != 2 or centroids.shape[1] != dim or not len(centroids):
                raise InputError(f"centroids must be a [k, {dim}] array, got shape {centroids.shape}")
            k = len(centroids)
        else:
            k = num_centroids or default_num_centroids(estimated_tokens or len(x))
            if not 1 <= k <= len(train):
                raise InputError(f"num_centroids={k} must lie between 1 and the {len(train)} training vectors")
            centroids = kmeans(train[:kmeans_sample or 256 * k], k, kmeans_iters, seed, spherical=normalize)
        check = heldout if held else train
        cutoffs, weights = bucket_quantiles(check - centroids[assign(check, centroids)], nbits,
                                            per_dimension=buckets == "per_dimension")
        settings = {"encoder": encoder_info, "dim": dim, "nbits": nbits, "normalize": normalize, "num_centroids": k,
                    "buckets": buckets, "vector_dtype": store_vectors,
                    "training": {"vectors": min(len(train), kmeans_sample or 256 * k), "heldout": held,
                                 "kmeans_iters": kmeans_iters, "seed": seed}}
        with WriterLock(path):
            commit.refuse_existing(path, overwrite, "PlaidIndex")  # (again: another writer may have been faster)
            manifest = commit.start(path, FORMAT, VERSION, WHAT, settings, overwrite=True)
            manifest.files["codec"] = write_container(path / new_name("codec", ".rsx"),
                                                      {"centroids": centroids, "cutoffs": cutoffs, "weights": weights})
            commit.publish(path, manifest)
        return cls(path)

    def compress(self, vectors: np.ndarray, codes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Token vectors [n, dim] -> (centroid ids, packed residuals [n, dim * nbits / 8]); `codes` given are
        taken as the centroid ids."""
        if codes is None:
            codes = assign(vectors, self.centroids)
        else:
            codes = np.asarray(codes).astype(np.int64)
            if codes.shape != (len(vectors),) or (len(codes) and not 0 <= codes.min() <= codes.max()
                                                  < len(self.centroids)):
                raise InputError(f"codes must be {len(vectors)} centroid ids below {len(self.centroids)}")
        buckets = K.bucketize(np.ascontiguousarray(vectors - self.centroids[codes], np.float32), self._cutoffs)
        return codes.astype(self._code_dtype()), K.pack_buckets(buckets, self.nbits)

    def _code_dtype(self) -> type:
        return np.uint16 if len(self.centroids) <= 1 << 16 else np.int32

    def add(self, doc_ids: Sequence[str], vectors: Sequence[np.ndarray], codes: np.ndarray | None = None) -> int:
        """Add documents (per document a [n_tokens, dim] array) as a new chunk, reusing the trained centroids and
        buckets (and storing the vectors too when the index was created with store_vectors); ids already in the
        index are replaced. Commits and reloads; returns how many were added.
        `codes`: the tokens' nearest centroids when already known (e.g. from an index with the same centroids)."""
        doc_ids = [str(i) for i in doc_ids]
        if len(doc_ids) != len(vectors):
            raise InputError(f"{len(doc_ids)} doc ids but {len(vectors)} vector arrays")
        if len(set(doc_ids)) != len(doc_ids):
            raise InputError("the documents to add repeat an id")
        if not doc_ids:
            return 0
        lengths = np.array([self._check_vectors(v, f"document {i!r}") for i, v in zip(doc_ids, vectors)])
        with WriterLock(self.path):
            self._reload_if_changed()
            offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
            np.cumsum(lengths, out=offsets[1:])
            flat = np.concatenate([np.asarray(v, np.float32) for v in vectors])
            codes, packed = self.compress(flat, codes)
            ivf_offsets, ivf_docs = _inverted_lists(codes, offsets, len(self.centroids))
            arrays = {"codes": codes, "residuals": packed, "offsets": offsets, "ivf_offsets": ivf_offsets,
                      "ivf_docs": ivf_docs, **StringTable.arrays("ids", doc_ids, lookup=True)}
            if self.vector_dtype:
                arrays["vectors"] = flat.astype(self.vector_dtype)
            del flat
            name = new_name("chunk")
            ref = write_container(self.path / f"{name}.rsx", arrays)
            replaced = self.docnos(doc_ids)
            chunk = commit.Segment(name, {"data": ref}, len(doc_ids), meta={"tokens": int(offsets[-1])})
            self._publish(chunk, replaced[replaced >= 0])
        return len(doc_ids)

    def delete(self, doc_ids: Iterable[str]) -> int:
        """Delete documents by id (every id must be in the index); commits and reloads; returns how many."""
        doc_ids = list(dict.fromkeys(str(i) for i in doc_ids))
        with WriterLock(self.path):
            self._reload_if_changed()
            docnos = self.docnos(doc_ids)
            unknown = [i for i, d in zip(doc_ids, docnos.tolist()) if d < 0]
            if unknown:
                raise InputError(f"unknown document id(s), nothing deleted: {', '.join(map(repr, unknown[:5]))}"
                                 + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""))
            if len(docnos):
                self._publish(None, docnos)
        return len(docnos)

    def _publish(self, chunk: commit.Segment | None, newly_deleted: np.ndarray) -> None:
        """Publish a snapshot with `chunk` added (if any) and the documents `newly_deleted` (global doc numbers)
        tombstoned, then reload it."""
        manifest = self.manifest.copy()
        which = np.searchsorted(self._bases, newly_deleted, side="right") - 1
        for ci in np.unique(which).tolist():
            entry, c = manifest.segments[ci], self.chunks[ci]
            deleted = ~c.live
            deleted[newly_deleted[which == ci] - c.base] = True
            entry.deletes = write_tombstones(self.path / new_name("del", ".rsx"), deleted)
            entry.num_deleted = int(deleted.sum())
        manifest.segments = [e for e in manifest.segments if e.num_live > 0] + ([chunk] if chunk else [])
        commit.publish(self.path, manifest)
        self.__init__(self.path)

    def _reload_if_changed(self) -> None:
        if self._read_manifest().commit != self.manifest.commit:
            self.__init__(self.path)

    def _check_vectors(self, v: np.ndarray, what: str) -> int:
        v = np.asarray(v)
        if v.ndim != 2 or v.shape[1] != self.dim:
            raise InputError(f"{what}: expected token vectors of shape [n, {self.dim}], got {v.shape}"
                             + (f": dimension {v.shape[1]}, the index holds {self.dim}" if v.ndim == 2 else ""))
        if not len(v):
            raise InputError(f"{what} has no token vectors")
        if not np.isfinite(v).all():
            raise InputError(f"{what} holds NaN or infinite values")
        return len(v)

    def check_encoder(self, info: dict[str, Any]) -> None:
        """IncompatibleIndexError unless `info` (an encoder's model_info) matches what the index recorded."""
        if info.get("dimension") not in (None, self.dim):
            raise IncompatibleIndexError(f"{self.path} holds {self.dim}-dimensional vectors; the encoder makes "
                                         f"{info.get('dimension')}-dimensional ones")
        check_compatible(self.encoder_info, info)

    # --- lookup ------------------------------------------------------------------------------------------------

    @property
    def num_docs(self) -> int:
        """Live documents."""
        return int(self.live.sum())

    @property
    def num_tokens(self) -> int:
        """Token vectors of the live documents."""
        return int(sum(np.diff(c.offsets)[self.live[c.base:c.base + c.num_docs]].sum() for c in self.chunks))

    def size_bytes(self) -> int:
        """Bytes of every file of the current snapshot."""
        names = {commit.MANIFEST} | self.manifest.file_names()
        return sum((self.path / n).stat().st_size for n in names)

    def docnos(self, doc_ids: Sequence[str]) -> np.ndarray:
        """Global doc numbers of live documents by id (-1 where absent or deleted)."""
        out = np.full(len(doc_ids), -1, dtype=np.int64)
        for c in self.chunks:
            pos = c.ids.positions(doc_ids)
            hit = pos >= 0
            glob = pos[hit] + c.base
            alive = self.live[glob]
            out[np.flatnonzero(hit)[alive]] = glob[alive]
        return out

    def vectors(self, docnos: Sequence[int] | np.ndarray, stored: bool = False) -> list[np.ndarray]:
        """Token vectors (float32) of documents by global doc number: decompressed, or with `stored` the stored
        full-precision copies (as stored: float16-rounded in a float16 index)."""
        flat, bounds = self._gather(np.asarray(docnos, np.int64), stored)
        return np.split(flat, bounds[1:-1])

    def require_stored(self) -> None:
        """IncompatibleIndexError unless the index stores full-precision vectors (needed by rescore=True)."""
        if self.vector_dtype is None:
            raise IncompatibleIndexError(f"exact rescoring needs stored vectors: {self.path} was built without them "
                                         "(build it with store_vectors='float16')")

    def _gather(self, docnos: np.ndarray, stored: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Concatenated float32 token vectors of the documents (in the order given; decompressed, or the stored
        copies) and their row bounds."""
        if stored:
            self.require_stored()
        if len(docnos) and (docnos.min() < 0 or docnos.max() >= len(self.live)):
            raise InputError(f"doc number out of range (index of {len(self.live)} documents)")
        self.verify()
        which = np.searchsorted(self._bases, docnos, side="right") - 1
        ascending = bool(np.all(np.diff(docnos) >= 0))
        parts, lengths = [None] * len(docnos), np.zeros(len(docnos), np.int64)
        flats = []
        for ci in np.unique(which).tolist():
            rows = np.flatnonzero(which == ci)
            c = self.chunks[ci]
            local = docnos[rows] - c.base
            starts, ends = c.offsets[local], c.offsets[local + 1]
            if stored:
                flat = np.asarray(c.stored[_token_rows(starts, ends)], np.float32)
            else:
                flat = K.decompress(c.codes, c.residuals, starts, ends, self.centroids, self._table, self.normalize)
            lengths[rows] = ends - starts
            if ascending:  # chunk after chunk is the order given: no per-document split
                flats.append(flat)
                continue
            for r, piece in zip(rows.tolist(), np.split(flat, np.cumsum(ends - starts)[:-1])):
                parts[r] = piece
        bounds = np.zeros(len(docnos) + 1, np.int64)
        np.cumsum(lengths, out=bounds[1:])
        if not len(docnos):
            return np.zeros((0, self.dim), np.float32), bounds
        flat = (flats[0] if len(flats) == 1 else np.concatenate(flats)) if ascending else np.concatenate(parts)
        return flat, bounds

    # --- search ------------------------------------------------------------------------------------------------

    def search(self, queries: Sequence[np.ndarray], k: int = 10, params: PlaidParams | None = None) -> list[Hits]:
        """Top `k` live documents of each query ([n_query_tokens, dim]) by MaxSim over decompressed vectors (with
        `params.rescore`: over the stored vectors, exact MaxSim; IncompatibleIndexError if the index has none),
        among the candidates of its tokens' top `nprobe` centroids, of which the best `ncandidates` (default
        max(4k, 256)) by centroid interaction (skipping tokens of centroids below `centroid_threshold`), and of
        those the best `ndecompress` (default all) by full centroid interaction, are rescored. nprobe = all
        centroids and ncandidates >= the number of documents make it exhaustive."""
        params = params or PlaidParams()
        k = check_k(k)
        if params.rescore:
            self.require_stored()
        if params.nprobe < 1:
            raise InputError(f"nprobe must be at least 1, got {params.nprobe}")
        ncandidates = max(4 * k, 256) if params.ncandidates is None else params.ncandidates
        if ncandidates < k:
            raise InputError(f"ncandidates={ncandidates} must be at least k={k}")
        if params.ndecompress is not None and not k <= params.ndecompress:
            raise InputError(f"ndecompress={params.ndecompress} must be at least k={k}")
        if isinstance(queries, np.ndarray) and queries.ndim == 2:
            raise InputError("search takes a batch of queries: a list of [n_query_tokens, dim] arrays")
        out = []
        for query in queries:
            q = np.ascontiguousarray(query, np.float32)
            docnos = self.candidates(q, params.nprobe, ncandidates, params.centroid_threshold, params.ndecompress)
            vectors, bounds = self._gather(docnos, stored=params.rescore)
            out.append(topk.select(docnos, maxsim_scores(q, vectors, bounds), k))
        return out

    def candidates(self, query: np.ndarray, nprobe: int, ncandidates: int | None = None,
                   centroid_threshold: float | None = None, ndecompress: int | None = None) -> np.ndarray:
        """The documents `search` rescores exactly (global doc numbers, ascending): those listed under the query
        tokens' top `nprobe` centroids (candidate generation), cut to the best `ncandidates` by centroid
        interaction when there are more (None: no cut; tokens of centroids that score below `centroid_threshold`
        for every query token are skipped), then to the best `ndecompress` by full centroid interaction."""
        q = np.ascontiguousarray(query, np.float32)
        self._check_vectors(q, "the query")
        self.verify()
        scores = q @ self.centroids.T  # [query tokens, centroids]
        nprobe = min(nprobe, scores.shape[1])
        probes = np.unique(np.argpartition(-scores, nprobe - 1, axis=1)[:, :nprobe]).astype(np.int64)
        per_chunk = [(c, K.candidate_docs(c.ivf_offsets, c.ivf_docs, probes, self.live[c.base:c.base + c.num_docs]))
                     for c in self.chunks]
        transposed = None
        if ncandidates is not None and sum(len(local) for _, local in per_chunk) > ncandidates:
            transposed = np.ascontiguousarray(scores.T)
            kept = None if centroid_threshold is None else transposed.max(1) >= centroid_threshold
            per_chunk = _best_by_interaction(per_chunk, transposed, ncandidates, kept)
        if ndecompress is not None and sum(len(local) for _, local in per_chunk) > ndecompress:
            transposed = np.ascontiguousarray(scores.T) if transposed is None else transposed
            per_chunk = _best_by_interaction(per_chunk, transposed, ndecompress, None)
        return np.concatenate([c.base + local.astype(np.int64) for c, local in per_chunk] + [np.zeros(0, np.int64)])

    def __repr__(self) -> str:
        stored = f", {self.vector_dtype} vectors" if self.vector_dtype else ""
        return (f"PlaidIndex({str(self.path)!r}, {self.num_docs} documents, {len(self.centroids)} centroids, "
                f"{self.nbits} bits{stored})")


def _best_by_interaction(per_chunk: list, centroid_scores: np.ndarray, keep: int,
                         kept_centroids: np.ndarray | None) -> list:
    """Per chunk, the candidates (local numbers, ascending) among the `keep` best of all chunks by centroid
    interaction (pruned to `kept_centroids` where given)."""
    approx = np.concatenate([K.centroid_interaction(c.codes, c.offsets, local, centroid_scores)
                             if kept_centroids is None else
                             K.pruned_centroid_interaction(c.codes, c.offsets, local, centroid_scores, kept_centroids)
                             for c, local in per_chunk] + [np.zeros(0, np.float32)])
    best = np.zeros(len(approx), bool)
    best[np.argpartition(-approx, keep - 1)[:keep]] = True
    out, start = [], 0
    for c, local in per_chunk:
        out.append((c, local[best[start:start + len(local)]]))
        start += len(local)
    return out


def _token_rows(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The rows of the token ranges [starts[i], ends[i]), concatenated."""
    lengths = ends - starts
    return np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())


def _inverted_lists(codes: np.ndarray, offsets: np.ndarray, num_centroids: int) -> tuple[np.ndarray, np.ndarray]:
    """Centroid -> the (local, ascending) documents holding a token assigned to it, as CSR arrays."""
    docs = np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))
    pairs = np.unique(codes.astype(np.int64) * (len(offsets) - 1) + docs)
    centroid, doc = np.divmod(pairs, len(offsets) - 1)
    ivf_offsets = np.zeros(num_centroids + 1, dtype=np.int64)
    np.cumsum(np.bincount(centroid, minlength=num_centroids), out=ivf_offsets[1:])
    return ivf_offsets, doc.astype(np.int32)
