"""Compact on-disk string tables: front-coded UTF-8 in blocks, memory-mapped, with lookup of a string's position.

Format: strings are cut into blocks of `block` consecutive strings. A block opens with its first string whole
(varint byte length, bytes); each later string gives the number of leading bytes it shares with the one before
and the rest (varint prefix, varint suffix length, suffix bytes). Sorted vocabularies and document ids that
share prefixes ("pkg-1", "pkg-2") shrink to a fraction, and no per-string offset is stored: a lookup decodes at
most `block` strings. Arrays (stored in a container file with the rest of a segment): ``{name}.fc`` (the bytes),
``{name}.fc_blocks`` (each block's first byte, then the end) and ``{name}.fc_meta`` (count, block size, longest
string), plus ``{name}.hashes`` and ``{name}.order`` for tables written with `lookup=True`.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numba
import numpy as np

from rankstack.errors import IndexFormatError
from rankstack.index.unsigned import U

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
BLOCK = 4  # strings per block: 4 costs a document-id lookup little; sorted vocabularies take 16


@numba.njit(cache=True, nogil=True)
def _hash_all(blob: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Stable 64-bit FNV-1a hash of each string's UTF-8 bytes (Python's own hash() is salted per process)."""
    out = np.empty(len(starts), dtype=np.uint64)
    for i in range(len(starts)):
        h = np.uint64(_FNV_OFFSET)
        for j in range(starts[i], ends[i]):
            h = (h ^ np.uint64(blob[j])) * np.uint64(_FNV_PRIME)
        out[i] = h
    return out


# ---------------------------------------------------------------------------------------------
# front coding


@numba.njit(cache=True, nogil=True, inline="always")
def _put_varint(out, o, x):
    while x >= 128:
        out[o] = (x & 127) | 128
        x >>= 7
        o += 1
    out[o] = x
    return o + 1


@numba.njit(cache=True, nogil=True, inline="always")
def _varint(blob, o):
    """(value, next position); (-1, o) when the bytes run out or o is negative (a corrupt table)."""
    if o < 0:
        return np.int64(-1), o
    x, shift = np.int64(0), 0
    while o < len(blob):
        b = np.int64(blob[U(o)])  # o >= 0 (above)
        o += 1
        x |= (b & 127) << shift
        if b < 128:
            return x, o
        shift += 7
        if shift > 56:  # longer than any length a table holds
            break
    return np.int64(-1), o


@numba.njit(cache=True, nogil=True, inline="always")
def _copy(src, s, dst, d, n):
    """dst[d:d+n] = src[s:s+n], as a loop: cheaper than slicing for the few bytes of a string."""
    for i in range(n):
        dst[U(d + i)] = src[U(s + i)]  # callers pass d, s >= 0


