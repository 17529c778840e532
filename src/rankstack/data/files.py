"""Opening text files (plain or gzip) and reading them line by line with locations for errors."""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path
from typing import Iterator

import orjson

from rankstack.errors import InputError

PathLike = str | os.PathLike


def open_text(path: PathLike, mode: str = "r"):
    """Open a UTF-8 text file, transparently (de)compressing names ending in .gz."""
    path = Path(path)
    if "r" in mode and not path.exists():
        raise InputError("file not found", path)
    if "r" in mode and path.is_dir():
        raise InputError("is a directory, expected a file", path)
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, mode.replace("t", "") + "b"), encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def numbered_lines(path: PathLike) -> Iterator[tuple[int, str]]:
    """Yield (line number, line without its newline) for each non-blank line."""
    with open_text(path) as f:
        try:
            for number, line in enumerate(f, start=1):
                line = line.rstrip("\r\n")
                if line.strip():
                    yield number, line
        except (UnicodeDecodeError, EOFError, gzip.BadGzipFile, OSError) as e:
            raise InputError(f"cannot be read as UTF-8 text ({e})", path) from None


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


def tsv_rows(path: PathLike, min_columns: int, header_startswith: str | None = None) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, columns) for tab- or whitespace-separated lines; an optional header line is skipped."""
    for number, line in numbered_lines(path):
        cols = line.split("\t") if "\t" in line else line.split()
        if number == 1 and header_startswith is not None and cols[0].strip().lower().startswith(header_startswith):
            continue
        if len(cols) < min_columns:
            raise InputError(f"expected at least {min_columns} columns, found {len(cols)}", path, number)
        yield number, cols


def require_str(obj: dict, key: str, path: PathLike, line: int, *, alternatives: tuple[str, ...] = ()) -> str:
    """Return obj[key] (or the first alternative key present) as a string, or raise an InputError."""
    for k in (key, *alternatives):
        if k in obj and obj[k] is not None:
            value = obj[k]
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return str(value)
            if isinstance(value, str):
                return value
            raise InputError(f"field {k!r} must be a string, found {type(value).__name__}", path, line)
    names = " or ".join(repr(k) for k in (key, *alternatives))
    raise InputError(f"missing field {names}", path, line)
