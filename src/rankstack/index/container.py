"""Container files: named arrays and a little metadata in one checksummed, memory-mappable file.

Every index file rankstack writes (a segment, a tombstone bitmap, a codec, a Seismic index) is one container,
as Lucene packs a segment into a compound file and ends every file with a checksum footer:

    magic       8 bytes   b"RKSTACK" + format version (1)
    toc_length  uint32    bytes of the table of contents
    toc_crc     uint32    CRC-32 of the table of contents
    toc         JSON      {"size": file size, "meta": {...},
                           "arrays": {name: [dtype, shape, offset, nbytes, crc32]}}
    arrays      each at a 64-byte aligned offset from the first 64-byte boundary after the table of contents

Opening checks the magic, the table's checksum, the file size, that the alignment padding is zeros and every
small array's checksum; large arrays are checked by `verify()` (at an index's first search, and by `rankstack
check`), never on the query path. A container is mapped once (one file descriptor, however many arrays it
holds); files up to `READ_WHOLE` bytes are read into memory instead and hold none.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from rankstack.errors import IndexFormatError

MAGIC = b"RKSTACK\x01"
HEADER = struct.Struct("<8sII")
ALIGN = 64
SMALL = 1 << 16  # arrays up to this many bytes are checked when the file opens
READ_WHOLE = 1 << 20  # files up to this size are read into memory, not mapped
_KINDS = "biuf"  # numeric arrays only: nothing that could unpickle


@dataclass(frozen=True)
class FileRef:
    """How a manifest names a file it owns: name, size and checksum (of a container's table of contents, which
    holds its arrays' checksums; of the whole content for other files)."""

    name: str
    size: int
    crc: int

    def to_json(self) -> list:
        return [self.name, self.size, self.crc]

    @classmethod
    def from_json(cls, value: Any) -> "FileRef":
        if not (isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)
                and all(isinstance(v, int) and v >= 0 for v in value[1:])):
            raise ValueError(f"bad file entry {value!r}")
        return cls(*value)