@numba.njit(cache=True)
def _front_code(flat, offsets, block):
    """Front-code the strings flat[offsets[i]:offsets[i+1]]: (bytes, block starts + end)."""
    n = len(offsets) - 1
    out = np.empty(len(flat) + 10 * n + 10, np.uint8)
    blocks = np.empty((n + block - 1) // block + 1, np.int64)
    o = 0
    for i in range(n):
        s, e = offsets[i], offsets[i + 1]
        pre = 0
        if i % block == 0:
            blocks[i // block] = o
        else:
            ps, pe = offsets[i - 1], offsets[i]
            while pre < min(e - s, pe - ps) and flat[s + pre] == flat[ps + pre]:
                pre += 1
            o = _put_varint(out, o, pre)
        o = _put_varint(out, o, e - s - pre)
        out[o:o + e - s - pre] = flat[s + pre:e]
        o += e - s - pre
    blocks[-1] = o
    return out[:o].copy(), blocks


@numba.njit(cache=True, nogil=True)
def _gather(blob, index, block, max_len, positions):
    """The strings at `positions`, NUL-separated, where each starts (string i is out[starts[i]:starts[i+1]-1]), and
    False for a corrupt table. Each string is decoded straight into `out`, grown when it runs out of room."""
    m = len(positions)
    first = np.int64(0)  # read every block's start and first byte first: the cache misses then overlap
    for p in positions:
        o = index[p // block]
        first += o
        if 0 <= o < len(blob):
            first += blob[o]
    out = np.empty(m * 16 + max_len + 1 + (first & 1), np.uint8)  # (uses `first`: the reads stay)
    starts = np.empty(m + 1, np.int64)
    state = np.array([0, -1, -1, 0, 0, 0], np.int64)  # _gather_run's: i, cur_b, cur_j, o, n, w
    while True:
        done = _gather_run(blob, index, block, max_len, positions, out, starts, np.empty(block, np.int64),
                           np.empty(block, np.int64), state)
        if done != 0:
            break
        grown = np.empty(2 * len(out), np.uint8)
        grown[:state[5]] = out[:state[5]]
        out = grown
    starts[m] = state[5]
    return out[:max(state[5] - 1, 0)], starts, done == 1


TAKEN, TAKEN_WITH_NUL, OUT_OF_RANGE, CORRUPT = 0, 1, 2, 3  # _take's answers


@numba.njit(cache=True, nogil=True)
def _take(blob, index, block, max_len, count, positions):
    """`_gather` of positions checked to lie in 0..count-1, in one call (the per-query path): (strings, starts,
    TAKEN, or TAKEN_WITH_NUL when a string holds a NUL byte), or OUT_OF_RANGE, or CORRUPT."""
    for p in positions:
        if p < 0 or p >= count:
            return np.empty(0, np.uint8), np.empty(0, np.int64), OUT_OF_RANGE
    strings, starts, ok = _gather(blob, index, block, max_len, positions)
    if not ok:
        return strings, starts, CORRUPT
    separators = 0
    for c in strings:
        separators += c == 0
    return strings, starts, TAKEN if separators == len(positions) - 1 else TAKEN_WITH_NUL


@numba.njit(cache=True, nogil=True, _nrt=False)
def _gather_run(blob, index, block, max_len, positions, out, starts, step_pre, step_at, state):
    """`_gather`'s decoding from string state[0] on, while `out` has room for a longest string; returns 1 when all
    are decoded, 0 when `out` is full (state holds where to go on), -1 for a corrupt table."""
    i, cur_b, cur_j, o, n, w = state[0], state[1], state[2], state[3], state[4], state[5]
    m = len(positions)
    ok = 1
    while i < m:
        if w + max_len + 1 > len(out):
            ok = 0
            break
        b = positions[i] // block
        j = positions[i] - b * block
        starts[i] = w
        if b == cur_b and j == cur_j + 1:  # the next string: the last one's prefix, then its own suffix
            pre, o = _varint(blob, o)
            suf, o = _varint(blob, o)
            if pre < 0 or suf < 0 or pre > n or pre + suf > max_len or o + suf > len(blob):
                return -1
            _copy(out, starts[i - 1], out, w, pre)
            _copy(blob, o, out, w + pre, suf)
            o += suf
            n = pre + suf
        elif b != cur_b or j != cur_j:
            # Walk the block to string j, noting where each suffix lies, then copy each byte of string j
            # once, from the last suffix that wrote it, going backwards.
            n, o = _varint(blob, index[b])
            step_pre[0], step_at[0] = 0, o
            if n < 0 or n > max_len or o + n > len(blob):
                return -1
            o += n
            for t in range(1, j + 1):
                pre, o = _varint(blob, o)
                suf, o = _varint(blob, o)
                if pre < 0 or suf < 0 or pre > n or pre + suf > max_len or o + suf > len(blob):
                    return -1
                step_pre[t], step_at[t] = pre, o
                o += suf
                n = pre + suf
            limit = n
            for t in range(j, -1, -1):
                if step_pre[t] < limit:
                    _copy(blob, step_at[t], out, w + step_pre[t], limit - step_pre[t])
                    limit = step_pre[t]
                if limit == 0:
                    break
        else:  # the same string again
            _copy(out, starts[i - 1], out, w, n)
        cur_b, cur_j = b, j
        out[w + n] = 0
        w += n + 1
        i += 1
    state[0], state[1], state[2], state[3], state[4], state[5] = i, cur_b, cur_j, o, n, w
    return ok


@numba.njit(cache=True, nogil=True)
def _compare(blob, s, e, query, qs, qe) -> int:
    """Byte-wise comparison of blob[s:e] with query[qs:qe]: negative, zero or positive."""
    n = min(e - s, qe - qs)
    for j in range(n):
        if blob[s + j] != query[qs + j]:
            return np.int64(blob[s + j]) - np.int64(query[qs + j])
    return np.int64(e - s) - np.int64(qe - qs)


@numba.njit(cache=True, nogil=True)
def _sorted_lookup(blob, index, block, count, max_len, query, query_offsets) -> np.ndarray:
    """Position of each query string in a sorted table (-1 if absent, -2 for a corrupt table): binary search over
    the blocks' first strings, then a scan of one block."""
    out = np.full(len(query_offsets) - 1, -1, dtype=np.int64)
    for q in range(len(out)):
        qs, qe = query_offsets[q], query_offsets[q + 1]
        lo, hi = 0, len(index) - 1  # the first block whose first string is greater than the query
        while lo < hi:
            mid = (lo + hi) // 2
            n, s = _varint(blob, index[mid])
            e = s + n
            if n < 0 or e > len(blob):
                out[q] = -2
                break
            if _compare(blob, s, e, query, qs, qe) <= 0:
                lo = mid + 1
            else:
                hi = mid
        if lo == 0 or out[q] == -2:
            continue
        first = (lo - 1) * block
        strings, starts, ok = _gather(blob, index, block, max_len, np.arange(first, min(first + block, count)))
        if not ok:
            out[q] = -2
            continue
        for i in range(len(starts) - 1):
            if _compare(strings, starts[i], starts[i + 1] - 1, query, qs, qe) == 0:
                out[q] = first + i
                break
    return out


@numba.njit(cache=True, nogil=True)
def _hashed_lookup(blob, index, block, max_len, sorted_hashes, order, query, query_offsets) -> np.ndarray:
    """Position of each query string (-1 if absent, -2 for a corrupt table): hash, binary search, compare."""
    hashes = _hash_all(query, query_offsets[:-1], query_offsets[1:])
    out = np.full(len(hashes), -1, dtype=np.int64)
    one = np.zeros(1, np.int64)
    for q in range(len(hashes)):
        i = np.searchsorted(sorted_hashes, hashes[q])
        qs, qe = query_offsets[q], query_offsets[q + 1]
        while i < len(sorted_hashes) and sorted_hashes[i] == hashes[q]:  # more than one on a hash collision
            one[0] = order[i]
            string, starts, ok = _gather(blob, index, block, max_len, one)
            if not ok:
                out[q] = -2
                break
            if _compare(string, 0, len(string), query, qs, qe) == 0:
                out[q] = order[i]
                break
            i += 1
    return out


def _encode(strings: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes of all strings, end to end, and their offsets."""
    strings = strings if isinstance(strings, list) else list(strings)
    joined = "".join(strings)
    if joined.isascii():  # one byte a character: one encode for all, not one per string
        offsets = np.zeros(len(strings) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, strings), np.int64, len(strings)), out=offsets[1:])
        return np.frombuffer(joined.encode("ascii"), dtype=np.uint8), offsets
    encoded = [s.encode("utf-8") for s in strings]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def string_hashes(strings: Iterable[str]) -> np.ndarray:
    """The 64-bit hash of each string that a table's lookups use (FNV-1a of its UTF-8 bytes)."""
    flat, offsets = _encode(strings)
    return _hash_all(flat, offsets[:-1], offsets[1:])


class StringTable:
    """A read-only sequence of strings, front-coded on disk (see the module docstring) and memory-mapped.

    With `lookup=True` at build time it also stores the strings' hashes in sorted order plus the
    permutation back to positions, so `position(s)` is a binary search, not a dict in memory;
    without, the first lookup computes them (in memory): right for rarely searched tables.
    A table written in sorted order (Python's string order, which is UTF-8 byte order) and opened with
    `sorted=True` needs neither: lookups binary-search the strings themselves.

        >>> StringTable.write(directory, "ids", ["d1", "d2", "d3"])
        >>> StringTable(directory, "ids").take([2, 0])
        ['d3', 'd1']
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], name: str, sorted: bool = False, where: str = ""):
        """The table `name` among `arrays` (a Container, or any mapping of name -> array); `where` names it in
        errors."""
        self.name, self.sorted = name, sorted
        self._where = where or name
        self._blob = arrays[f"{name}.fc"]
        self._index = arrays[f"{name}.fc_blocks"]
        meta = arrays[f"{name}.fc_meta"]
        if meta.shape != (3,):
            raise IndexFormatError(f"string table {self._where} is corrupt (bad metadata)")
        self._count, self._block, self._max_len = (int(x) for x in meta)
        if (self._block < 1 or self._count < 0 or self._max_len < 0 or self._index.ndim != 1
                or len(self._index) != -(-self._count // self._block) + 1 or self._index[-1] != len(self._blob)
                or (len(self._index) and self._index[0] != 0)):
            raise IndexFormatError(f"string table {self._where} is corrupt (block index does not match its data)")
        self._hashes = self._order = None
        self._order_checked = True  # stored hash orders are checked before their first use
        if f"{name}.hashes" in arrays:
            self._hashes, self._order = arrays[f"{name}.hashes"], arrays[f"{name}.order"]
            if self._hashes.shape != (self._count,) or self._order.shape != (self._count,):
                raise IndexFormatError(f"string table {self._where} is corrupt (its hash index has the wrong size)")
            self._order_checked = False

    @staticmethod
    def arrays(name: str, strings: Iterable[str], lookup: bool = False, block: int = BLOCK) -> dict[str, np.ndarray]:
        """The arrays of a table of `strings`, front-coded in blocks of `block` (1: no front coding, for long
        texts); `lookup=True` adds a sorted hash index for `position`."""
        flat, offsets = _encode(strings)
        data, blocks = _front_code(flat, offsets, block)
        if blocks[-1] < 2**31:
            blocks = blocks.astype(np.int32)
        lengths = np.diff(offsets)
        arrays = {f"{name}.fc": data, f"{name}.fc_blocks": blocks,
                  f"{name}.fc_meta": np.array([len(lengths), block, lengths.max(initial=0)], np.int64)}
        if lookup:
            hashes = _hash_all(flat, offsets[:-1], offsets[1:])
            order = np.argsort(hashes, kind="stable").astype(np.int32)
            arrays[f"{name}.hashes"] = hashes[order]
            arrays[f"{name}.order"] = order
        return arrays

    def check(self) -> None:
        """Validate what lookups index with (every string decodes, positions in range): IndexFormatError if not."""
        self._check_order()
        for start in range(0, len(self), 1 << 16):
            self._gather(np.arange(start, min(start + (1 << 16), len(self))))

    def _check_order(self) -> None:
        if self._order is not None and not self._order_checked:
            if len(self._order) and (int(self._order.min()) < 0 or int(self._order.max()) >= self._count):
                raise IndexFormatError(f"string table {self._where} is corrupt (its hash index points outside it)")
            self._order_checked = True

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, i: int) -> str:
        if not -len(self) <= i < len(self):
            raise IndexError(f"{self.name}: position {i} out of range (size {len(self)})")
        return self.take(np.array([i % len(self)]))[0]

    def _gather(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        strings, starts, ok = _gather(self._blob, self._index, self._block, self._max_len, positions)
        if not ok:
            raise self._corrupt()
        return strings, starts

    def _corrupt(self) -> IndexFormatError:
        return IndexFormatError(f"string table {self._where} is corrupt (its data ends inside a string)")

    def take(self, positions: np.ndarray) -> list[str]:
        positions = np.asarray(positions, dtype=np.int64)
        if len(positions) == 0:
            return []
        strings, starts, answer = _take(self._blob, self._index, self._block, self._max_len, self._count, positions)
        if answer == TAKEN:  # no NUL inside a string: one decode, one split
            return strings.tobytes().decode("utf-8").split("\0")
        if answer == OUT_OF_RANGE:
            raise IndexError(f"{self.name}: positions out of range (size {self._count})")
        if answer == CORRUPT:
            raise self._corrupt()
        raw = strings.tobytes()
        return [raw[s:e - 1].decode("utf-8") for s, e in zip(starts[:-1].tolist(), starts[1:].tolist())]

    def __iter__(self):
        for start in range(0, len(self), 65536):
            yield from self.take(np.arange(start, min(start + 65536, len(self))))

    def position(self, s: str) -> int:
        """Position of `s`, or -1 if absent."""
        return int(self.positions([s])[0])

    def positions(self, strings: Iterable[str]) -> np.ndarray:
        """Positions of the strings (-1 where absent), by binary search over the strings or their hashes."""
        query, offsets = _encode(strings)
        if self.sorted:
            found = _sorted_lookup(self._blob, self._index, self._block, self._count, self._max_len, query, offsets)
        else:
            self._hash_index()
            self._check_order()
            found = _hashed_lookup(self._blob, self._index, self._block, self._max_len, self._hashes, self._order,
                                   query, offsets)
        if np.any(found == -2):
            raise self._corrupt()
        return found

    def hashes(self) -> np.ndarray:
        """`string_hashes` of all the strings, in order, computed without decoding them."""
        strings, starts = self._gather(np.arange(len(self)))
        return _hash_all(strings, starts[:-1], starts[1:] - 1)

    def _hash_index(self) -> None:
        """Compute the sorted hashes and their order in memory if the table was written without them."""
        if self._hashes is None:
            strings, starts = self._gather(np.arange(len(self)))
            hashes = _hash_all(strings, starts[:-1], starts[1:] - 1)
            self._order = np.argsort(hashes, kind="stable")
            self._hashes = hashes[self._order]

    def common(self, other: "StringTable") -> np.ndarray:
        """Positions in this table of the strings that `other` also holds."""
        self._hash_index(), other._hash_index()
        candidates = np.flatnonzero(np.isin(self._hashes, other._hashes))  # hash matches, then verify
        positions = self._order[candidates]
        return np.array([p for p in positions.tolist() if other.position(self[p]) >= 0], dtype=np.int64)
