"""A sharded index on disk: a directory of shard indexes, each a complete rankstack index of one kind holding a
contiguous range of the corpus's documents, named by a manifest of rankstack.index.commit.

    pypi-bm25/
      manifest.json          format "rankstack-sharded-index": kind, and one entry per shard, in document order
      shard_3f9a0c12d4e5/    a BM25 index (BM25("pypi-bm25/shard_3f9a0c12d4e5") opens it alone)
      shard_0be47d9a11c2/
      parts/                 during a distributed build only: encoded parts (rankstack.distributed.build)

Shard folders have generated names: a rebuild writes new ones and the publish of its manifest removes the old ones
(and any a killed build left), as an index's commit removes its unlisted segment files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from rankstack.errors import IndexFormatError
from rankstack.index import commit
from rankstack.index.container import FileRef

FORMAT = "rankstack-sharded-index"
FORMAT_VERSION = 1
WHAT = "sharded index"
KINDS = ("bm25", "sparse", "dense")  # BM25 (inverted, bm25 mode), learned sparse (inverted, impact), dense (FAISS)


@dataclass(frozen=True)
class Shard:
    """One shard as the manifest lists it: its folder, documents and the commit of its own index."""

    name: str
    path: Path
    num_docs: int
    commit: str


class ShardedIndex:
    """A sharded index directory as committed: its kind and shards, in document order."""

    def __init__(self, path: str | Path):
        self.path = Path(path).absolute()
        self.manifest = commit.read_manifest(self.path, FORMAT, FORMAT_VERSION, WHAT)
        self.kind: str = self.manifest.settings.get("kind")
        if self.kind not in KINDS:
            raise IndexFormatError(f"{self.path / commit.MANIFEST} names an unknown kind of shards {self.kind!r}")
        self.shards = [Shard(s.name, self.path / s.name, s.num_docs, s.meta.get("commit", ""))
                       for s in self.manifest.segments]
        if not self.shards:
            raise IndexFormatError(f"{self.path} lists no shards")

    @property
    def commit_id(self) -> str:
        return self.manifest.commit

    @property
    def settings(self) -> dict[str, Any]:
        return self.manifest.settings

    def __len__(self) -> int:
        return sum(s.num_docs for s in self.shards)

    def __repr__(self) -> str:
        return f"ShardedIndex({str(self.path)!r}, {self.kind}, {len(self.shards)} shards, {len(self)} documents)"


def is_sharded(path: str | Path) -> bool:
    """Whether `path` holds a sharded index (a manifest of that format)."""
    try:
        ShardedIndex(path)
    except IndexFormatError:
        return False
    return True


def publish(path: Path, kind: str, shards: Sequence[tuple[str, int, str]], settings: dict[str, Any]) -> ShardedIndex:
    """Commit a sharded index of `shards` ((folder name, documents, commit id), in document order) at `path` (the
    caller holds its WriterLock); folders of earlier builds that it no longer lists are removed."""
    manifest = commit.Manifest(FORMAT, FORMAT_VERSION, {"kind": kind, **settings})
    try:  # continue the generations of an earlier sharded index there (not of another kind of index)
        previous = commit.read_manifest(path, FORMAT, FORMAT_VERSION, WHAT)
        manifest.generation = previous.generation
    except IndexFormatError:
        pass
    manifest.segments = [commit.Segment(name, {"index": FileRef(name, 0, 0)}, num_docs, meta={"commit": commit_id})
                         for name, num_docs, commit_id in shards]
    commit.publish(path, manifest)
    return ShardedIndex(path)
