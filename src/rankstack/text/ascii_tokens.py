"""The analyzer's default tokenizer for ASCII text, compiled, and the table that numbers a build's distinct tokens.

`TokenTable.ascii_codes` gives, for many texts at once, what `re.findall(DEFAULT_PATTERN, text.lower())` gives, as
one code per token: on ASCII text Python's `\\w` is ``[A-Za-z0-9_]`` and lowercasing maps only ``A-Z``, so the
kernel equals the regex there (property test in tests/text/test_analyzer.py); other texts go through the regex and
`TokenTable.codes`. Each distinct token is decoded and normalised once per table, not once per batch.
"""

from __future__ import annotations

import threading
from typing import Callable

import numpy as np
from numba import njit

_WORD = np.zeros(256, np.bool_)  # \w on ASCII
for _c in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_":
    _WORD[_c] = True
_LOWER = np.arange(256, dtype=np.uint8)
_LOWER[65:91] += 32
_IDENTITY = np.arange(256, dtype=np.uint8)
_SPACE = 32  # ends each token in the pool


class TokenTerms(list):
    """A token table's terms by code: a list that only grows, so a segment builder may keep what it looked up in it
    (SegmentBuilder.add_batch)."""


class TokenTable:
    """Every distinct token met, numbered from 0 in order of first occurrence, with its term (`normalise(token)`) in
    `terms`: an open-addressing hash table in arrays, grown before each compiled call so that the kernel never
    writes past them. Safe to share between threads (one lock)."""

    def __init__(self, normalise: Callable[[str], str | None]):
        self._normalise = normalise
        self.terms = TokenTerms()
        self._slots = np.full(1 << 12, -1, np.int32)  # slot -> code
        self._hashes = np.empty(1 << 11, np.uint64)  # code -> hash
        self._starts = np.zeros((1 << 11) + 1, np.int64)  # code -> where its bytes start in the pool
        self._pool = np.empty(1 << 16, np.uint8)  # each token's bytes, then a space (decoding many at once)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.terms)

    def ascii_codes(self, texts: list[str], lowercase: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Tokenize ASCII `texts` as the analyzer's default pattern does: (each token's code (int32), tokens per
        text (int64))."""
        bounds = np.zeros(len(texts) + 1, np.int64)
        np.cumsum(np.fromiter(map(len, texts), np.int64, len(texts)), out=bounds[1:])
        buf = np.frombuffer("".join(texts).encode("ascii"), np.uint8)
        spans, counts = _spans(buf, bounds, _WORD)
        return self._add(buf, spans, _LOWER if lowercase else _IDENTITY), counts

    def codes(self, tokens: list[str]) -> np.ndarray:
        """The codes of tokens given as strings."""
        encoded = [t.encode("utf-8") for t in tokens]
        lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
        ends = np.cumsum(lengths)
        spans = np.stack([ends - lengths, ends], axis=1)
        return self._add(np.frombuffer(b"".join(encoded), np.uint8), spans, _IDENTITY)

    def _add(self, buf: np.ndarray, spans: np.ndarray, case: np.ndarray) -> np.ndarray:
        with self._lock:
            first = len(self.terms)
            self._reserve(first + len(spans), len(buf) + len(spans))
            codes, size = _insert(buf, spans, case, self._slots, self._hashes, self._starts, self._pool, first)
            if size > first:
                self.terms.extend(map(self._normalise, self._tokens(first, size)))
            return codes

    def _tokens(self, first: int, end: int) -> list[str]:
        """The tokens of codes first .. end - 1."""
        starts = self._starts
        tokens = self._pool[starts[first]:starts[end] - 1].tobytes().decode("utf-8").split(" ")
        if len(tokens) != end - first:  # a token holds a space (a custom pattern's): one by one
            tokens = [self._pool[starts[c]:starts[c + 1] - 1].tobytes().decode("utf-8") for c in range(first, end)]
        return tokens

    def _reserve(self, codes: int, pool_bytes: int) -> None:
        """Room for `codes` codes in all, at most half the slots used, and `pool_bytes` more bytes in the pool."""
        if 2 * codes > len(self._slots):
            size = len(self._slots)
            while 2 * codes > size:
                size *= 2
            self._slots = _rehash(self._hashes, len(self.terms), size)
        if codes + 1 > len(self._starts):
            grown = max(codes + 1, 2 * len(self._starts))
            self._hashes = np.resize(self._hashes, grown)
            self._starts = np.resize(self._starts, grown + 1)
        used = self._starts[len(self.terms)]
        if used + pool_bytes > len(self._pool):
            self._pool = np.resize(self._pool, max(used + pool_bytes, 2 * len(self._pool)))

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _lock=threading.Lock())


@njit(cache=True, nogil=True)
def _spans(buf, bounds, word):
    """[start, end) of each token, and the tokens of each text: a run of word characters, extended while an
    apostrophe or a dot is followed by another run (``\\w+(?:['.]\\w+)*``)."""
    spans = np.empty(((len(buf) + len(bounds)) // 2, 2), np.int64)  # a text of n bytes has at most (n + 1) // 2
    counts = np.zeros(len(bounds) - 1, np.int64)
    n = 0
    for d in range(len(bounds) - 1):
        i, end = bounds[d], bounds[d + 1]
        while i < end:
            if not word[buf[i]]:
                i += 1
                continue
            j = i + 1
            while True:
                while j < end and word[buf[j]]:
                    j += 1
                if j + 1 < end and (buf[j] == 39 or buf[j] == 46) and word[buf[j + 1]]:  # ' or .
                    j += 2
                else:
                    break
            spans[n, 0] = i
            spans[n, 1] = j
            n += 1
            counts[d] += 1
            i = j
    return spans[:n], counts


@njit(cache=True, nogil=True)
def _fnv(buf, s, e, case):
    h = np.uint64(14695981039346656037)
    for i in range(s, e):
        h = (h ^ np.uint64(case[buf[i]])) * np.uint64(1099511628211)
    return h


@njit(cache=True, nogil=True)
def _insert(buf, spans, case, slots, hashes, starts, pool, size):
    """Each span's code (its bytes mapped through `case`, found in or added to the table) and the table's new size.
    The caller has made room (TokenTable._reserve); tokens with equal hashes are compared byte by byte."""
    mask = len(slots) - 1
    codes = np.empty(len(spans), np.int32)
    used = starts[size]
    for t in range(len(spans)):
        s, e = spans[t, 0], spans[t, 1]
        h = _fnv(buf, s, e, case)
        slot = np.int64(h & np.uint64(mask))
        while True:
            code = slots[slot]
            if code < 0:
                break
            if hashes[code] == h and starts[code + 1] - 1 - starts[code] == e - s:
                o = starts[code]
                same = True
                for i in range(e - s):
                    if pool[o + i] != case[buf[s + i]]:
                        same = False
                        break
                if same:
                    break
            slot = (slot + 1) & mask
        if code < 0:
            code = size
            size += 1
            slots[slot] = code
            hashes[code] = h
            for i in range(s, e):
                pool[used] = case[buf[i]]
                used += 1
            pool[used] = _SPACE
            used += 1
            starts[code + 1] = used
        codes[t] = code
    return codes, size


@njit(cache=True, nogil=True)
def _rehash(hashes, size, capacity):
    """A slot array of `capacity` (a power of 2) holding codes 0 .. size - 1 by their hashes."""
    slots = np.full(capacity, -1, np.int32)
    mask = capacity - 1
    for code in range(size):
        slot = np.int64(hashes[code] & np.uint64(mask))
        while slots[slot] >= 0:
            slot = (slot + 1) & mask
        slots[slot] = code
    return slots
