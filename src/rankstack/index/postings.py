"""Block-compressed posting lists: building (`encode_postings`) and decoding.

Format (version 2). Each term's posting list is cut into blocks of ``BLOCK`` (128) postings;
a block holds ``n`` docno gaps then ``n`` values, each bit-packed at a per-block width:

* gaps: ``doc[i] - doc[i-1] - 1``, where ``doc[-1]`` is the previous block's last docno, or,
  in a term's first block, the word that opens the block (its first docno) minus one (a short
  first block omits its first gap, always 0);
* values: ``value - 1``; they start on a new word.

A full block (128) packs each stream in 4 interleaved lanes (value ``i`` in lane ``i % 4``;
lane word ``j`` at word ``4*j + lane``, so a stream of width ``w`` takes ``4*w`` words) which
decode with 4-wide vector operations; a shorter (last) block packs values one after another,
LSB first. Width 0 takes no words (gaps 0 / values 1). ``data`` ends with 8 zero words so a
decoder may read a little past a block.

Arrays returned by `encode_postings` (all one-dimensional):

===================  ========  ===================================================================
``meta``             int64[4]  format version, mode (0 BM25, 1 impact), number of docs, block size
``term_blocks``      int32     [V+1] range of each term's blocks
``term_last_count``  uint8     [V] postings in the term's last block (df = 128*(blocks-1) + this)
``ub_terms``         int32     ascending ids of the terms of 2+ blocks: only they have upper-bound
                               points (a one-block term is bounded by its block's metadata)
``ub_offsets``       int32     [len(ub_terms)+1] range of each of those terms' points
``ub_values``        uint32    BM25: Pareto frontier of (tf, doc length) over the list (no point
``ub_lengths``       int32     has both a smaller tf and a longer doc than another); impact: (max, 0)
``block_last``       int32     [B] last docno of each block (for skipping)
``block_offsets``    uint32    [B] first word of each block in ``data``
``block_doc_bits``   uint8     [B] gap bit width
``block_val_bits``   uint8     [B] value bit width
``block_max``        uint16    [B] largest value (tf or impact) in the block; BM25 tfs saturate at
                               65535, which means "any tf" (bound: ``w``)
``block_min_len``    uint16    [B] shortest doc in the block, saturated (BM25; empty for impact)
``data``             uint32    packed gaps and values
``floor_docs``       int32     [len(ub_terms) * FLOOR_K] for each term of ``ub_terms``, its FLOOR_K
``floor_values``     uint32    postings of largest contribution (at Anserini's k1=0.9, b=0.4 and the
                               segment's mean length; by value in impact mode), ascending by docno:
                               optional (absent in segments written before them)
===================  ========  ===================================================================

The floor postings give a search for k <= FLOOR_K a safe starting threshold (Kane and Tompa, "Split-Lists and
Initial Thresholds for WAND-based Search", SIGIR 2018): k live documents score at least the k-th largest of a
term's floor contributions, whatever k1, b and avgdl the query uses (`rankstack.index.cursors.floor_threshold`).

Nothing stored depends on avgdl, k1, b or idf (which postings are floors does; what they guarantee does not):
a BM25 upper bound for weight ``w`` is ``w * tf / (tf + norm(len))`` evaluated at the frontier points (term) or at
(``block_max``, ``block_min_len``) (block), with ``norm(len) = k1 * (1 - b + b * len / avgdl)``.
Impact values must be at most 65535.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

import numpy as np
from numba import njit

from rankstack.errors import InputError
from rankstack.index.unsigned import U

FORMAT_VERSION = 2
BLOCK = 128
MODE_BM25 = 0
MODE_IMPACT = 1
MODES = {"bm25": MODE_BM25, "impact": MODE_IMPACT}
FLOOR_K = 10  # floor postings per term of 2+ blocks
ARRAY_NAMES = (
    "meta", "term_blocks", "term_last_count", "ub_terms", "ub_offsets", "ub_values", "ub_lengths", "block_last",
    "block_offsets", "block_doc_bits", "block_val_bits", "block_max", "block_min_len", "data",
)
OPTIONAL_ARRAYS = {"floor_docs": np.zeros(0, np.int32), "floor_values": np.zeros(0, np.uint32)}  # when absent


class PostingArrays(NamedTuple):
    """A segment's posting arrays as the query kernels take them (all but ``meta``; see the module docstring)."""

    term_blocks: np.ndarray
    term_last_count: np.ndarray
    ub_terms: np.ndarray
    ub_offsets: np.ndarray
    ub_values: np.ndarray
    ub_lengths: np.ndarray
    block_last: np.ndarray
    block_offsets: np.ndarray
    block_doc_bits: np.ndarray
    block_val_bits: np.ndarray
    block_max: np.ndarray
    block_min_len: np.ndarray
    data: np.ndarray
    floor_docs: np.ndarray
    floor_values: np.ndarray

    @classmethod
    def of(cls, arrays: Mapping[str, np.ndarray]) -> "PostingArrays":
        """The kernels' view of `encode_postings`' arrays (or of their memory-mapped copies)."""
        arrays = {**OPTIONAL_ARRAYS, **arrays}
        return cls(*(np.asarray(arrays[name]) for name in cls._fields))


