"""Dense vector index: a FAISS index chosen by a factory string, doc ids, tombstones and optional stored vectors.

    with DenseIndexWriter("idx", factory="HNSW32", dim=384, metric="ip", encoder=enc.model_info()) as w:
        w.add(["d1", "d2"], vectors)                    # float32 [n, 384]; re-adding an id replaces it
    index = DenseIndex("idx")
    hits = index.search(query_vectors, k=10)            # per query: Hits(docnos, scores); DenseParams for knobs

On disk: an index directory of rankstack.index.commit: `manifest.json` (factory, dim, metric, the encoder's
model_info) names one segment: a FAISS file, a container file holding the doc ids (a StringTable; FAISS id = row)
and optionally the vectors (float16 or float32) for exact rescoring and feedback, and a tombstone file of deleted
rows. A commit that adds vectors writes a new FAISS file and container; one that only deletes writes a new
tombstone file; then the manifest is published atomically and files it no longer names are removed: a crash at
any moment leaves the last commit intact. Every file is checksummed. Deleted rows are skipped during search by a
FAISS IDSelector (or, on GPU, by fetching more and filtering); `DenseIndexWriter.compact()` rebuilds the index
without them.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from rankstack.data.run import Hits, Run, sort_hits
from rankstack.errors import IncompatibleIndexError, IndexFormatError, InputError
from rankstack.records import check_compatible
from rankstack.index import commit
from rankstack.index.commit import LockedWriter, Snapshot, WriterLock, check_hint, new_name
from rankstack.index.container import Container, FileRef, crc32, read_checked, write_container
from rankstack.index.search import DenseParams, check_k
from rankstack.index.segment import read_tombstones, write_tombstones
from rankstack.index.strings import StringTable

FORMAT = "rankstack-dense-index"
FORMAT_VERSION = 2  # 2: checksummed container files (rankstack.index.commit)
WHAT = "dense index"
METRICS = ("ip", "l2")
VECTOR_DTYPES = ("float16", "float32")
GPU_MAX_K = 2048  # FAISS GPU indexes return at most this many hits


def _faiss():
    try:
        import faiss
    except ImportError as e:
        raise ImportError("dense indexes need FAISS: pip install faiss-cpu (or 'rankstack[faiss]')") from e
    return faiss


def read_manifest(path: Path) -> commit.Manifest:
    manifest = commit.read_manifest(path, FORMAT, FORMAT_VERSION, WHAT)
    missing = [k for k in ("factory", "dim", "metric", "encoder") if k not in manifest.settings]
    if missing or len(manifest.segments) > 1:
        raise IndexFormatError(f"{path / commit.MANIFEST} is malformed: "
                               + (f"it lacks {', '.join(missing)}" if missing else "it names several segments"))
    return manifest


def check_vectors(vectors: Any, dim: int, what: str = "vectors") -> np.ndarray:
    """`vectors` as a C-contiguous float32 [n, dim] matrix (one 1-D vector becomes one row); InputError for
    another dimension or non-finite values."""
    try:
        x = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise InputError(f"{what} must be a numeric matrix ({e})") from None
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != dim:
        raise InputError(f"{what} have shape {tuple(x.shape)}; the index holds {dim}-dimensional vectors")
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        raise InputError(f"{what}: row {int(np.flatnonzero(~finite)[0])} holds NaN or infinite values")
    return np.ascontiguousarray(x)


def min_train_vectors(index: Any) -> int:
    """How many vectors `index` needs to train (0 when trained or trainless): IVF lists, PQ centroids."""
    faiss = _faiss()
    if index.is_trained:
        return 0
    need = 1
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        need = max(need, int(ivf.nlist))
    for obj in (ivf, faiss.downcast_index(index)):
        pq = getattr(obj, "pq", None)
        if pq is not None:
            need = max(need, 1 << int(pq.nbits))
    return need


class DenseIndex(Snapshot):
    """A read-only snapshot of a dense index directory. `gpu`: None uses every GPU when FAISS sees any."""

    def __init__(self, path: str | Path, gpu: bool | None = None):
        self.path = Path(path).absolute()
        self.manifest = commit.open_snapshot(self.path, lambda: read_manifest(self.path), self._open)
        self._use_gpu(gpu)

    def _open(self, m: commit.Manifest) -> commit.Manifest:
        faiss = _faiss()
        hint = check_hint(self.path)
        settings = m.settings
        self.factory, self.dim, self.metric = settings["factory"], int(settings["dim"]), settings["metric"]
        self.generation = m.generation
        self.encoder_info: dict = settings["encoder"] or {}
        segment = m.segments[0] if m.segments else None
        self.total = segment.num_docs if segment else 0
        self.num_live = segment.num_live if segment else 0
        self.data = None
        if segment is None:
            self.index, self.doc_ids, self.stored_vectors = _new_faiss(settings), _EmptyIds(), None
        else:
            self.index = _read_faiss(self.path / segment.files["faiss"].name, segment.files["faiss"], hint)
            self.data = Container(self.path / segment.files["data"].name, segment.files["data"], hint)
            self.doc_ids = StringTable(self.data, "ids", where=f"{self.data.path}:ids")
            self.stored_vectors = self.data["vectors"] if "vectors" in self.data else None
        self.deleted = (~read_tombstones(self.path / segment.deletes.name, segment.deletes, self.total, hint)
                        if segment is not None and segment.deletes else np.zeros(self.total, dtype=bool))
        if self.index.ntotal != self.total or len(self.doc_ids) != self.total or (
                self.stored_vectors is not None and self.stored_vectors.shape != (self.total, self.dim)):
            raise IndexFormatError(f"{self.path} is damaged: the FAISS index holds {self.index.ntotal} vectors, "
                                   f"the id table {len(self.doc_ids)}, the manifest {self.total}{hint}")
        self._live_bitmap = self._selector = None
        if self.deleted.any():
            self._live_bitmap = np.packbits(~self.deleted, bitorder="little")
            self._selector = faiss.IDSelectorBitmap(self.total, faiss.swig_ptr(self._live_bitmap))
        self._positions: dict[str, int] | None = None
        return m

    def _verify(self) -> None:
        """The stored vectors' and ids' checksums (the FAISS file is checked whole when it is read)."""
        if self.data is not None:
            self.data.verify()
            self.doc_ids.check()

    def _use_gpu(self, gpu: bool | None) -> None:
        faiss = _faiss()
        self.search_index, self.on_gpu = self.index, False
        gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        if gpu is False or (gpus == 0 and gpu is None):
            return
        if gpus == 0:
            raise InputError("gpu=True, but FAISS sees no GPU (install faiss-gpu and check CUDA)")
        try:
            self.search_index, self.on_gpu = faiss.index_cpu_to_all_gpus(self.index), True
        except RuntimeError:  # no GPU version of this index type (HNSW, ...): search on the CPU
            if gpu:
                raise

    # --- properties ------------------------------------------------------------------------------------

    @property
    def num_deleted(self) -> int:
        return self.total - self.num_live

    @property
    def vector_dtype(self) -> str | None:
        return self.manifest.settings.get("vector_dtype")

    def __len__(self) -> int:
        return self.num_live

    def __repr__(self) -> str:
        return (f"DenseIndex({str(self.path)!r}, factory={self.factory!r}, dim={self.dim}, metric={self.metric!r}, "
                f"{self.num_live} vectors)")

    def position(self, doc_id: str) -> int:
        """Row (FAISS id) of a live document, or -1."""
        if self._positions is None:
            self._positions = {d: i for i, d in enumerate(self.doc_ids) if not self.deleted[i]}
        return self._positions.get(doc_id, -1)

    def vectors(self, positions: np.ndarray) -> np.ndarray:
        """float32 vectors of rows: the stored copy, else reconstructed by FAISS (exact for Flat and HNSW)."""
        positions = np.asarray(positions, dtype=np.int64)
        if len(positions) and (positions.min() < 0 or positions.max() >= self.total):
            raise InputError(f"row out of range (index of {self.total} vectors)")
        if self.stored_vectors is not None:
            self.verify()
            return np.asarray(self.stored_vectors[positions], dtype=np.float32)
        try:
            return self.index.reconstruct_batch(positions)
        except RuntimeError as e:
            raise IncompatibleIndexError(f"{self.path} ({self.factory}) cannot return its vectors ({e}); build it "
                                         "with store_vectors='float16' or 'float32'") from None

    # --- search ----------------------------------------------------------------------------------------

    def search(self, queries: Any, k: int = 10, params: DenseParams | None = None) -> list[Hits]:
        """Top-k (rows as doc numbers, scores) of each query vector, best first, ties by doc number (see
        `search_arrays` for the scores)."""
        rows, scores = self.search_arrays(queries, k, params)
        out = []
        for r, s in zip(rows, scores):
            valid = r >= 0
            out.append(sort_hits(r[valid], s[valid]))
        return out

    def search_arrays(self, queries: Any, k: int = 10, params: DenseParams | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k as FAISS gives them: (rows int64 [n, k], scores float32 [n, k]) per query vector, best first;
        rows -1 pad missing hits. Scores: inner product, or minus the squared L2 distance. With `params.rescore`,
        the top `rescore_depth` (default 4k) approximate hits are re-scored exactly from the stored vectors."""
        params = params or DenseParams()
        nprobe, ef_search, rescore, rescore_depth = params.nprobe, params.ef_search, params.rescore, \
            params.rescore_depth
        q = check_vectors(queries, self.dim, "query vectors")
        k = check_k(k)
        if self.num_live == 0:
            raise InputError(f"{self.path} holds no documents: add some before searching")
        self.verify()
        if rescore and self.stored_vectors is None:
            raise IncompatibleIndexError(f"rescore=True needs stored vectors: {self.path} was built without them "
                                         "(store_vectors='float16' or 'float32')")
        depth = max(k, rescore_depth or 4 * k) if rescore else k
        depth = min(depth, self.total)
        filter_after = self._selector is not None and self.on_gpu
        if filter_after:  # GPU indexes take no IDSelector: fetch more, drop deleted rows
            depth = min(self.total, depth + self.num_deleted, GPU_MAX_K)
        params = self._params(nprobe, ef_search, None if filter_after else self._selector, depth)
        scores, rows = self.search_index.search(q, depth, params=params)
        short = int(((rows >= 0).sum(1) < min(k, self.num_live)).sum())
        if short:
            warnings.warn(f"{short} of {len(q)} queries got fewer than k={k} hits from {self.factory} (an approximate "
                          "index that did not reach them): raise ef_search (HNSW) or nprobe (IVF), or use 'Flat'",
                          stacklevel=3)
        if self.metric == "l2":
            np.negative(scores, out=scores)
        if filter_after:
            rows, scores = _drop_rows(rows, scores, self.deleted)
        if rescore:
            rows, scores = self._rescore(q, rows, k)
        elif rows.shape[1] > k:
            rows, scores = rows[:, :k], scores[:, :k]
        return rows, scores

    def _params(self, nprobe: int | None, ef_search: int | None, selector: Any, depth: int) -> Any:
        """FAISS search parameters carrying the knobs and the deleted-rows filter (None: the index's own). An HNSW
        graph is searched with a candidate list of at least `depth` (efSearch >= k, as FAISS means it)."""
        faiss = _faiss()
        index, wrap = faiss.downcast_index(self.search_index), None
        if isinstance(index, faiss.IndexPreTransform):
            wrap, index = faiss.SearchParametersPreTransform(), faiss.downcast_index(index.index)
        hnsw = isinstance(index, faiss.IndexHNSW)
        if selector is None and nprobe is None and ef_search is None and not hnsw:
            return None
        if faiss.try_extract_index_ivf(index) is not None:
            params = faiss.SearchParametersIVF()
            params.nprobe = nprobe or faiss.try_extract_index_ivf(index).nprobe
        elif hnsw:
            params = faiss.SearchParametersHNSW()
            params.efSearch = max(ef_search or index.hnsw.efSearch, depth)
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        if wrap is not None:
            wrap.index_params = params
            wrap.sel = params.sel
            self._inner_params = params  # SWIG holds a raw pointer: keep the object alive
            return wrap
        return params

    def _rescore(self, q: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        valid = rows >= 0
        vecs = self.vectors(np.where(valid, rows, 0).ravel()).reshape(*rows.shape, self.dim)
        if self.metric == "ip":
            exact = np.einsum("qkd,qd->qk", vecs, q)
        else:
            exact = -((vecs - q[:, None, :]) ** 2).sum(-1)
        exact = np.where(valid, exact, -np.inf).astype(np.float32)
        order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
        rows = np.take_along_axis(rows, order, 1)
        exact = np.take_along_axis(exact, order, 1)
        return np.where(np.isfinite(exact), rows, -1), exact


class _EmptyIds:
    """The id table of an index that has never held a document."""

    def __len__(self) -> int:
        return 0

    def __iter__(self):
        return iter(())

    def take(self, positions: np.ndarray) -> list[str]:
        return []


def to_run(qids: Sequence[str], rows: np.ndarray, scores: np.ndarray, doc_ids: Any, name: str = "Dense") -> Run:
    """A Run from FAISS-style result matrices (rows -1 mark missing hits), ties ordered by row as Run expects."""
    valid = rows >= 0
    all_valid = bool(valid.all())
    tied = (scores[:, 1:] == scores[:, :-1]).any(axis=1) if scores.shape[1] > 1 else np.zeros(len(rows), bool)
    rows32 = rows.astype(np.int32)
    results = {}
    for i, qid in enumerate(qids):
        r, s = (rows32[i], scores[i]) if all_valid else (rows32[i][valid[i]], scores[i][valid[i]])
        if tied[i]:
            order = np.lexsort((r, -s))
            r, s = r[order], s[order]
        results[qid] = (r, s)
    return Run(results, doc_ids, name=name, presorted=True)


def _drop_rows(rows: np.ndarray, scores: np.ndarray, deleted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move deleted rows' hits to the end of each list (as -1), keeping the order of the others."""
    dead = (rows < 0) | deleted[np.maximum(rows, 0)]
    order = np.argsort(dead, axis=1, kind="stable")
    rows = np.where(np.take_along_axis(dead, order, 1), -1, np.take_along_axis(rows, order, 1))
    return rows, np.take_along_axis(scores, order, 1)


def _read_faiss(path: Path, expect: FileRef, hint: str) -> Any:
    data = read_checked(path, expect, hint)
    try:
        return _faiss().deserialize_index(np.frombuffer(data, dtype=np.uint8))
    except RuntimeError as e:
        raise IndexFormatError(f"{path} is damaged ({str(e).strip().splitlines()[-1][:200]}){hint}") from None


def _new_faiss(m: dict) -> Any:
    """An empty FAISS index of the settings' factory, dimension and metric."""
    faiss = _faiss()
    metric = faiss.METRIC_INNER_PRODUCT if m["metric"] == "ip" else faiss.METRIC_L2
    try:
        return faiss.index_factory(int(m["dim"]), m["factory"], metric)
    except RuntimeError as e:
        raise InputError(f"FAISS cannot build index {m['factory']!r} ({str(e).strip().splitlines()[-1][:200]})") \
            from None


class DenseIndexWriter(LockedWriter):
    """The one writer of a dense index directory (guarded by a lock file).

    A new directory needs `factory`, `dim`, `metric` ('ip' or 'l2'), the encoder's `model_info()` (may be {} for
    vectors from elsewhere) and `store_vectors` (None, 'float16' or 'float32'); an existing one checks any given
    against what it records. Changes stay in memory until `commit()`; IVF/PQ indexes train on the first `add`,
    which then needs enough vectors (`min_train_vectors`).
    """

    def __init__(self, path: str | Path, *, factory: str | None = None, dim: int | None = None,
                 metric: str | None = None, encoder: dict | None = None, store_vectors: str | None = None,
                 overwrite: bool = False):
        self.path = Path(path)
        self._lock = WriterLock(self.path)
        self._lock.acquire()
        try:
            if (self.path / commit.MANIFEST).exists() and not overwrite:
                self.manifest = commit.start(self.path, FORMAT, FORMAT_VERSION, WHAT, None, overwrite=False)
                self._check(factory=factory, dim=dim, metric=metric, vector_dtype=store_vectors)
                if encoder is not None and self.manifest.settings["encoder"]:
                    check_compatible(self.manifest.settings["encoder"], encoder)
                snapshot = DenseIndex(self.path, gpu=False)
                snapshot.verify()
                self.index = snapshot.index
                self.ids: list[str] = list(snapshot.doc_ids)
                self.deleted = np.array(snapshot.deleted, dtype=bool)
                self._vectors = ([np.array(snapshot.stored_vectors)] if snapshot.stored_vectors is not None
                                 and len(snapshot.stored_vectors) else [])
            else:
                settings = self._new_settings(factory, dim, metric, encoder, store_vectors)
                self.manifest = commit.start(self.path, FORMAT, FORMAT_VERSION, WHAT, settings, overwrite=True)
                self.index = _new_faiss(settings)
                self.ids, self.deleted, self._vectors = [], np.zeros(0, dtype=bool), []
        except BaseException:
            self._lock.release()
            raise
        self.settings = self.manifest.settings
        self.dim, self.metric = int(self.settings["dim"]), self.settings["metric"]
        self._positions = {d: i for i, d in enumerate(self.ids) if not self.deleted[i]}
        self._vectors_changed = self._deletes_changed = False

    @staticmethod
    def _new_settings(factory, dim, metric, encoder, store_vectors) -> dict:
        if factory is None or dim is None:
            raise InputError("a new dense index needs factory (e.g. 'Flat', 'HNSW32', 'IVF256,PQ32x8') and dim")
        if not isinstance(dim, int) or dim < 1:
            raise InputError(f"dim must be a positive integer, got {dim!r}")
        metric = metric or "ip"
        if metric not in METRICS:
            raise InputError(f"unknown metric {metric!r} (expected one of {METRICS})")
        if store_vectors not in (None, *VECTOR_DTYPES):
            raise InputError(f"store_vectors must be None, 'float16' or 'float32', got {store_vectors!r}")
        return {"factory": factory, "dim": dim, "metric": metric, "vector_dtype": store_vectors,
                "encoder": encoder or {}}

    def _check(self, **given) -> None:
        settings = self.manifest.settings
        for key, value in given.items():
            if value is not None and settings.get(key) != value:
                raise IncompatibleIndexError(f"{self.path} was built with {key}={settings.get(key)!r}, not "
                                             f"{value!r}; open it without that setting or build a new index")

    @property
    def min_train_vectors(self) -> int:
        return min_train_vectors(self.index)

    def __len__(self) -> int:
        return len(self._positions)

    # --- changes -------------------------------------------------------------------------------------

    def add(self, doc_ids: Sequence[str], vectors: Any) -> None:
        """Add documents' vectors; an id already present (committed or not) is replaced."""
        doc_ids = list(doc_ids)
        x = check_vectors(vectors, self.dim)
        if len(doc_ids) != len(x):
            raise InputError(f"{len(doc_ids)} document ids for {len(x)} vectors")
        for doc_id in doc_ids:
            if not isinstance(doc_id, str) or not doc_id:
                raise InputError(f"document ids must be non-empty strings, got {doc_id!r}")
        if len(set(doc_ids)) != len(doc_ids):
            dup = next(d for d in doc_ids if doc_ids.count(d) > 1)
            raise InputError(f"document id {dup!r} appears twice in one add")
        if not len(x):
            return
        need = self.min_train_vectors
        if need:
            if len(x) < need:
                raise InputError(f"{self.settings['factory']!r} must be trained first: its first add needs at least "
                                 f"{need} vectors, got {len(x)}; add more at once (or use 'Flat' / 'HNSW32')")
            try:
                self.index.train(x)
            except RuntimeError as e:
                raise InputError(f"training {self.settings['factory']!r} on {len(x)} vectors failed: "
                                 f"{str(e).strip().splitlines()[-1][:300]}; add more vectors at once") from None
        self.index.add(x)
        start = len(self.ids)
        self.deleted = np.concatenate([self.deleted, np.zeros(len(x), dtype=bool)])
        for i, doc_id in enumerate(doc_ids):
            old = self._positions.get(doc_id)
            if old is not None:
                self.deleted[old] = True
            self._positions[doc_id] = start + i
        self.ids += doc_ids
        if self.settings["vector_dtype"]:
            self._vectors.append(x.astype(self.settings["vector_dtype"]))
        self._vectors_changed = True

    def delete(self, doc_ids: Iterable[str], missing: str = "error") -> None:
        """Delete documents by id; an unknown id raises InputError (nothing deleted) unless missing='ignore'."""
        doc_ids = list(doc_ids)
        unknown = [d for d in doc_ids if d not in self._positions]
        if unknown and missing != "ignore":
            raise InputError(f"unknown document id{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(map(repr, unknown[:5]))}{' ...' if len(unknown) > 5 else ''}")
        for doc_id in doc_ids:
            pos = self._positions.pop(doc_id, None)
            if pos is not None:
                self.deleted[pos] = True
                self._deletes_changed = True

    def compact(self) -> None:
        """Rebuild the FAISS index without deleted rows (keeps its training); needs the vectors back."""
        if not self.deleted.any():
            return
        faiss = _faiss()
        live = np.flatnonzero(~self.deleted)
        if self._vectors:
            vectors = np.concatenate(self._vectors)
        else:
            try:
                vectors = self.index.reconstruct_n(0, self.index.ntotal)
            except RuntimeError as e:
                raise IncompatibleIndexError(f"compact() cannot read back {self.settings['factory']} vectors ({e}); "
                                             "build the index with store_vectors") from None
        vectors = np.ascontiguousarray(vectors[live], dtype=np.float32)
        fresh = faiss.clone_index(self.index)
        fresh.reset()
        if len(vectors):
            fresh.add(vectors)
        self.index = fresh
        self.ids = [self.ids[i] for i in live.tolist()]
        self.deleted = np.zeros(len(live), dtype=bool)
        self._positions = {d: i for i, d in enumerate(self.ids)}
        if self._vectors:
            self._vectors = [vectors.astype(self.settings["vector_dtype"])]
        self._vectors_changed = True

    def commit(self) -> None:
        """Write what changed (vectors: a new FAISS file and container; deletions only: a new tombstone file) and
        atomically make it the committed state."""
        first = not self.manifest.segments
        if not (self._vectors_changed or self._deletes_changed or first):
            return
        manifest = self.manifest.copy()
        if self._vectors_changed or first:
            name = new_name("vec")
            faiss_bytes = _faiss().serialize_index(self.index).tobytes()
            faiss_path = self.path / f"{name}.faiss"
            with open(faiss_path, "xb") as f:
                f.write(faiss_bytes)
                f.flush()
                os.fsync(f.fileno())
            arrays = StringTable.arrays("ids", self.ids)
            if self.settings["vector_dtype"]:
                vectors = (np.concatenate(self._vectors) if self._vectors
                           else np.zeros((0, self.dim), dtype=self.settings["vector_dtype"]))
                self._vectors = [vectors]
                arrays["vectors"] = vectors
            segment = commit.Segment(name, {"faiss": FileRef(faiss_path.name, len(faiss_bytes), crc32(faiss_bytes)),
                                            "data": write_container(self.path / f"{name}.rsx", arrays)}, len(self.ids))
        else:
            segment = manifest.segments[0]
        segment.deletes, segment.num_deleted = None, 0
        if self.deleted.any():
            segment.deletes = write_tombstones(self.path / new_name("del", ".rsx"), self.deleted)
            segment.num_deleted = int(self.deleted.sum())
        manifest.segments = [segment]
        self.manifest = commit.publish(self.path, manifest)
        self._vectors_changed = self._deletes_changed = False
