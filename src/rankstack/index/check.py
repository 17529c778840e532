"""Any index directory by path: its type, opening it, and checking it whole (the CheckIndex of rankstack).

    >>> open_index("indexes/scifact")              # an InvertedIndex, DenseIndex, PlaidIndex or SeismicIndex
    >>> report = check_index("indexes/scifact")    # every file's checksums, then every structure
    >>> print(report.to_text()); report.ok
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rankstack.errors import IndexFormatError, RankstackError
from rankstack.index import commit
from rankstack.index.container import Container, FileRef, read_checked

#: Index formats (the manifest's "format") and the class that opens each (module, class name).
TYPES = {"rankstack-inverted-index": ("rankstack.index.inverted", "InvertedIndex"),
         "rankstack-dense-index": ("rankstack.index.dense", "DenseIndex"),
         "rankstack-plaid": ("rankstack.index.plaid", "PlaidIndex"),
         "rankstack-seismic-index": ("rankstack.index.seismic", "SeismicIndex")}


def index_format(path: str | Path) -> str:
    """The format an index directory's manifest declares (e.g. "rankstack-dense-index"); IndexFormatError for
    a directory that holds no rankstack index."""
    path = Path(path)
    if not path.is_dir():
        raise IndexFormatError(f"{path} is not an index directory (it does not exist)")
    try:
        body = json.loads((path / commit.MANIFEST).read_bytes())
    except FileNotFoundError:
        raise IndexFormatError(f"{path} has no {commit.MANIFEST}: not a rankstack index") from None
    except (OSError, ValueError) as e:
        raise IndexFormatError(f"{path / commit.MANIFEST} cannot be read ({e}){commit.check_hint(path)}") from None
    found = body.get("format") if isinstance(body, dict) else None
    if found not in TYPES:
        raise IndexFormatError(f"{path} holds an index of unknown type {found!r} (known: {', '.join(TYPES)})")
    return found


def open_index(path: str | Path) -> Any:
    """The index at `path`, opened with the class of its type."""
    module, name = TYPES[index_format(path)]
    return getattr(importlib.import_module(module), name)(path)


@dataclass
class Report:
    """What `check_index` found: each file with its size and status, and every problem."""

    path: Path
    format: str = ""
    summary: str = ""
    files: list[tuple[str, int, str]] = field(default_factory=list)  # (name, bytes, "ok" or the problem)
    problems: list[str] = field(default_factory=list)
    nested: list["Report"] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(status == "ok" for _, _, status in self.files) and \
            all(r.ok for r in self.nested)

    def to_text(self) -> str:
        lines = [f"{self.path}: {self.format or 'unknown type'}{', ' + self.summary if self.summary else ''}"]
        width = max((len(n) for n, _, _ in self.files), default=0)
        lines += [f"  {name:<{width}}  {size:>12,} bytes  {status}" for name, size, status in self.files]
        lines += [f"  problem: {p}" for p in self.problems]
        for nested in self.nested:
            lines += ["  " + line for line in nested.to_text().splitlines()]
        return "\n".join(lines)


def check_index(path: str | Path) -> Report:
    """Check an index directory whole: its manifest, every file's checksums (all arrays, not only the small ones
    that opening checks), every structure the search kernels rely on (offsets ascending and in range, every
    posting block decoding to its recorded bounds), and the indexes nested in it (a learned-sparse index's
    Seismic index)."""
    path = Path(path).absolute()
    report = Report(path)
    try:
        report.format = index_format(path)
        module, _ = TYPES[report.format]
        versions = importlib.import_module(module)
        version = getattr(versions, "FORMAT_VERSION", None) or getattr(versions, "VERSION")
        manifest = commit.read_manifest(path, report.format, version, versions.WHAT)
    except (IndexFormatError, ImportError) as e:
        report.problems.append(str(e))
        return report
    report.summary = (f"generation {manifest.generation}, {len(manifest.segments)} segment(s), "
                      f"{manifest.num_live:,} live documents ({manifest.num_docs - manifest.num_live:,} deleted)")
    refs = list(manifest.files.values())
    for segment in manifest.segments:
        refs += list(segment.files.values()) + ([segment.deletes] if segment.deletes else [])
    for ref in refs:
        report.files.append((ref.name, ref.size, _check_file(path, ref)))
    if all(status == "ok" for _, _, status in report.files):
        try:
            open_index(path).verify()
        except RankstackError as e:
            report.problems.append(str(e))
    report.nested = [check_index(child) for child in sorted(path.iterdir())
                     if child.is_dir() and (child / commit.MANIFEST).exists()]
    return report


def _check_file(root: Path, ref: FileRef) -> str:
    try:
        if ref.name.endswith(".rsx"):
            Container(root / ref.name, ref).verify()
        else:
            read_checked(root / ref.name, ref)
    except IndexFormatError as e:
        return str(e).removeprefix(f"{root / ref.name} ")
    return "ok"