# ---------------------------------------------------------------------------------------------
# decoding primitives (also used by the query kernels)


@njit(cache=True, nogil=True, _nrt=False)
def _unpack(data, off, n, w, out, row, start) -> None:
    """Unpack ``n`` raw ``w``-bit values (w >= 1) from word ``off`` into ``out[row, start:]``."""
    mask = (np.int64(1) << w) - 1
    if n == BLOCK:  # 4 lanes: the inner loop maps onto vector instructions
        for j in range(BLOCK // 4):
            bit = j * w
            base = off + ((bit >> 5) << 2)
            sh = bit & 31
            for lane in range(4):
                x = np.int64(data[U(base + lane)]) | (np.int64(data[U(base + 4 + lane)]) << 32)
                out[U(row), 4 * j + lane] = (x >> sh) & mask
    else:
        bit = np.int64(0)
        for i in range(n):
            word = off + (bit >> 5)
            x = np.int64(data[U(word)]) | (np.int64(data[U(word + 1)]) << 32)
            out[U(row), U(start + i)] = (x >> (bit & 31)) & mask
            bit += w


@njit(cache=True, nogil=True, inline="always")
def _stream_words(n, w):
    return 4 * w if n == BLOCK else (n * w + 31) >> 5


@njit(cache=True, nogil=True, inline="always")
def _gap_words(n, first, w):
    return _stream_words(n - 1 if first and n < BLOCK else n, w)


@njit(cache=True, nogil=True, _nrt=False)
def decode_block_docs(block_offsets, block_doc_bits, block_last, data, b, first, n, out, row) -> None:
    """Write the ``n`` docnos of block ``b`` into ``out[row, :n]``; ``first``: b is its term's
    first block. (A 2-d buffer and a row index, not a row view: no refcounting in hot loops.)"""
    off = np.int64(block_offsets[b])
    if first:
        base = np.int64(data[off]) - 1
        off += 1
    else:
        base = np.int64(block_last[b - 1])
    w = np.int64(block_doc_bits[b])
    if w == 0:
        for i in range(n):
            out[row, i] = base + 1 + i
        return
    if first and n < BLOCK:
        out[row, 0] = 0
        _unpack(data, off, n - 1, w, out, row, 1)
    else:
        _unpack(data, off, n, w, out, row, 0)
    doc = base
    for i in range(n):
        doc += np.int64(out[U(row), i]) + 1
        out[U(row), i] = doc


@njit(cache=True, nogil=True, _nrt=False)
def decode_block_values(block_offsets, block_doc_bits, block_val_bits, data, b, first, n, out, row) -> None:
    """Write the ``n`` values of block ``b`` into ``out[row, :n]``."""
    off = np.int64(block_offsets[b]) + (1 if first else 0) + _gap_words(n, first, np.int64(block_doc_bits[b]))
    w = np.int64(block_val_bits[b])
    if w == 0:
        for i in range(n):
            out[row, i] = 1
        return
    _unpack(data, off, n, w, out, row, 0)
    for i in range(n):
        out[U(row), i] += 1


@njit(cache=True, nogil=True)
def _decode_terms(term_blocks, term_last_count, block_offsets, block_doc_bits, block_val_bits, block_last, data,
                  terms, offsets, docs, vals) -> None:
    """Decode the posting list of ``terms[i]`` into ``docs``/``vals[offsets[i]:offsets[i + 1]]``."""
    bd = np.empty((1, BLOCK), np.int32)
    bv = np.empty((1, BLOCK), np.uint32)
    for i in range(terms.shape[0]):
        first, end = np.int64(term_blocks[terms[i]]), np.int64(term_blocks[terms[i] + 1])
        start, df = offsets[i], offsets[i + 1] - offsets[i]
        for b in range(first, end):
            s = start + (b - first) * BLOCK
            n = min(BLOCK, start + df - s)
            decode_block_docs(block_offsets, block_doc_bits, block_last, data, b, b == first, n, bd, 0)
            decode_block_values(block_offsets, block_doc_bits, block_val_bits, data, b, b == first, n, bv, 0)
            docs[s:s + n] = bd[0, :n]
            vals[s:s + n] = bv[0, :n]


def decode_terms(arrays: dict[str, np.ndarray], terms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode the posting lists of `terms` (term ids) in one pass: CSR arrays (offsets int64[len(terms) + 1],
    docnos int32, values uint32), list i at offsets[i]:offsets[i + 1]."""
    terms = np.ascontiguousarray(terms, dtype=np.int64)
    offsets = np.zeros(len(terms) + 1, dtype=np.int64)
    np.cumsum(term_df(arrays, terms), out=offsets[1:])
    docs, vals = np.empty(offsets[-1], np.int32), np.empty(offsets[-1], np.uint32)
    a = arrays
    _decode_terms(a["term_blocks"], a["term_last_count"], a["block_offsets"], a["block_doc_bits"],
                  a["block_val_bits"], a["block_last"], a["data"], terms, offsets, docs, vals)
    return offsets, docs, vals


def decode_term(arrays: dict[str, np.ndarray], term_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode one term's posting list: (docnos int32, values uint32)."""
    _, docs, vals = decode_terms(arrays, np.array([term_id]))
    return docs, vals


# ---------------------------------------------------------------------------------------------
# encoding


@njit(cache=True, inline="always")
def _bits(x: int) -> int:
    """Bit length of a non-negative int64."""
    n = 0
    while x > 0:
        n += 1
        x >>= 1
    return n


@njit(cache=True)
def _pack(data, off: int, vals, w: int) -> int:
    """OR ``vals`` (int64, < 2**w) into ``data`` from word ``off`` in the layout `_unpack`
    reads (4 lanes for a full block); return the next free word."""
    if w == 0:
        return off
    n = vals.shape[0]
    for i in range(n):
        v = vals[i]
        if n == BLOCK:
            bit = (i >> 2) * w
            word, step = off + ((bit >> 5) << 2) + (i & 3), 4
        else:
            bit = i * w
            word, step = off + (bit >> 5), 1
        sh = bit & 31
        data[word] |= np.uint32((v << sh) & 0xFFFFFFFF)
        if sh + w > 32:
            data[word + step] |= np.uint32(v >> (32 - sh))
    return off + _stream_words(n, w)


@njit(cache=True)
def _encode(term_offsets, docnos, values, lengths, bm25: bool):
    V = term_offsets.shape[0] - 1
    term_blocks = np.zeros(V + 1, np.int64)
    for t in range(V):
        df = term_offsets[t + 1] - term_offsets[t]
        term_blocks[t + 1] = term_blocks[t] + (df + BLOCK - 1) // BLOCK
    B = term_blocks[V]
    block_last = np.empty(B, np.int32)
    block_words = np.empty(B, np.int64)
    dbits = np.empty(B, np.uint8)
    vbits = np.empty(B, np.uint8)
    bmax = np.empty(B, np.uint16)
    bminlen = np.empty(B if bm25 else 0, np.uint16)
    gaps = np.empty(BLOCK, np.int64)
    # pass 1: widths, sizes and block maxima
    for t in range(V):
        p0, p1 = term_offsets[t], term_offsets[t + 1]
        for b in range(term_blocks[t], term_blocks[t + 1]):
            s = p0 + (b - term_blocks[t]) * BLOCK
            e = min(s + BLOCK, p1)
            first = b == term_blocks[t]
            prev = np.int64(docnos[s]) - 1 if first else np.int64(docnos[s - 1])
            gmax, vmax, minlen = 0, 0, 2**31 - 1
            for p in range(s, e):
                gmax = max(gmax, np.int64(docnos[p]) - prev - 1)
                prev = docnos[p]
            for p in range(s, e):
                vmax = max(vmax, np.int64(values[p]))
                if bm25:
                    minlen = min(minlen, np.int64(lengths[docnos[p]]))
            block_last[b] = docnos[e - 1]
            dbits[b] = _bits(gmax)
            vbits[b] = _bits(vmax - 1)
            bmax[b] = min(vmax, 65535)
            if bm25:
                bminlen[b] = min(minlen, 65535)
            block_words[b] = (1 if first else 0) + _gap_words(e - s, first, np.int64(dbits[b])) + \
                _stream_words(e - s, np.int64(vbits[b]))
    block_offsets = np.empty(B, np.int64)
    total = 0
    for b in range(B):
        block_offsets[b] = total
        total += block_words[b]
    data = np.zeros(total + 8, np.uint32)
    # pass 2: pack
    for t in range(V):
        p0, p1 = term_offsets[t], term_offsets[t + 1]
        for b in range(term_blocks[t], term_blocks[t + 1]):
            s = p0 + (b - term_blocks[t]) * BLOCK
            e = min(s + BLOCK, p1)
            off = block_offsets[b]
            first = b == term_blocks[t]
            if first:
                data[off] = docnos[s]
                off += 1
                prev = np.int64(docnos[s]) - 1
            else:
                prev = np.int64(docnos[s - 1])
            for p in range(s, e):
                gaps[p - s] = np.int64(docnos[p]) - prev - 1
                prev = docnos[p]
            g0 = 1 if first and e - s < BLOCK else 0  # a short first block omits its first gap
            off = _pack(data, off, gaps[g0:e - s], np.int64(dbits[b]))
            for p in range(s, e):
                gaps[p - s] = np.int64(values[p]) - 1
            _pack(data, off, gaps[:e - s], np.int64(vbits[b]))
    # per-term upper-bound points
    ub_off = np.zeros(V + 1, np.int64)
    ub_val = np.empty(docnos.shape[0], np.uint32)
    ub_len = np.empty(docnos.shape[0], np.int32)
    nf = 0
    for t in range(V):
        p0, p1 = term_offsets[t], term_offsets[t + 1]
        if p1 - p0 <= BLOCK:
            pass  # bounded by its only block
        elif not bm25:
            vmax = 0
            for p in range(p0, p1):
                vmax = max(vmax, np.int64(values[p]))
            ub_val[nf] = vmax
            ub_len[nf] = 0
            nf += 1
        else:
            # Pareto frontier: sort by (tf desc, len asc), keep points shorter than all before
            key = np.empty(p1 - p0, np.int64)
            for p in range(p0, p1):
                key[p - p0] = ((np.int64(0xFFFFFFFF) - np.int64(values[p])) << 31) | np.int64(lengths[docnos[p]])
            best = np.int64(2**31)
            for j in np.argsort(key):
                ln = np.int64(lengths[docnos[p0 + j]])
                if ln < best:
                    best = ln
                    ub_val[nf] = values[p0 + j]
                    ub_len[nf] = ln
                    nf += 1
        ub_off[t + 1] = nf
    return (term_blocks, block_last, block_offsets, dbits, vbits, bmax, bminlen, data,
            ub_off, ub_val[:nf].copy(), ub_len[:nf].copy())


@njit(cache=True)
def _floors(term_offsets, docnos, values, lengths, bm25, ub_terms, block_max, block_min_len, term_blocks, avgdl):
    """Each ub term's FLOOR_K postings of largest contribution at k1=0.9, b=0.4 (BM25; any choice is safe, this
    one is tight for Anserini's defaults) or of largest value (impact), as (docnos, values), ascending by docno
    within a term. A block whose bound cannot beat the FLOOR_K-th best so far is not read."""
    na, nb = 0.9 * 0.6, 0.9 * 0.4 / avgdl
    floor_docs = np.empty(ub_terms.shape[0] * FLOOR_K, np.int32)
    floor_values = np.empty(ub_terms.shape[0] * FLOOR_K, np.uint32)
    best = np.empty(FLOOR_K, np.float64)
    at = np.empty(FLOOR_K, np.int64)
    for j in range(ub_terms.shape[0]):
        t = ub_terms[j]
        p0, p1 = term_offsets[t], term_offsets[t + 1]
        best[:] = -1.0
        worst = 0  # the slot of the smallest of the best
        for b in range(term_blocks[t], term_blocks[t + 1]):
            v = np.float64(block_max[b])
            if (v / (v + na + nb * np.float64(block_min_len[b])) if bm25 else v) <= best[worst] and v < 65535:
                continue
            s = p0 + (b - term_blocks[t]) * BLOCK
            for p in range(s, min(s + BLOCK, p1)):
                v = np.float64(values[p])
                score = v / (v + na + nb * np.float64(lengths[docnos[p]])) if bm25 else v
                if score > best[worst]:
                    best[worst], at[worst] = score, p
                    for i in range(FLOOR_K):
                        if best[i] < best[worst]:
                            worst = i
        at.sort()  # by position: by docno
        for i in range(FLOOR_K):
            floor_docs[j * FLOOR_K + i] = docnos[at[i]]
            floor_values[j * FLOOR_K + i] = values[at[i]]
    return floor_docs, floor_values


def encode_postings(term_offsets: np.ndarray, docnos: np.ndarray, values: np.ndarray,
                    doc_lengths: np.ndarray | None, mode: str) -> dict[str, np.ndarray]:
    """Compress CSR posting lists into the block format described in the module docstring.

    ``term_offsets`` int64[V+1], ``docnos`` int32[P] ascending within each term, ``values``
    uint32[P] >= 1 (tf in ``mode="bm25"``, quantised impact in ``mode="impact"``),
    ``doc_lengths`` int32[N] (required in BM25 mode; gives N in both modes when given).
    """
    if mode not in MODES:
        raise InputError(f"unknown postings mode {mode!r} (expected 'bm25' or 'impact')")
    bm25 = mode == "bm25"
    offs = np.ascontiguousarray(term_offsets, dtype=np.int64)
    docs = np.ascontiguousarray(docnos, dtype=np.int32)
    vals = np.ascontiguousarray(values, dtype=np.uint32)
    P = docs.shape[0]
    if offs.ndim != 1 or offs.shape[0] < 1 or offs[0] != 0 or offs[-1] != P or np.any(np.diff(offs) < 0):
        raise InputError("term_offsets must be non-decreasing, start at 0 and end at len(docnos)")
    if vals.shape[0] != P:
        raise InputError("docnos and values differ in length")
    if P and vals.min() < 1:
        raise InputError("posting values must be >= 1")
    if P and not bm25 and vals.max() > 65535:
        raise InputError("impact values must be <= 65535")
    if P and (docs.min() < 0 or docs.max() >= 2**31 - 1):
        raise InputError("docnos must be >= 0 and < 2**31 - 1")
    step = np.diff(docs.astype(np.int64))
    starts = np.zeros(P, bool)
    starts[offs[:-1][offs[:-1] < P]] = True
    if np.any((step <= 0) & ~starts[1:]):
        raise InputError("docnos must be strictly ascending within each posting list")
    if doc_lengths is not None:
        lengths = np.ascontiguousarray(doc_lengths, dtype=np.int32)
        n_docs = lengths.shape[0]
        if P and docs.max() >= n_docs:
            raise InputError("a docno is not below len(doc_lengths)")
        if n_docs and lengths.min() < 0:
            raise InputError("doc_lengths must be >= 0")
    elif bm25:
        raise InputError("BM25 postings need doc_lengths")
    else:
        lengths = np.zeros(0, np.int32)
        n_docs = int(docs.max()) + 1 if P else 0
    (term_blocks, block_last, block_offsets, dbits, vbits, bmax, bminlen, data,
     ub_off, ub_val, ub_len) = _encode(offs, docs, vals, lengths, bm25)
    if data.shape[0] > 2**32 or term_blocks[-1] >= 2**31 or ub_off[-1] >= 2**31:
        raise InputError("segment too large for postings format 1 (split it into more segments)")
    ub = _sparse_ub_offsets(ub_off)
    avgdl = float(lengths.mean()) if bm25 and n_docs and lengths.any() else 1.0
    floor_docs, floor_values = _floors(offs, docs, vals, lengths, bm25, ub["ub_terms"], bmax, bminlen, term_blocks,
                                       avgdl)
    return {
        "meta": np.array([FORMAT_VERSION, MODES[mode], n_docs, BLOCK], np.int64),
        "term_blocks": term_blocks.astype(np.int32),
        "term_last_count": np.where(np.diff(offs) > 0, (np.diff(offs) - 1) % BLOCK + 1, 0).astype(np.uint8),
        **ub,
        "ub_values": ub_val,
        "ub_lengths": ub_len,
        "block_last": block_last,
        "block_offsets": block_offsets.astype(np.uint32),
        "block_doc_bits": dbits,
        "block_val_bits": vbits,
        "block_max": bmax,
        "block_min_len": bminlen,
        "data": data,
        "floor_docs": floor_docs,
        "floor_values": floor_values,
    }


def _sparse_ub_offsets(term_ub_offsets: np.ndarray) -> dict[str, np.ndarray]:
    """The per-term ranges of upper-bound points [V+1], kept only for the terms that have points."""
    has = np.flatnonzero(np.diff(term_ub_offsets) > 0)
    return {"ub_terms": has.astype(np.int32),
            "ub_offsets": np.append(term_ub_offsets[has], term_ub_offsets[-1]).astype(np.int32)}


DTYPES = {"meta": np.int64, "term_blocks": np.int32, "term_last_count": np.uint8, "ub_terms": np.int32,
          "ub_offsets": np.int32, "ub_values": np.uint32, "ub_lengths": np.int32, "block_last": np.int32,
          "block_offsets": np.uint32, "block_doc_bits": np.uint8, "block_val_bits": np.uint8, "block_max": np.uint16,
          "block_min_len": np.uint16, "data": np.uint32, "floor_docs": np.int32, "floor_values": np.uint32}
_PROBLEMS = {
    0: "an array has the wrong type or shape",
    1: "meta does not match the segment (version, mode, document count or block size)",
    2: "an array has the wrong size",
    3: "term_blocks is not ascending from 0 to the number of blocks",
    4: "term_last_count is not between 1 and 128 for a term with postings",
    5: "ub_terms / ub_offsets are out of order or out of range",
    6: "a block's bit widths exceed 32",
    7: "a block's data lies outside the data array",
    8: "block_last is not ascending within a term, leaves no room for the block's postings, or exceeds the documents",
    9: "a block's decoded document numbers do not end at its block_last (damaged gaps)",
    10: "a block holds a value above its block_max",
    11: "a document length is negative",
    12: "a term's floor postings are not postings of its list, in docno order",
}


def check(arrays: dict[str, np.ndarray], n_docs: int, mode: int, lengths: np.ndarray | None = None) -> str | None:
    """What is wrong with a segment's posting arrays, as the query kernels would meet it (None: nothing). Checks
    every invariant the kernels rely on to stay inside their arrays, decoding every block once: O(postings)."""
    a = {**OPTIONAL_ARRAYS, **arrays}
    if any(a[name].dtype != dtype or a[name].ndim != 1 for name, dtype in DTYPES.items()):
        return _PROBLEMS[0]
    meta = np.asarray(a["meta"])
    if meta.shape != (4,) or int(meta[0]) != FORMAT_VERSION or int(meta[1]) != mode or int(meta[2]) != n_docs \
            or int(meta[3]) != BLOCK:
        return _PROBLEMS[1]
    V, B = len(a["term_blocks"]) - 1, len(a["block_last"])
    sizes = {"term_last_count": V, "block_offsets": B, "block_doc_bits": B, "block_val_bits": B, "block_max": B,
             "block_min_len": B if mode == MODE_BM25 else 0, "ub_offsets": len(a["ub_terms"]) + 1,
             "ub_lengths": len(a["ub_values"]), "floor_values": len(a["floor_docs"])}
    if V < 0 or any(a[name].ndim != 1 or len(a[name]) != size for name, size in sizes.items()) \
            or len(a["data"]) < 8 or len(a["floor_docs"]) not in (0, len(a["ub_terms"]) * FLOOR_K):
        return _PROBLEMS[2]
    if lengths is not None and len(lengths) and lengths.dtype != np.uint8 and int(lengths.min()) < 0:
        return _PROBLEMS[11]
    code = _check(a["term_blocks"], a["term_last_count"], a["ub_terms"], a["ub_offsets"], a["ub_values"],
                  a["block_last"], a["block_offsets"], a["block_doc_bits"], a["block_val_bits"], a["block_max"],
                  a["data"], a["floor_docs"], a["floor_values"], n_docs)
    return _PROBLEMS[code] if code else None


@njit(cache=True, nogil=True)
def _check(term_blocks, term_last, ub_terms, ub_offsets, ub_values, block_last, block_offsets, dbits, vbits, bmax,
           data, floor_docs, floor_values, n_docs) -> int:
    V, B = term_blocks.shape[0] - 1, block_last.shape[0]
    if term_blocks[0] != 0 or term_blocks[V] != B:
        return 3
    for t in range(V):
        if term_blocks[t + 1] < term_blocks[t]:
            return 3
        if term_blocks[t + 1] > term_blocks[t] and not 1 <= term_last[t] <= BLOCK:
            return 4
    if ub_offsets[0] != 0 or ub_offsets[-1] != ub_values.shape[0]:
        return 5
    for j in range(ub_terms.shape[0]):
        if ub_offsets[j + 1] < ub_offsets[j] or ub_terms[j] < 0 or ub_terms[j] >= V or \
                (j and ub_terms[j] <= ub_terms[j - 1]):
            return 5
    words = np.int64(data.shape[0]) - 8  # the decoders may read up to 8 words past a block
    docs = np.empty((1, BLOCK), np.int32)
    vals = np.empty((1, BLOCK), np.uint32)
    j = 0  # the next ub term
    for t in range(V):
        first, end = np.int64(term_blocks[t]), np.int64(term_blocks[t + 1])
        prev = np.int64(-1)
        fp = fe = 0  # the term's floor postings not yet met in its list
        if j < ub_terms.shape[0] and ub_terms[j] == t:
            if floor_docs.shape[0]:
                fp, fe = j * FLOOR_K, (j + 1) * FLOOR_K
            j += 1
        for b in range(first, end):
            n = BLOCK if b + 1 < end else np.int64(term_last[t])
            db, vb = np.int64(dbits[b]), np.int64(vbits[b])
            if db > 32 or vb > 32:
                return 6
            is_first = b == first
            need = (1 if is_first else 0) + _gap_words(n, is_first, db) + _stream_words(n, vb)
            off = np.int64(block_offsets[b])
            if off + need > words:
                return 7
            last = np.int64(block_last[b])
            if last - prev < n or last >= n_docs:
                return 8
            if is_first and not 0 <= np.int64(data[off]) <= last:
                return 9
            decode_block_docs(block_offsets, dbits, block_last, data, b, is_first, n, docs, 0)
            below = prev
            for i in range(n):  # strictly ascending, after the previous block, ending at block_last
                if np.int64(docs[0, i]) <= below:
                    return 9
                below = np.int64(docs[0, i])
            if below != last:
                return 9
            decode_block_values(block_offsets, dbits, vbits, data, b, is_first, n, vals, 0)
            for i in range(n):
                if vals[0, i] > bmax[b] and bmax[b] < 65535:
                    return 10
                if fp < fe and floor_docs[fp] == docs[0, i]:
                    if floor_values[fp] != vals[0, i]:
                        return 12
                    fp += 1
            prev = last
        if fp < fe:
            return 12
    return 0


def term_df(arrays: dict[str, np.ndarray], terms: np.ndarray | None = None) -> np.ndarray:
    """Number of postings of every term (int64[V]), or of `terms` (term ids) only."""
    term_blocks, last_count = np.asarray(arrays["term_blocks"]), np.asarray(arrays["term_last_count"])
    if terms is None:
        nb, last = np.diff(term_blocks.astype(np.int64)), last_count
    else:
        nb, last = term_blocks[terms + 1].astype(np.int64) - term_blocks[terms], last_count[terms]
    return np.where(nb > 0, (nb - 1) * BLOCK + last, 0)


def postings_nbytes(arrays: dict[str, np.ndarray]) -> int:
    """Total bytes of all arrays of an encoded segment."""
    return int(sum(np.asarray(array).nbytes for name, array in arrays.items()
                   if name in ARRAY_NAMES or name in OPTIONAL_ARRAYS))
