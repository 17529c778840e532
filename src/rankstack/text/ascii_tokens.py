"""The analyzer's default tokenizer for ASCII text, compiled: what `re.findall(DEFAULT_PATTERN, text.lower())` returns
for many texts at once, as distinct tokens and one code per token.

On ASCII text Python's `\\w` is ``[A-Za-z0-9_]`` and lowercasing maps only ``A-Z``, so the kernel equals the regex
there (property test in tests/text/test_analyzer.py); other texts go through the regex.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_WORD = np.zeros(256, np.bool_)  # \w on ASCII
for _c in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_":
    _WORD[_c] = True
_LOWER = np.arange(256, dtype=np.uint8)
_LOWER[65:91] += 32
_IDENTITY = np.arange(256, dtype=np.uint8)


def ascii_tokens(texts: list[str], lowercase: bool = True) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Tokenize ASCII `texts` as the analyzer's default pattern does: (distinct tokens in order of first occurrence,
    each token's index into them (int32), tokens per text (int64))."""
    bounds = np.zeros(len(texts) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, texts), np.int64, len(texts)), out=bounds[1:])
    buf = np.frombuffer("".join(texts).encode("ascii"), np.uint8)
    spans, counts = _spans(buf, bounds, _WORD)
    codes, distinct = _codes(buf, spans, _LOWER if lowercase else _IDENTITY)
    tokens = distinct.tobytes().decode("ascii").split(" ") if len(distinct) else []
    return tokens, codes, counts


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
def _codes(buf, spans, case):
    """Each span's code (the index of its distinct mapped text, numbered in order of first occurrence) and the
    distinct texts, mapped through `case` and joined by spaces. An open-addressing table of FNV-1a hashes; texts
    with equal hashes are compared byte by byte."""
    n = len(spans)
    size = 1
    while size < 2 * n:
        size *= 2
    mask = size - 1
    table = np.full(size, -1, np.int32)  # slot -> code
    hashes = np.empty(n, np.uint64)  # code -> hash
    starts = np.empty(n + 1, np.int64)  # code -> offset of its text in `out`
    out = np.empty(max(len(buf) + n, 1), np.uint8)  # distinct texts, each followed by a space
    codes = np.empty(n, np.int32)
    distinct = 0
    used = 0
    for t in range(n):
        s, e = spans[t, 0], spans[t, 1]
        h = np.uint64(14695981039346656037)
        for i in range(s, e):
            h = (h ^ np.uint64(case[buf[i]])) * np.uint64(1099511628211)
        slot = np.int64(h & np.uint64(mask))
        while True:
            code = table[slot]
            if code < 0:
                break
            if hashes[code] == h and starts[code + 1] - 1 - starts[code] == e - s:
                o = starts[code]
                same = True
                for i in range(e - s):
                    if out[o + i] != case[buf[s + i]]:
                        same = False
                        break
                if same:
                    break
            slot = (slot + 1) & mask
        if code < 0:
            code = distinct
            distinct += 1
            table[slot] = code
            hashes[code] = h
            starts[code] = used
            for i in range(s, e):
                out[used] = case[buf[i]]
                used += 1
            out[used] = 32
            used += 1
            starts[code + 1] = used
        codes[t] = code
    return codes, out[:max(used - 1, 0)]