def crc32(data: Any) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def write_container(path: Path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any] | None = None) -> FileRef:
    """Write arrays (numeric, any shape) and JSON-able `meta` into a new file, fsynced; return its FileRef."""
    entries, blobs, offset, body = {}, [], 0, 0
    for name, array in arrays.items():
        a = np.ascontiguousarray(array)
        if a.dtype.kind not in _KINDS:
            raise TypeError(f"container arrays must be numeric, {name!r} is {a.dtype}")
        data = memoryview(a).cast("B") if a.size else b""
        entries[name] = [a.dtype.str, list(a.shape), offset, a.nbytes, crc32(data)]
        blobs.append((offset, data))
        body = offset + a.nbytes  # the file ends with the last array: no unchecked bytes after it
        offset = _align(body)
    toc = {"size": 0, "meta": dict(meta or {}), "arrays": entries}
    for _ in range(2):  # the size field is part of the table: settle it (its length may change once)
        text = json.dumps(toc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        start = _align(HEADER.size + len(text))
        toc["size"] = start + body
    text = json.dumps(toc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert _align(HEADER.size + len(text)) == start
    with open(path, "xb") as f:
        f.write(HEADER.pack(MAGIC, len(text), crc32(text)))
        f.write(text)
        for rel, data in blobs:
            f.seek(start + rel)
            f.write(data)
        f.truncate(toc["size"])
        f.flush()
        os.fsync(f.fileno())
    return FileRef(path.name, toc["size"], crc32(text))


class Container(Mapping[str, np.ndarray]):
    """A container file opened read-only: its arrays by name (views of one mapping) and `meta`.

    `expect`: the FileRef a manifest holds for it; a different size or checksum is an IndexFormatError.
    `hint`: appended to error messages (e.g. how to check the whole index).
    """

    def __init__(self, path: Path, expect: FileRef | None = None, hint: str = ""):
        self.path, self._hint = path, hint
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < HEADER.size:
                    self._fail(f"it holds {size} bytes, less than a header")
                if size <= READ_WHOLE:
                    self._buffer: Any = f.read()
                else:
                    self._buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                    if hasattr(mmap, "MADV_RANDOM"):  # searches read pages at random: no readahead
                        self._buffer.madvise(mmap.MADV_RANDOM)
        except FileNotFoundError:
            raise IndexFormatError(f"{path} is missing: the index is incomplete{self._hint}") from None
        except OSError as e:
            raise IndexFormatError(f"{path} cannot be read ({e.strerror}){self._hint}") from None
        self.size = size
        magic, toc_length, toc_crc = HEADER.unpack_from(self._buffer, 0)
        if magic[:7] != MAGIC[:7]:
            self._fail("it is not a rankstack container file")
        if magic != MAGIC:
            self._fail(f"container format {magic[7]}, this rankstack reads {MAGIC[7]}: rebuild the index")
        text = bytes(self._buffer[HEADER.size:HEADER.size + toc_length])
        if len(text) != toc_length or crc32(text) != toc_crc:
            self._fail("its table of contents fails its checksum")
        try:
            toc = json.loads(text)
            self.meta: dict[str, Any] = toc["meta"]
            start = _align(HEADER.size + toc_length)
            if toc["size"] != size:
                self._fail(f"it should hold {toc['size']} bytes, it holds {size} (truncated or extended)")
            self._arrays = {name: self._array(name, start, *entry) for name, entry in toc["arrays"].items()}
            spans = sorted((start + entry[2], start + entry[2] + entry[3]) for entry in toc["arrays"].values())
        except (KeyError, TypeError, ValueError) as e:
            self._fail(f"its table of contents is malformed ({e})")
        self._check_padding(HEADER.size + toc_length, spans)
        if expect is not None and (expect.size != size or expect.crc != toc_crc):
            self._fail(f"it is not the file the manifest names (size {size}, checksum {toc_crc:08x}; the manifest "
                       f"expects {expect.size}, {expect.crc:08x})")
        self.ref = FileRef(path.name, size, toc_crc)
        mapped = isinstance(self._buffer, mmap.mmap)  # a file read whole is checked whole: it is in memory anyway
        self._unverified = {n for n, (a, _) in self._arrays.items() if mapped and a.nbytes > SMALL}
        for name in set(self._arrays) - self._unverified:
            self._check(name)

    def _array(self, name: str, start: int, dtype: str, shape: list, offset: int, nbytes: int,
               crc: int) -> tuple[np.ndarray, int]:
        dt = np.dtype(dtype)
        if dt.kind not in _KINDS or dt.hasobject:
            raise ValueError(f"array {name!r} has dtype {dtype}")
        if not all(isinstance(s, int) and s >= 0 for s in shape) or not isinstance(offset, int) or offset < 0 \
                or offset % ALIGN or int(np.prod(shape, dtype=np.int64)) * dt.itemsize != nbytes \
                or start + offset + nbytes > self.size:
            raise ValueError(f"array {name!r} does not fit the file")
        count = nbytes // dt.itemsize
        array = np.frombuffer(self._buffer, dtype=dt, count=count, offset=start + offset).reshape(shape)
        return array, crc

    def _check_padding(self, pos: int, spans: list[tuple[int, int]]) -> None:
        """The bytes between the table of contents and the arrays, and between arrays, are zeros (the writer's
        alignment): with the checksums, every byte of the file is checked."""
        for begin, end in [*spans, (self.size, self.size)]:
            if begin > pos and self._buffer[pos:begin].count(0) != begin - pos:
                self._fail(f"its padding at bytes {pos}-{begin} is not zero")
            pos = max(pos, end)

    def _check(self, name: str) -> None:
        array, crc = self._arrays[name]
        if array.size and crc32(memoryview(array).cast("B")) != crc:
            self._fail(f"array {name!r} fails its checksum")

    def _fail(self, problem: str) -> None:
        raise IndexFormatError(f"{self.path} is damaged: {problem}{self._hint}")

    def verify(self) -> None:
        """Check the checksums of the arrays not checked yet (the large ones), reading them once."""
        if not self._unverified:
            return
        if isinstance(self._buffer, mmap.mmap) and hasattr(mmap, "MADV_WILLNEED"):
            self._buffer.madvise(mmap.MADV_WILLNEED)  # read ahead while checking
        for name in sorted(self._unverified):
            self._check(name)
        self._unverified.clear()
        if isinstance(self._buffer, mmap.mmap) and hasattr(mmap, "MADV_RANDOM"):
            self._buffer.madvise(mmap.MADV_RANDOM)

    @property
    def verified(self) -> bool:
        return not self._unverified

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._arrays[name][0]
        except KeyError:
            raise IndexFormatError(f"{self.path} lacks array {name!r}{self._hint}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._arrays

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def __repr__(self) -> str:
        return f"Container({str(self.path)!r}, {len(self)} arrays, {self.size} bytes)"


def file_ref(path: Path) -> FileRef:
    """The FileRef of a plain (non-container) file: its size and the checksum of its whole content."""
    data = path.read_bytes()
    return FileRef(path.name, len(data), crc32(data))


def read_checked(path: Path, expect: FileRef, hint: str = "") -> bytes:
    """The content of a plain file the manifest names, checked against its FileRef."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise IndexFormatError(f"{path} is missing: the index is incomplete{hint}") from None
    except OSError as e:
        raise IndexFormatError(f"{path} cannot be read ({e.strerror}){hint}") from None
    if len(data) != expect.size or crc32(data) != expect.crc:
        raise IndexFormatError(f"{path} is damaged: it fails its checksum{hint}")
    return data
