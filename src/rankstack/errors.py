"""One exception hierarchy: every error rankstack raises on purpose is a RankstackError."""

from __future__ import annotations

import os


class RankstackError(Exception):
    """Base class of rankstack's own errors."""


class InputError(RankstackError, ValueError):
    """Malformed or inconsistent input, optionally located at a file and line."""

    def __init__(self, message: str, path: str | os.PathLike | None = None, line: int | None = None):
        self.path = None if path is None else os.fspath(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = self.path if line is None else f"{self.path}, line {line}"
            where += ": "
        super().__init__(where + message)


class DatasetNotFoundError(RankstackError, LookupError):
    """A named collection is unknown or not available locally and cannot be downloaded."""


class IndexFormatError(RankstackError):
    """An index directory is missing, half-written, of another format version or corrupt."""


class IncompatibleIndexError(RankstackError):
    """An index is queried or updated with settings (analyzer, model, dimension) it was not built with."""
