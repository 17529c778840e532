"""Lucene's lossy one-byte encoding of document lengths (SmallFloat.intToByte4 / byte4ToInt).

Lucene, and so Anserini, scores BM25 with document lengths rounded through this encoding; using
the same rounding reproduces their scores and rankings.
"""

from __future__ import annotations

import numpy as np


def _long_to_int4(i: int) -> int:
    num_bits = i.bit_length()
    if num_bits < 4:
        return i
    shift = num_bits - 4
    return ((i >> shift) & 0x07) | ((shift + 1) << 3)


def _int4_to_long(i: int) -> int:
    bits, shift = i & 0x07, (i >> 3) - 1
    return bits if shift == -1 else (bits | 0x08) << shift


_NUM_FREE_VALUES = 255 - _long_to_int4(2**31 - 1)
# LENGTH_TABLE[byte] = the length Lucene decodes from that byte.
LENGTH_TABLE = np.array([i if i < _NUM_FREE_VALUES else _NUM_FREE_VALUES + _int4_to_long(i - _NUM_FREE_VALUES)
                         for i in range(256)], dtype=np.int64)


def encode_lengths(lengths: np.ndarray) -> np.ndarray:
    """Lengths -> Lucene's norm bytes (as uint8)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    # The encoding is monotone, so the byte is the number of table entries <= length, minus one.
    return (np.searchsorted(LENGTH_TABLE, lengths, side="right") - 1).astype(np.uint8)


def quantise_lengths(lengths: np.ndarray) -> np.ndarray:
    """Lengths as Lucene sees them after encoding and decoding."""
    return LENGTH_TABLE[encode_lengths(lengths)]
