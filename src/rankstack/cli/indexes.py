"""An index directory's type, read from its manifest's "format" field, and the first stage that searches it.

    index_kind("indexes/scifact")                      # "bm25", "sparse", "seismic", "dense" or "late"
    open_stage("indexes/scifact", k=10, k1=1.2)        # BM25("indexes/scifact", k=10, k1=1.2)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rankstack.errors import IndexFormatError, InputError

#: Index types by the manifest's "format" (rankstack.index.check.index_format); an inverted index's by its mode.
KINDS = {"rankstack-dense-index": "dense", "rankstack-plaid": "late", "rankstack-seismic-index": "seismic"}
INVERTED_MODES = {"bm25": "bm25", "impact": "sparse"}
NAMES = {"bm25": "BM25", "sparse": "learned sparse", "seismic": "Seismic", "dense": "dense", "late": "late-interaction"}
#: Search algorithms each index type offers (the first is the default).
ALGORITHMS = {"bm25": ("maxscore", "bmw", "bmp", "exhaustive"),
              "sparse": ("maxscore", "bmw", "bmp", "exhaustive", "seismic", "matmul"),
              "seismic": ("seismic",), "dense": (), "late": ()}
#: Search options and the index types they apply to.
OPTIONS = {"theta": ("bm25", "sparse"), "threads": ("bm25", "sparse", "seismic"), "k1": ("bm25",), "b": ("bm25",),
           "query_cut": ("sparse", "seismic"), "heap_factor": ("sparse", "seismic"), "nprobe": ("dense", "late"),
           "ef_search": ("dense",), "rescore": ("dense", "late"), "ncandidates": ("late",),
           "encoder": ("sparse", "seismic", "dense", "late"), "device": ("sparse", "seismic", "dense", "late"),
           "batch_size": ("sparse", "seismic", "dense")}


def index_kind(path: str | Path) -> str:
    """The type of the index in `path`: "bm25", "sparse" (learned sparse), "seismic" (the approximate index inside a
    learned sparse one), "dense" or "late". IndexFormatError for a folder without a manifest or of an unknown type."""
    from rankstack.index.check import index_format

    path = Path(path)
    fmt = index_format(path)
    if fmt in KINDS:
        return KINDS[fmt]
    manifest = json.loads((path / "manifest.json").read_bytes())  # read whole by index_format just before
    mode = (manifest.get("settings") or {}).get("mode")
    if mode not in INVERTED_MODES:
        raise IndexFormatError(f"{path}: unknown inverted index mode {mode!r} (expected bm25 or impact)")
    return INVERTED_MODES[mode]


def open_stage(path: str | Path, *, k: int = 1000, algorithm: str | None = None, progress: bool | None = None,
               **options: Any) -> Any:
    """The first stage over the index in `path`, with search `options` (None values are left out; an option the
    index type does not take is an InputError naming it). A "seismic" folder opens its learned sparse index."""
    path = Path(path)
    kind = index_kind(path)
    options = {name: value for name, value in options.items() if value is not None and value is not False}
    unknown = [name for name in options if name not in OPTIONS]
    if unknown:
        raise TypeError(f"unknown search options {unknown}")
    wrong = [name for name in options if kind not in OPTIONS[name]]
    if wrong:
        flags = ", ".join("--" + name.replace("_", "-") for name in wrong)
        raise InputError(f"{flags} do{'es' if len(wrong) == 1 else ''} not apply to a {NAMES[kind]} index ({path})")
    if algorithm is not None and algorithm not in ALGORITHMS[kind]:
        offered = (f"choose {', '.join(ALGORITHMS[kind])}" if ALGORITHMS[kind] else
                   "it takes no --algorithm; its knobs are --nprobe, --ef-search, --rescore")
        raise InputError(f"algorithm {algorithm!r} does not apply to a {NAMES[kind]} index ({offered})")
    if kind == "bm25":
        from rankstack.retrieve.bm25 import BM25

        return BM25(path, k=k, algorithm=algorithm or "maxscore", progress=progress, **options)
    if kind in ("sparse", "seismic"):
        return _learned_sparse(path.parent if kind == "seismic" else path, k, algorithm or ALGORITHMS[kind][0],
                               progress, options)
    if kind == "dense":
        from rankstack.retrieve.dense import Dense

        return Dense(path, options.pop("encoder", None), k=k, progress=progress, **options)
    from rankstack.index.plaid import PlaidIndex
    from rankstack.retrieve.late import LateInteraction

    index = PlaidIndex(path)
    model = options.pop("encoder", None) or _recorded_model(index.encoder_info, path)
    return LateInteraction(index, model, k=k, progress=progress, **options)


def _learned_sparse(path: Path, k: int, algorithm: str, progress: bool | None, options: dict[str, Any]) -> Any:
    from rankstack.index.inverted import InvertedIndex
    from rankstack.retrieve.sparse import LearnedSparse

    index = InvertedIndex(path)
    model, batch_size = options.pop("encoder", None), options.pop("batch_size", None)
    encoder = None
    if model is not None or batch_size is not None:  # the recorded encoder, with this model or batch size
        from rankstack.encoders import encoder_from_record

        record = index.settings.get("metadata", {}).get("encoder") or {}
        runtime = {"device": options.get("device"), "batch_size": batch_size, "progress": progress}
        encoder = encoder_from_record(record, model=model, files=index,
                                      **{key: value for key, value in runtime.items() if value is not None})
    return LearnedSparse(index, encoder, k=k, algorithm=algorithm, progress=progress, **options)


def _recorded_model(record: dict[str, Any], path: Path) -> str:
    """The folder (when it still exists) or the hub id of the model an index records."""
    for key in ("path", "model"):
        value = record.get(key)
        if value and (key == "model" or Path(value).is_dir()):
            return str(value)
    raise InputError(f"{path} records no model: pass --encoder MODEL")

