"""Distributed builds: a corpus encoded (or analysed) by a pool of Ray actors, written as N shard indexes.

    from rankstack import distributed
    distributed.init(num_cpus=2)                                   # or address="auto" on a cluster
    distributed.build("corpus.jsonl.gz", "idx/bm25", "bm25", shards=4)
    distributed.build("corpus.jsonl.gz", "idx/splade", "sparse", SpladeEncoder("naver/splade-v3"), shards=4,
                      gpus_per_worker=1)

1. Ray Data streams the corpus in numbered parts (rankstack.distributed.parts) to an actor pool of `workers`
   (rankstack.distributed.workers), each on `cpus_per_worker` CPUs and `gpus_per_worker` GPUs; every part becomes
   one file in `<path>/parts/` (a BM25 segment, or the part's encodings), then a record marking it done. The
   driver only receives the records. A task that fails is retried by Ray (its actor restarted); a part is written
   under its number, so a retry never duplicates it, and the records say which parts exist, so a build whose
   driver died resumes: run it again and only the missing parts are encoded.
2. The parts are cut into `shards` contiguous ranges, and each shard index is written by one Ray task through the
   index's own writer and commit: a BM25 shard adopts its parts' segments (`IndexWriter.adopt`), a learned-sparse
   or dense shard is `LearnedSparse.build` / `Dense.build` over its documents with the parts as its encoded shards
   (so the impact scale is the whole corpus's, as one index would have it). A shard writer that dies leaves its
   shard uncommitted; the task is retried.
3. Ids are checked unique across shards, then the sharded index's manifest is published (rankstack.distributed.
   layout), which removes shard folders no build lists any more; then the parts folder (unless `keep_parts`).

The index directory (and the corpus file) must be reachable at the same path from every node: a shared file system
on a cluster, any folder on one machine. `shards=1` writes one shard: an index that `BM25(...)` etc. also open.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from rankstack.progress import progress_bar

from rankstack.data.corpus import Corpus
from rankstack.distributed import layout
from rankstack.distributed.cluster import ensure, ray_module
from rankstack.distributed.parts import END, corpus_parts
from rankstack.distributed.workers import ENCODED, SEGMENT, PartWriter, clean, load_encoder, part_done
from rankstack.errors import InputError, RankstackError
from rankstack.index.commit import MANIFEST, WriterLock, new_name, refuse_existing, write_atomic

PARTS = "parts"           # the build's folder of parts, inside the index directory
BUILD_RECORD = "build.json"
PART_SIZE = {"bm25": 100_000, "sparse": 10_000, "dense": 10_000}  # documents (texts) per part
SPARSE_ENCODERS = ("splade", "inference-free-sparse")  # the encoder kinds a learned-sparse index takes


def build(corpus: str | os.PathLike | Corpus, path: str | os.PathLike, kind: str, encoder: Any = None, *,
          shards: int = 1, part_size: int | None = None, workers: int | None = None, cpus_per_worker: float = 1,
          gpus_per_worker: float = 0, index_options: dict[str, Any] | None = None, overwrite: bool = False,
          parts: str | os.PathLike | None = None, keep_parts: bool = False,
          progress: bool | None = None) -> layout.ShardedIndex:
    """Build a sharded index of `kind` ("bm25", "sparse" or "dense") from a corpus file on the Ray cluster (see
    the module docstring). `encoder`: a SpladeEncoder / InferenceFreeSparseEncoder ("sparse") or a DenseEncoder
    or model path ("dense"); the workers load it from its record. `part_size`: documents (learned sparse: texts)
    per part, default 100,000 for BM25 and 10,000 for encoders. `workers`: actors (default: the cluster's CPUs
    over `cpus_per_worker`). `index_options` go to each shard's build: BM25 `analyzer`, `k1`, `b`, `length_norm`,
    `store`; learned sparse `impact_bits`, `store`; dense `factory`, `metric`, `store_vectors`. `parts`: the
    folder of parts (default `<path>/parts`); builds of the same corpus, kind, part size and encoder share it, so
    another number of shards costs no encoding; it is removed at the end unless `keep_parts`."""
    if kind not in layout.KINDS:
        raise InputError(f"unknown kind of index {kind!r} (expected one of {', '.join(layout.KINDS)})")
    for name, value in (("shards", shards), ("part_size", part_size or 1), ("workers", workers or 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    corpus = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
    corpus_path = Path(corpus.path).absolute()
    corpus = Corpus(corpus_path, corpus.format, corpus.name)
    if not corpus_path.is_file():
        raise InputError("the corpus file does not exist", corpus_path)
    path = Path(path).absolute()
    options = dict(index_options or {})
    ray = ensure()
    part_size = part_size or PART_SIZE[kind]
    record, worker_options = _describe(kind, corpus_path, part_size, encoder, options, gpus_per_worker,
                                       cpus_per_worker)
    lock = WriterLock(path)
    lock.acquire()
    try:
        folder = Path(parts).absolute() if parts is not None else path / PARTS
        if (path / MANIFEST).exists() and not overwrite and not (path / PARTS).exists():
            refuse_existing(path, overwrite, "distributed.build")
        folder = _parts_folder(folder, record, overwrite)
        workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1) // max(cpus_per_worker, 1e-9)))
        records, count = _encode_parts(corpus, folder, kind, part_size, worker_options, workers, cpus_per_worker,
                                       gpus_per_worker, progress)
        if not records:
            raise InputError("the corpus holds no documents", corpus_path)
        ranges = _shard_ranges(records, shards)
        written = _write_shards(path, folder, kind, corpus, ranges, records, count, encoder, worker_options,
                                options, part_size, progress)
        _check_unique_ids(written, ranges, records)
        sharded = layout.publish(path, kind, [(name, docs, commit_id) for name, docs, commit_id, _ in written],
                                 {"parts": len(records), "part_size": part_size, "corpus": str(corpus_path),
                                  "encoder": record.get("encoder"), "texts_only": kind == "sparse"})
        if not keep_parts:
            shutil.rmtree(folder, ignore_errors=True)
        return sharded
    finally:
        lock.release()


def _describe(kind: str, corpus_path: Path, part_size: int, encoder: Any, options: dict[str, Any],
              gpus: float, cpus: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """(what identifies the build's parts, what the workers need)."""
    stat = corpus_path.stat()
    record: dict[str, Any] = {"kind": kind, "corpus": str(corpus_path), "size": stat.st_size,
                              "mtime_ns": stat.st_mtime_ns, "part_size": part_size}
    if kind == "bm25":
        if encoder is not None:
            raise InputError("a BM25 build takes no encoder (pass index_options={'analyzer': Analyzer(...)})")
        from rankstack.retrieve.bm25 import bm25_settings
        from rankstack.text.analyzer import Analyzer

        unknown = set(options) - {"analyzer", "k1", "b", "length_norm", "store", "reorder"}
        if unknown:
            raise InputError(f"unknown BM25 index options {sorted(unknown)}")
        analyzer = options.get("analyzer") or Analyzer()
        settings = bm25_settings(analyzer, options.get("k1", 0.9), options.get("b", 0.4),
                                 options.get("length_norm", "lucene"), options.get("store", True),
                                 options.get("reorder", False))
        record["settings"] = settings
        return record, {"analyzer": analyzer.config(), "store": settings["store"],
                        "length_norm": settings["length_norm"], "reorder": settings["reorder"], "settings": settings}
    if encoder is None:
        raise InputError(f"a {kind} build needs an encoder")
    from rankstack.encoders import Encoder, as_encoder

    if kind == "dense":
        encoder = as_encoder(encoder, None, kind="dense")  # an encoder, or one loaded from a model name
    elif not isinstance(encoder, Encoder) or encoder.kind not in SPARSE_ENCODERS:
        raise InputError(f"a sparse build needs a SpladeEncoder or InferenceFreeSparseEncoder, got "
                         f"{type(encoder).__name__}")
    info = encoder.model_info()
    record["encoder"] = info
    return record, {"encoder": info, "files": encoder.index_files(), "device": "cuda" if gpus else None,
                    "threads": max(1, int(cpus))}


def _parts_folder(folder: Path, record: dict[str, Any], overwrite: bool) -> Path:
    """The parts folder of this build: resumed when it holds parts of the same build, started over with
    `overwrite`, refused when it holds another build's."""
    recorded = folder / BUILD_RECORD
    if recorded.exists():
        previous = json.loads(recorded.read_text(encoding="utf-8"))
        if previous != json.loads(json.dumps(record)):
            if not overwrite:
                raise InputError(f"{folder} holds the parts of another build (another corpus, kind, part size or "
                                 "encoder); pass overwrite=True to start over")
            shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    clean(folder)
    if not recorded.exists():
        write_atomic(recorded, json.dumps(record, indent=1).encode())
    return folder


def _encode_parts(corpus: Corpus, folder: Path, kind: str, part_size: int, worker_options: dict[str, Any],
                  workers: int, cpus: float, gpus: float, progress: bool | None) -> tuple[list[dict], int]:
    """Stage 1: every part written (those of a killed build kept); their records in part order, and the number of
    documents."""
    done: dict[int, dict] = {}
    for p in folder.glob("part-*.json"):
        rec = part_done(folder, kind, int(p.stem.split("-")[1]))
        if rec is not None:
            done[rec["part"]] = rec
    dataset = corpus_parts(corpus, part_size, kind == "sparse", {n: r["digest"] for n, r in done.items()})
    resources = {"num_cpus": cpus, **({"num_gpus": gpus} if gpus else {})}
    dataset = dataset.map(PartWriter, fn_constructor_kwargs={"folder": str(folder), "kind": kind,
                                                             "options": worker_options},
                          compute=ray_module().data.ActorPoolStrategy(size=workers), **resources)
    total_parts, count = None, 0
    with progress_bar(progress, desc=f"encoding {kind} parts", unit=" docs") as bar, \
            warnings.catch_warnings():
        # Ray Data counts the one read task as one input; its parts are streamed to every worker all the same
        warnings.filterwarnings("ignore", message="The minimum number of concurrent actors")
        for row in dataset.iter_rows():
            if row["part"] == END:
                total_parts, count = int(row["parts"]), int(row["first"])
                continue
            done[int(row["part"])] = {k: row[k] for k in ("part", "first", "docs", "texts", "digest", "max_weight")}
            bar.update(int(row["docs"]))
    if total_parts is None:
        raise RankstackError("the corpus reader ended without its last row: the build did not finish; run it again")
    missing = [n for n in range(total_parts) if n not in done]
    if missing:
        raise RankstackError(f"parts {missing[:5]} were not written; run the build again to finish it")
    return [done[n] for n in range(total_parts)], count


def _shard_ranges(records: Sequence[dict], shards: int) -> list[range]:
    """Parts cut into `shards` contiguous ranges of about equal numbers of documents (none empty)."""
    if shards > len(records):
        raise InputError(f"{shards} shards for {len(records)} parts: lower part_size or the number of shards")
    docs = np.cumsum([r["docs"] for r in records])
    cuts = [0] + [int(np.searchsorted(docs, docs[-1] * s / shards, side="left")) + 1 for s in range(1, shards)] \
        + [len(records)]
    for s in range(1, shards):  # at least one part each
        cuts[s] = min(max(cuts[s], cuts[s - 1] + 1), len(records) - (shards - s))
    return [range(cuts[s], cuts[s + 1]) for s in range(shards)]


def _write_shards(path: Path, folder: Path, kind: str, corpus: Corpus, ranges: list[range], records: list[dict],
                  count: int, encoder: Any, worker_options: dict[str, Any], options: dict[str, Any], part_size: int,
                  progress: bool | None) -> list[tuple[str, int, str, np.ndarray]]:
    """Stage 2: one Ray task per shard; (folder name, documents, commit id, id hashes) of each, in order."""
    ray = ray_module()
    task = ray.remote(num_cpus=1, max_retries=3)(write_shard)
    extra = {}
    if kind == "sparse":
        top = max((r["max_weight"] for r in records), default=0.0) or 1.0
        extra["impact_scale"] = top / (2 ** options.get("impact_bits", 8) - 1)
    refs = []
    for s, parts in enumerate(ranges):
        first = records[parts.start]["first"]
        end = records[parts.stop]["first"] if parts.stop < len(records) else count
        refs.append(task.remote(kind, str(corpus.path), corpus.format, str(folder), str(path / new_name("shard")),
                                [records[n]["part"] for n in parts], first, end, worker_options,
                                {**options, **extra}, part_size))
    out = []
    with progress_bar(progress, total=len(refs), desc="writing shards", unit=" shards") as bar:
        for ref in refs:
            out.append(_get(ref))
            bar.update()
    return out


def write_shard(kind: str, corpus_path: str, corpus_format: str, folder: str, shard_path: str, parts: list[int],
                first: int, end: int, worker_options: dict[str, Any], options: dict[str, Any], part_size: int
                ) -> tuple[str, int, str, np.ndarray]:
    """Write one shard index (documents first..end-1 of the corpus, parts `parts`) through its own writer; return
    (folder name, documents, commit id, 64-bit hashes of its ids)."""
    from itertools import islice

    folder_path, target = Path(folder), Path(shard_path)
    if target.exists():  # a retried task: start the shard over
        shutil.rmtree(target)
    if kind == "bm25":
        from rankstack.index.inverted import IndexWriter

        with IndexWriter(target, worker_options["settings"]) as writer:
            staging = target / new_name("parts")  # hard links: the parts stay for a retry until the build is published
            staging.mkdir()
            for n in parts:
                link = staging / SEGMENT.format(n)
                _link(folder_path / SEGMENT.format(n), link)
                writer.adopt(link)
    else:
        encoded = target.with_name(target.name + ".encoded")  # the shard's parts, numbered from 0 (hard links)
        shutil.rmtree(encoded, ignore_errors=True)
        encoded.mkdir(parents=True)
        i = 0
        for n in parts:
            if (folder_path / ENCODED.format(n)).exists():
                _link(folder_path / ENCODED.format(n), encoded / ENCODED.format(i))
                i += 1
        docs = list(islice(Corpus(corpus_path, corpus_format), first, end))
        encoder = load_encoder(worker_options)
        try:
            if kind == "sparse":
                from rankstack.retrieve.sparse import LearnedSparse
                LearnedSparse.build(docs, target, encoder, shards=encoded, shard_size=part_size, progress=False,
                                    **options)
            else:
                from rankstack.retrieve.dense import Dense
                Dense.build(docs, target, encoder, shards=encoded, shard_size=part_size, **options)
        finally:
            shutil.rmtree(encoded, ignore_errors=True)
    return target.name, *_shard_summary(kind, target)


def _shard_summary(kind: str, target: Path) -> tuple[int, str, np.ndarray]:
    """(documents, commit id, id hashes) of a shard index as committed."""
    if kind == "dense":
        from rankstack.index.dense import DenseIndex
        index = DenseIndex(target, gpu=False)
        ids, num_docs = list(index.doc_ids), index.num_live
    else:
        from rankstack.index.inverted import InvertedIndex
        index = InvertedIndex(target)
        ids, num_docs = index.doc_ids.take(np.arange(index.num_docs)), index.num_live
    return num_docs, index.commit_id, id_hashes(ids)


def id_hashes(ids: Sequence[str]) -> np.ndarray:
    """64-bit hashes of document ids (uint64)."""
    return np.array([int.from_bytes(hashlib.blake2b(i.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                                    "little") for i in ids], dtype=np.uint64)


def _check_unique_ids(written: list[tuple[str, int, str, np.ndarray]], ranges: list[range],
                      records: list[dict]) -> None:
    """InputError when two shards hold the same id (each shard's writer checked its own)."""
    if len(written) < 2:
        return
    hashes = np.concatenate([w[3] for w in written])
    shard_of = np.repeat(np.arange(len(written)), [len(w[3]) for w in written])
    order = np.argsort(hashes, kind="stable")
    same = np.flatnonzero(hashes[order][1:] == hashes[order][:-1])
    for i in same.tolist():
        a, b = order[i], order[i + 1]
        if shard_of[a] != shard_of[b]:
            raise InputError(f"a document id appears in shards {int(shard_of[a])} and {int(shard_of[b])} (in the "
                             f"parts {ranges[shard_of[a]].start}.. and {ranges[shard_of[b]].start}..): document ids "
                             "must be unique in a corpus")


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _get(ref: Any) -> Any:
    """ray.get, raising a rankstack error raised in the task as itself."""
    ray = ray_module()
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, RankstackError):
            raise cause from None
        raise


__all__ = ["build", "write_shard"]
