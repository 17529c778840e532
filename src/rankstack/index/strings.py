"""Compact on-disk string tables: UTF-8 bytes + offsets, with hash-based lookup of a string's position."""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Iterable

import numba
import numpy as np

from rankstack.index.storage import load_array, save_arrays

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3


@numba.njit(cache=True, nogil=True)
def _hash_all(blob: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Stable 64-bit FNV-1a hash of each string's UTF-8 bytes (Python's own hash() is salted per process)."""
    out = np.empty(len(offsets) - 1, dtype=np.uint64)
    for i in range(len(offsets) - 1):
        h = np.uint64(_FNV_OFFSET)
        for j in range(offsets[i], offsets[i + 1]):
            h = (h ^ np.uint64(blob[j])) * np.uint64(_FNV_PRIME)
        out[i] = h
    return out


@numba.njit(cache=True, nogil=True)
def _lookup(blob, offsets, sorted_hashes, order, query, query_offsets) -> np.ndarray:
    """Position in the table of each query string (-1 if absent): hash, binary search, compare the bytes."""
    hashes = _hash_all(query, query_offsets)
    out = np.full(len(hashes), -1, dtype=np.int64)
    for q in range(len(hashes)):
        i = np.searchsorted(sorted_hashes, hashes[q])
        qs, qe = query_offsets[q], query_offsets[q + 1]
        while i < len(sorted_hashes) and sorted_hashes[i] == hashes[q]:  # more than one on a hash collision
            p = order[i]
            s, e = offsets[p], offsets[p + 1]
            if e - s == qe - qs and np.all(blob[s:e] == query[qs:qe]):
                out[q] = p
                break
            i += 1
    return out


@numba.njit(cache=True, nogil=True)
def _compare(blob, s, e, query, qs, qe) -> int:
    """Byte-wise comparison of blob[s:e] with query[qs:qe]: negative, zero or positive."""
    n = min(e - s, qe - qs)
    for j in range(n):
        if blob[s + j] != query[qs + j]:
            return np.int64(blob[s + j]) - np.int64(query[qs + j])
    return np.int64(e - s) - np.int64(qe - qs)


@numba.njit(cache=True, nogil=True)
def _sorted_lookup(blob, offsets, query, query_offsets) -> np.ndarray:
    """Position of each query string in a table sorted by bytes (-1 if absent), by binary search."""
    out = np.full(len(query_offsets) - 1, -1, dtype=np.int64)
    for q in range(len(out)):
        lo, hi = 0, len(offsets) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            c = _compare(blob, offsets[mid], offsets[mid + 1], query, query_offsets[q], query_offsets[q + 1])
            if c == 0:
                out[q] = mid
                break
            if c < 0:
                lo = mid + 1
            else:
                hi = mid
    return out


@numba.njit(cache=True, nogil=True)
def _join(blob, offsets, positions):
    """The bytes of the strings at `positions` joined by NUL bytes; None if one of them holds a NUL."""
    size = len(positions) - 1
    for p in positions:
        size += offsets[p + 1] - offsets[p]
    out = np.empty(size, np.uint8)
    o = 0
    for i, p in enumerate(positions):
        if i:
            out[o] = 0
            o += 1
        for j in range(offsets[p], offsets[p + 1]):
            if blob[j] == 0:
                return None
            out[o] = blob[j]
            o += 1
    return out


class StringTable:
    """A read-only sequence of strings stored as a UTF-8 blob and int64 offsets, memory-mapped.

    With `lookup=True` at build time it also stores the strings' hashes in sorted order plus the
    permutation back to positions, so `position(s)` is a binary search, not a dict in memory;
    without, the first lookup computes them (fast, in memory): right for rarely searched tables.
    A table written in sorted order (Python's string order, which is UTF-8 byte order) and opened with
    `sorted=True` needs neither: lookups binary-search the strings themselves.
    """

    def __init__(self, directory: Path, name: str, sorted: bool = False):
        self.name, self.sorted = name, sorted
        self._blob = load_array(directory, f"{name}.blob")
        # Slicing an mmap gives bytes far faster than slicing a NumPy array: use one for decoding.
        with open(directory / f"{name}.blob.npy", "rb") as f:
            self._raw = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self._base = self._raw.size() - len(self._blob)  # the .npy header comes before the bytes
        self._offsets = load_array(directory, f"{name}.offsets")
        self._hashes = self._order = None
        if (directory / f"{name}.hashes.npy").exists():
            self._hashes = load_array(directory, f"{name}.hashes")
            self._order = load_array(directory, f"{name}.order")

    @staticmethod
    def write(directory: Path, name: str, strings: Iterable[str], lookup: bool = False) -> int:
        """Write the strings; return how many were written."""
        encoded = [s.encode("utf-8") for s in strings]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        if offsets[-1] < 2**31:
            offsets = offsets.astype(np.int32)
        blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        arrays = {f"{name}.blob": blob, f"{name}.offsets": offsets}
        if lookup:
            hashes = _hash_all(blob, offsets)
            order = np.argsort(hashes, kind="stable").astype(np.int32)
            arrays[f"{name}.hashes"] = hashes[order]
            arrays[f"{name}.order"] = order
        save_arrays(directory, arrays)
        return len(encoded)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i: int) -> str:
        if not -len(self) <= i < len(self):
            raise IndexError(f"{self.name}: position {i} out of range (size {len(self)})")
        return self.take(np.array([i % len(self)]))[0]

    def take(self, positions: np.ndarray) -> list[str]:
        positions = np.asarray(positions, dtype=np.int64)
        if len(positions) == 0:
            return []
        if len(positions) > 8:  # one decode and one split beat a decode per string
            joined = _join(self._blob, self._offsets, positions)
            if joined is not None:
                return joined.tobytes().decode("utf-8").split("\0")
        starts = (self._offsets[positions] + self._base).tolist()
        ends = (self._offsets[positions + 1] + self._base).tolist()
        raw = self._raw
        return [raw[s:e].decode("utf-8") for s, e in zip(starts, ends)]

    def __iter__(self):
        for start in range(0, len(self), 65536):
            yield from self.take(np.arange(start, min(start + 65536, len(self))))

    def position(self, s: str) -> int:
        """Position of `s`, or -1 if absent."""
        return int(self.positions([s])[0])

    def positions(self, strings: Iterable[str]) -> np.ndarray:
        """Positions of the strings (-1 where absent), by binary search over the strings or their hashes."""
        encoded = [s.encode("utf-8") for s in strings]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        query = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        if self.sorted:
            return _sorted_lookup(self._blob, self._offsets, query, offsets)
        self._hash_index()
        return _lookup(self._blob, self._offsets, self._hashes, self._order, query, offsets)

    def _hash_index(self) -> None:
        """Compute the sorted hashes and their order in memory if the table was written without them."""
        if self._hashes is None:
            hashes = _hash_all(self._blob, self._offsets)
            self._order = np.argsort(hashes, kind="stable")
            self._hashes = hashes[self._order]

    def common(self, other: "StringTable") -> np.ndarray:
        """Positions in this table of the strings that `other` also holds."""
        self._hash_index(), other._hash_index()
        candidates = np.flatnonzero(np.isin(self._hashes, other._hashes))  # hash matches, then verify
        positions = self._order[candidates]
        return np.array([p for p in positions.tolist() if other.position(self[p]) >= 0], dtype=np.int64)
