"""Seismic: approximate top-k retrieval over learned sparse vectors (Bruch, Nardini, Rulli, Venturini, SIGIR 2024).

Building: each term's posting list keeps only its `n_postings` heaviest documents (static pruning), is split
into blocks by clustering (random centroids, each document joins the centroid of largest dot product), and
each block gets a summary: the component-wise max of its documents, cut to the heaviest components that hold
`summary_energy` of its mass. A forward index keeps every document whole for exact rescoring.

Searching: the query's `query_cut` heaviest terms are visited in order of weight; each term's block summaries
are scored against the query at once, and its blocks are visited in list order, skipping a block whose summary
scores below `heap_factor` x (k-th best score so far); documents of visited blocks are scored exactly with the
forward index (each once per query). Higher `heap_factor` (at most 1) and lower `query_cut`: faster, lower
recall (the knobs mean what they mean in pyseismic-lsr). With no pruning (`n_postings=None`,
`summary_energy=1.0`), `heap_factor` <= 1 and `query_cut=None` the result is exact over the stored weights
(a summary then bounds every score of its block).

    >>> index = SeismicIndex.build("idx/seismic", doc_matrix)        # scipy CSR, documents x vocabulary
    >>> queries = SparseQueries.from_matrix(query_matrix[:1], vocabulary)   # columns: the index's components
    >>> [(docnos, scores)] = index.search(queries, k=10, params=SeismicParams(query_cut=20, heap_factor=0.8))

What is stored (format version 3; see seismic_kernels for the array layout):

* the forward index: with `value_bits=16` (default) each weight is rounded to a multiple of
  `value_scale` = (largest weight / 65535), as pyseismic-lsr keeps float16 weights, and packed with its
  component into one uint32 ("packed" layout; a vocabulary over 65,536 keeps components and 16-bit weights in
  two arrays, "split"); `value_bits=32` keeps float32 weights ("split"), scores exact;
* the blocks: each term's range of blocks and each block's documents;
* the summaries, quantised and inverted per term: a summary value v of block b is stored as the uint8
  ceil(v / scale[b]) with scale[b] = (block maximum / 255), which keeps the summary an upper bound, and each
  term's summary entries are grouped by component (block number, code), so that scoring a term's summaries
  reads only the entries of the query's components.

On disk: an index directory of rankstack.index.commit: `manifest.json` (the build's settings) names one
checksummed container file of arrays, memory-mapped on opening; a rebuild takes the directory's writer lock,
writes a new file, publishes the manifest atomically and removes the old file (and whatever a killed build left).
The first search checks the file's checksums and the arrays' structure. Older versions are refused with
IndexFormatError: rebuild the index.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numba
import numpy as np
import scipy.sparse as sp

from rankstack.data.run import Hits
from rankstack.errors import IndexFormatError, InputError
from rankstack.index import seismic_kernels as K
from rankstack.index.query import numba_threads
from rankstack.index.search import EMPTY, SeismicParams, SparseQueries, check_k
from rankstack.index import commit
from rankstack.index.commit import Snapshot, WriterLock, check_hint, new_name
from rankstack.index.container import Container, write_container

FORMAT = "rankstack-seismic-index"
FORMAT_VERSION = 4  # 1: float summaries per block; 2: float32 forward index; 3: a folder of .npy files
WHAT = "Seismic index"
BLOCK_ARRAYS = ("term_blocks", "block_offsets", "block_docs", "summary_scales", "term_comps", "summary_comps",
                "summary_comp_offsets", "summary_blocks", "summary_codes", "fwd_offsets")
FORWARD_ARRAYS = {"packed": ("fwd_packed",), "split": ("fwd_comps", "fwd_values")}
_BATCH_CELLS = 1 << 22  # queries * k result cells per kernel call

class SeismicIndex(Snapshot):
    """A read-only, memory-mapped Seismic index directory (see the module docstring)."""

    def __init__(self, path: str | Path):
        self.path = Path(path).absolute()
        self.manifest = commit.open_snapshot(self.path, self._read_manifest, self._open)

    def _read_manifest(self) -> commit.Manifest:
        return commit.read_manifest(self.path, FORMAT, FORMAT_VERSION, WHAT)

    def _open(self, manifest: commit.Manifest) -> commit.Manifest:
        hint = check_hint(self.path)
        info = manifest.settings
        try:
            (segment,) = manifest.segments
            self.container = Container(self.path / segment.files["data"].name, segment.files["data"], hint)
            layout = info["forward"]
            self.num_docs: int = int(info["num_docs"])
            self.dim: int = int(info["dim"])
            self.params: dict[str, Any] = info["params"]
            self.metadata: dict[str, Any] = info.get("metadata", {})
            scale = info["value_scale"]
        except (KeyError, TypeError, ValueError) as e:
            raise IndexFormatError(f"{self.path / commit.MANIFEST} is malformed ({e}){hint}") from None
        if layout not in FORWARD_ARRAYS:
            raise IndexFormatError(f"{self.path / commit.MANIFEST} names an unknown forward index layout {layout!r}")
        if not isinstance(scale, (int, float)) or not scale > 0:
            raise IndexFormatError(f"{self.path / commit.MANIFEST} has no valid value_scale (got {scale!r})")
        self.arrays = {name: self.container[name] for name in (*BLOCK_ARRAYS, *FORWARD_ARRAYS[layout])}
        empty = np.zeros(0, np.uint32)
        self._args = (*(self.arrays[name] for name in BLOCK_ARRAYS),
                      *((self.arrays["fwd_packed"], empty, empty) if layout == "packed" else
                        (empty, self.arrays["fwd_comps"], self.arrays["fwd_values"])))
        self._value_scale = np.float32(scale)
        return manifest

    def _verify(self) -> None:
        self.container.verify()
        self._validate()
        self._max_blocks = max(int(np.diff(self.arrays["term_blocks"]).max(initial=0)), 1)

    def _validate(self) -> None:
        a, n, v = self.arrays, self.num_docs, self.dim
        problems = []

        def csr(offsets: str, rows: int, *columns: str) -> None:
            off = a[offsets]
            if off.shape != (rows + 1,) or off[0] != 0 or np.any(np.diff(off) < 0):
                problems.append(f"{offsets} has the wrong shape or is not ascending")
            elif any(a[c].shape != (int(off[-1]),) for c in columns):
                problems.append(f"{', '.join(columns)} do not match {offsets}")

        packed = "fwd_packed" in a
        csr("fwd_offsets", n, *(("fwd_packed",) if packed else ("fwd_comps", "fwd_values")))
        csr("term_blocks", v)
        num_blocks = int(a["term_blocks"][-1]) if a["term_blocks"].shape == (v + 1,) else -1
        csr("block_offsets", num_blocks, "block_docs")
        if a["summary_scales"].shape != (max(num_blocks, 0),):
            problems.append("summary_scales does not match term_blocks")
        csr("term_comps", v, "summary_comps")
        csr("summary_comp_offsets", a["summary_comps"].shape[0], "summary_blocks", "summary_codes")
        if not problems:
            most = int(np.diff(a["term_blocks"]).max(initial=0))
            columns = {name: a[name] for name in ("block_docs", "summary_comps", "summary_blocks")}
            columns["fwd_comps"] = a["fwd_packed"] & 0xFFFF if packed else a["fwd_comps"]
            for name, bound in (("block_docs", n), ("fwd_comps", v), ("summary_comps", v), ("summary_blocks", most)):
                if columns[name].size and (int(columns[name].min()) < 0 or int(columns[name].max()) >= bound):
                    problems.append(f"{name} holds values outside 0..{bound - 1}")
        if problems:
            raise IndexFormatError(f"Seismic index {self.path} is damaged: " + "; ".join(problems)
                                   + check_hint(self.path))

    def __len__(self) -> int:
        return self.num_docs

    def __repr__(self) -> str:
        return f"SeismicIndex({str(self.path)!r}, {self.num_docs} documents, {self.num_blocks} blocks)"

    @property
    def num_blocks(self) -> int:
        return int(self.arrays["term_blocks"][-1])

    # --- building ------------------------------------------------------------------------------

    @classmethod
    def build(cls, path: str | Path, documents: sp.spmatrix, *, n_postings: int | None = 3500,
              centroid_fraction: float = 0.1, summary_energy: float = 0.4, small_list: int = 16, seed: int = 0,
              value_bits: int = 16, metadata: dict | None = None, threads: int | None = None) -> "SeismicIndex":
        """Build from a documents x vocabulary sparse matrix of weights >= 0 (row i = docno i) into `path`
        (replacing an index there). `small_list`: posting lists of at most this many documents stay one block.
        `value_bits`: 16 stores document weights as multiples of (largest weight / 65535), rounded (at least
        one step), as pyseismic-lsr stores them as float16; 32 keeps them float32, scores exact.
        `metadata`: JSON stored in the manifest (e.g. what the rows came from)."""
        if value_bits not in (16, 32):
            raise InputError(f"value_bits must be 16 or 32, got {value_bits}")
        if n_postings is not None and n_postings < 1:
            raise InputError(f"n_postings must be at least 1 (or None: no pruning), got {n_postings}")
        if not 0 < centroid_fraction <= 1:
            raise InputError(f"centroid_fraction must be in (0, 1], got {centroid_fraction}")
        if not 0 < summary_energy <= 1:
            raise InputError(f"summary_energy must be in (0, 1], got {summary_energy}")
        m = _check_matrix(documents)
        n_docs, dim = m.shape
        value_scale = 1.0
        if value_bits == 16 and m.nnz:  # the build works on the stored (rounded) weights throughout
            value_scale = float(m.data.max()) / 65535
            m.data = (np.clip(np.rint(m.data / value_scale), 1, 65535) * value_scale).astype(np.float32)
        comp_type = np.uint16 if dim <= 1 << 16 else np.int32
        fwd_offsets = m.indptr.astype(np.int64)
        fwd_comps = m.indices.astype(comp_type)
        fwd_values = m.data.astype(np.float32)
        with numba_threads(threads):
            csc = m.tocsc()
            col_ptr = csc.indptr.astype(np.int64)
            lengths = np.diff(col_ptr)
            kept = lengths if n_postings is None else np.minimum(lengths, n_postings)
            list_ptr = np.zeros(dim + 1, np.int64)
            np.cumsum(kept, out=list_ptr[1:])
            list_docs = np.empty(list_ptr[-1], np.int32)
            K.prune_postings(col_ptr, csc.indices.astype(np.int32), csc.data.astype(np.float32),
                             np.int64(n_postings or max(int(lengths.max(initial=0)), 1)), list_ptr, list_docs)
            n_cent = np.where(kept <= small_list, 1,
                              np.clip(np.ceil(centroid_fraction * kept), 1, np.maximum(kept, 1))).astype(np.int64)
            cent_ptr = np.zeros(dim + 1, np.int64)
            np.cumsum(n_cent, out=cent_ptr[1:])
            cluster_sizes = np.zeros(cent_ptr[-1], np.int64)
            K.cluster_postings(list_ptr, list_docs, fwd_offsets, fwd_comps, fwd_values, dim, cent_ptr, cluster_sizes,
                               seed, numba.get_num_threads())
            nonempty = cluster_sizes > 0
            term_blocks = np.zeros(dim + 1, np.int64)
            np.cumsum(np.bincount(np.repeat(np.arange(dim), n_cent)[nonempty], minlength=dim), out=term_blocks[1:])
            block_offsets = np.zeros(int(nonempty.sum()) + 1, np.int64)
            np.cumsum(cluster_sizes[nonempty], out=block_offsets[1:])
            summary_offsets = np.zeros_like(block_offsets)
            empty_c, empty_v = np.zeros(0, comp_type), np.zeros(0, np.float32)
            K.summarize_blocks(block_offsets, list_docs, fwd_offsets, fwd_comps, fwd_values, dim, summary_energy,
                               summary_offsets, empty_c, empty_v, True, numba.get_num_threads())
            np.cumsum(summary_offsets, out=summary_offsets)
            entry_comps = np.empty(summary_offsets[-1], comp_type)
            entry_values = np.empty(summary_offsets[-1], np.float32)
            K.summarize_blocks(block_offsets, list_docs, fwd_offsets, fwd_comps, fwd_values, dim, summary_energy,
                               summary_offsets, entry_comps, entry_values, False, numba.get_num_threads())
            summary_scales = np.empty(len(block_offsets) - 1, np.float32)
            entry_codes = np.empty(summary_offsets[-1], np.uint8)
            K.quantize_summaries(summary_offsets, entry_values, summary_scales, entry_codes)
            del entry_values
            term_comps = np.zeros(dim + 1, np.int64)
            block_type = np.uint16 if int(np.diff(term_blocks).max(initial=0)) <= 1 << 16 else np.int32
            args = (term_blocks, summary_offsets, entry_comps, entry_codes, term_comps)
            K.invert_summaries(*args, np.zeros(0, comp_type), np.zeros(1, np.int64), np.zeros(0, block_type),
                               np.zeros(0, np.uint8), True)
            np.cumsum(term_comps, out=term_comps)
            summary_comps = np.empty(term_comps[-1], comp_type)
            summary_comp_offsets = np.empty(term_comps[-1] + 1, np.int64)
            summary_blocks = np.empty(summary_offsets[-1], block_type)
            summary_codes = np.empty(summary_offsets[-1], np.uint8)
            K.invert_summaries(*args, summary_comps, summary_comp_offsets, summary_blocks, summary_codes, False)
        layout = "packed" if value_bits == 16 and dim <= 1 << 16 else "split"
        if value_bits == 16:
            codes = np.clip(np.rint(fwd_values / value_scale), 1, 65535).astype(np.uint32)
            forward = ({"fwd_packed": fwd_comps.astype(np.uint32) | (codes << 16)} if layout == "packed" else
                       {"fwd_comps": fwd_comps, "fwd_values": codes.astype(np.uint16)})
        else:
            forward = {"fwd_comps": fwd_comps, "fwd_values": fwd_values}
        arrays = {"fwd_offsets": fwd_offsets, **forward, "term_blocks": term_blocks, "block_offsets": block_offsets, "block_docs": list_docs,
                  "summary_scales": summary_scales, "term_comps": term_comps, "summary_comps": summary_comps,
                  "summary_comp_offsets": summary_comp_offsets, "summary_blocks": summary_blocks,
                  "summary_codes": summary_codes}
        params = {"n_postings": n_postings, "centroid_fraction": centroid_fraction, "summary_energy": summary_energy,
                  "small_list": small_list, "seed": seed}
        _write(Path(path), arrays, {"num_docs": n_docs, "dim": dim, "nnz": int(m.nnz), "params": params,
                                    "forward": layout, "value_bits": value_bits, "value_scale": value_scale,
                                    "metadata": metadata or {}})
        return cls(path)

    # --- search --------------------------------------------------------------------------------

    def search(self, queries: SparseQueries, k: int = 10, params: SeismicParams | None = None) -> list[Hits]:
        """Approximate top-k (docnos int32, scores float32), best first, of each query: SparseQueries whose
        columns are this index's components (the vocabulary it was built over)."""
        params = params or SeismicParams()
        k = check_k(k)
        if params.query_cut is not None and params.query_cut < 1:
            raise InputError(f"query_cut must be at least 1 (or None: every query term), got {params.query_cut}")
        if not params.heap_factor > 0:
            raise InputError(f"heap_factor must be > 0, got {params.heap_factor}")
        if len(queries.vocabulary) != self.dim:
            raise InputError(f"queries have {len(queries.vocabulary)} columns, the index {self.dim} components")
        offsets, comps, values = queries.indptr, queries.indices, queries.data
        n_queries = len(queries)
        if self.num_docs == 0:
            return [EMPTY] * n_queries
        self.verify()
        width = max(1, min(k, self.num_docs))
        cut = np.int64(params.query_cut or max(int(np.diff(offsets).max(initial=0)), 1))
        out: list[Hits] = []
        step = max(1, _BATCH_CELLS // width)
        live = np.zeros(0, np.bool_)
        with numba_threads(params.threads):
            for c in range(0, n_queries, step):
                stop = min(c + step, n_queries)
                sub = offsets[c:stop + 1] - offsets[c]
                docs = np.empty((stop - c, width), np.int32)
                scores = np.empty((stop - c, width), np.float32)
                counts = np.zeros(stop - c, np.int64)
                K.search_batch(sub, comps[offsets[c]:offsets[stop]], values[offsets[c]:offsets[stop]], cut,
                               np.float32(params.heap_factor), self._value_scale, width, self.num_docs, self.dim,
                               self._max_blocks, *self._args, live, docs, scores, counts,
                               min(numba.get_num_threads(), stop - c))
                out.extend(Hits(docs[q, :counts[q]].copy(), scores[q, :counts[q]].copy()) for q in range(stop - c))
        return out


def _check_matrix(documents: sp.spmatrix) -> sp.csr_matrix:
    if not sp.issparse(documents):
        raise InputError(f"documents must be a scipy sparse matrix (documents x vocabulary), got "
                         f"{type(documents).__name__}")
    m = sp.csr_matrix(documents, dtype=np.float32, copy=True)
    m.sum_duplicates()
    m.eliminate_zeros()
    m.sort_indices()
    if m.nnz and not (np.all(np.isfinite(m.data)) and m.data.min() > 0):
        raise InputError("document weights must be finite and >= 0")
    return m


def _write(path: Path, arrays: dict[str, np.ndarray], info: dict) -> None:
    """Write the arrays into a new container file and publish it under the directory's writer lock (the
    previous build's file, and any a killed build left, are removed)."""
    path.mkdir(parents=True, exist_ok=True)
    with WriterLock(path):
        manifest = commit.start(path, FORMAT, FORMAT_VERSION, WHAT, info, overwrite=True)
        name = new_name("data")
        ref = write_container(path / f"{name}.rsx", arrays)
        manifest.segments = [commit.Segment(name, {"data": ref}, info["num_docs"])]
        commit.publish(path, manifest)
