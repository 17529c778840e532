"""Opening user files (plain or gzip UTF-8 text) and reading them line by line, with every problem an InputError
naming the file (and line): missing or unreadable files, folders that do not exist, bad UTF-8, corrupt or
truncated gzip data, text that cannot be written as UTF-8."""

from __future__ import annotations

import errno
import gzip
import io
import os
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TextIO

import orjson

from rankstack.errors import InputError

PathLike = str | os.PathLike

#: What reading a damaged file raises: bad UTF-8, a truncated or corrupt gzip stream, an I/O error.
_READ_ERRORS = (UnicodeDecodeError, EOFError, gzip.BadGzipFile, zlib.error, OSError)


def open_text(path: PathLike, mode: str = "r") -> TextIO:
    """Open a UTF-8 text file for reading ("r") or writing ("w"), (de)compressing names ending in .gz.

    A byte-order mark at the start of a file read is skipped. A missing file, a missing folder to write in,
    a directory where a file is expected, or a permission problem is an InputError naming the path. Read
    through ``reading`` (or ``numbered_lines``/``read_text``) and write through ``writing`` so that problems
    met later, in the content, are InputErrors too.
    """
    path = Path(path)
    reading_mode = "r" in mode
    if reading_mode and not path.exists():
        raise InputError("file not found", path)
    if path.is_dir():
        raise InputError("is a directory, expected a file", path)
    if not reading_mode and not path.parent.is_dir():
        problem = "is not a folder" if path.parent.exists() else "does not exist"
        raise InputError(f"cannot write the file: the folder {str(path.parent)!r} {problem}", path)
    encoding = "utf-8-sig" if reading_mode else "utf-8"
    try:
        if path.suffix == ".gz":
            return io.TextIOWrapper(gzip.open(path, mode.replace("t", "") + "b"), encoding=encoding)
        return open(path, mode, encoding=encoding)
    except OSError as e:
        raise InputError(f"cannot {'read' if reading_mode else 'write'} the file ({_reason(e)})", path) from None


@contextmanager
def reading(path: PathLike) -> Iterator[TextIO]:
    """Open `path` for reading (see ``open_text``); content that is not UTF-8 text, or gzip data that is corrupt
    or truncated, raises an InputError naming the file."""
    with open_text(path) as f:
        try:
            yield f
        except _READ_ERRORS as e:
            raise InputError(f"cannot be read as UTF-8 text ({_reason(e)})", path) from None


@contextmanager
def writing(path: PathLike) -> Iterator[TextIO]:
    """Open `path` for writing (see ``open_text``); text that cannot be encoded as UTF-8 (a lone surrogate such
    as "\\ud800") or a failed write raises an InputError naming the file."""
    try:
        with open_text(path, "w") as f:
            yield f
    except UnicodeEncodeError as e:
        raise InputError(f"cannot write {e.object[max(0, e.start - 20):e.end + 20]!r} as UTF-8: it holds a lone "
                         "surrogate", path) from None
    except OSError as e:
        raise InputError(f"cannot write the file ({_reason(e)})", path) from None


def read_text(path: PathLike, limit: int = -1) -> str:
    """The text of a file (its first `limit` characters when given), with the errors of ``reading``."""
    with reading(path) as f:
        return f.read(limit)


def numbered_lines(path: PathLike) -> Iterator[tuple[int, str]]:
    """Yield (line number, line without its newline) for each non-blank line."""
    with reading(path) as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if line.strip():
                yield number, line


def json_lines(path: PathLike) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each line of a JSONL file; each line must be a JSON object."""
    for number, line in numbered_lines(path):
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            raise InputError(f"malformed JSON ({e.msg} at column {e.colno})", path, number) from None
        if not isinstance(obj, dict):
            raise InputError("expected a JSON object", path, number)
        yield number, obj


def tsv_rows(path: PathLike, min_columns: int, *, tabs: bool = False,
             is_header: Callable[[list[str]], bool] | None = None) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, columns) for tab-separated lines, or whitespace-separated lines when a line holds no
    tab (unless ``tabs=True``, where a line without a tab is an error). A first line for which `is_header`
    holds is skipped."""
    first = True
    for number, line in numbered_lines(path):
        if "\t" in line:
            cols = line.split("\t")
        elif tabs:
            raise InputError("no tab in this line; columns must be separated by tabs", path, number)
        else:
            cols = line.split()
        if first:
            first = False
            if is_header is not None and is_header(cols):
                continue
        if len(cols) < min_columns:
            raise InputError(f"expected at least {min_columns} columns, found {len(cols)}", path, number)
        yield number, cols


def header_of(first_names: set[str], second_names: set[str]) -> Callable[[list[str]], bool]:
    """A header test for ``tsv_rows``: the first two columns, stripped and lower-cased, are among the given names."""
    def is_header(cols: list[str]) -> bool:
        return len(cols) >= 2 and cols[0].strip().lower() in first_names and cols[1].strip().lower() in second_names
    return is_header


def _reason(error: BaseException) -> str:
    """An exception's message without the path that InputError shows anyway."""
    if isinstance(error, OSError) and error.strerror:
        return {errno.EACCES: "permission denied", errno.EPERM: "permission denied"}.get(error.errno, error.strerror)
    return str(error)
