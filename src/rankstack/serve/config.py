"""The server's JSON config: the indexes, stages and pipelines of `rankstack experiment`, plus what to serve.

    {
      "indexes":   {"indexes/scifact": "beir/scifact"},              # BM25 indexes built when missing
      "stages":    {"bm25": "BM25('indexes/scifact')", "dense": "Dense('indexes/scifact-minilm')"},
      "pipelines": {"BM25": "bm25 % 100", "BM25 >> dense": "bm25 % 100 >> BiEncoder(index=dense)"},
      "documents": ["bm25", "dense"],          # the named stages document writes go to (default: none)
      "queries": "beir/scifact/test", "qrels": "beir/scifact/test",  # optional: judged queries for the page
      "ray": {"address": "auto"},              # optional: the Ray cluster of the sharded stages (ShardedBM25, ...)
      "serve": {"reads": "open", "cors": [], "threads": 64, "model_threads": null,
                "batching": {"window_ms": 2, "max_items": 256},     # or false
                "limits": {"query_chars": 1000, "k": 1000, "batch": 256, "candidates": 1000,
                           "body_bytes": 4000000, "request_seconds": 30}}
    }

`ray` is {"address": "auto" | "host:6379" | "ray://host:10001"} for a running cluster, or {"num_cpus": 4,
"num_gpus": 0, "object_store_mb": 512} for a local one that the server starts and stops (no dashboard).
Relative paths are relative to the config file. The keys only `rankstack experiment` reads (measures, baseline,
report, latency_sample, cache) are ignored, so an experiment's config can be served as it is.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from rankstack.errors import InputError, RankstackError
from rankstack.serve.limits import Limits

log = logging.getLogger(__name__)

SERVED_KEYS = {"indexes", "stages", "pipelines", "documents", "queries", "qrels", "serve", "ray"}
EXPERIMENT_KEYS = {"measures", "baseline", "report", "latency_sample", "cache"}
SETTINGS_KEYS = {"reads", "cors", "threads", "model_threads", "batching", "limits"}
RAY_KEYS = {"address", "num_cpus", "num_gpus", "object_store_mb"}


@dataclass(frozen=True)
class Settings:
    """How the server answers: who may read, CORS origins, worker threads, micro-batching, limits."""

    reads: str = "open"                 # "open", or "token": reads need the bearer token too
    cors: tuple[str, ...] = ()          # origins allowed to call the API from a browser ("*": any)
    threads: int = 64                   # worker threads running requests (at least the expected concurrency)
    model_threads: int | None = None    # torch's threads for model calls (None: torch's default, one per core)
    batching: bool = True               # gather concurrent model calls into batches
    window_ms: float = 2.0              # how long a batch waits for more requests after its first
    max_items: int = 256                # texts or pairs per model batch at most
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_config(cls, values: Mapping[str, Any] | None) -> "Settings":
        values = dict(values or {})
        unknown = sorted(set(values) - SETTINGS_KEYS)
        if unknown:
            raise InputError(f"unknown serve settings {unknown}; known: {sorted(SETTINGS_KEYS)}")
        reads = values.get("reads", "open")
        if reads not in ("open", "token"):
            raise InputError(f"serve.reads must be 'open' or 'token', got {reads!r}")
        cors = values.get("cors", [])
        if isinstance(cors, str):
            cors = [cors]
        if not isinstance(cors, list) or not all(isinstance(c, str) and c for c in cors):
            raise InputError(f"serve.cors must be a list of origins such as 'https://example.org', got {cors!r}")
        threads = values.get("threads", 64)
        if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 1024:
            raise InputError(f"serve.threads must be an integer from 1 to 1024, got {threads!r}")
        model_threads = values.get("model_threads")
        if model_threads is not None and (isinstance(model_threads, bool) or not isinstance(model_threads, int)
                                          or not 1 <= model_threads <= 1024):
            raise InputError(f"serve.model_threads must be an integer from 1 to 1024, got {model_threads!r}")
        batching = values.get("batching", {})
        if batching is False:
            batching_on, window_ms, max_items = False, cls.window_ms, cls.max_items
        elif isinstance(batching, dict):
            unknown = sorted(set(batching) - {"window_ms", "max_items"})
            if unknown:
                raise InputError(f"unknown batching settings {unknown}; known: ['max_items', 'window_ms']")
            window_ms, max_items = batching.get("window_ms", cls.window_ms), batching.get("max_items", cls.max_items)
            if isinstance(window_ms, bool) or not isinstance(window_ms, (int, float)) or not 0 <= window_ms <= 1000:
                raise InputError(f"batching.window_ms must be milliseconds from 0 to 1000, got {window_ms!r}")
            if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
                raise InputError(f"batching.max_items must be a positive integer, got {max_items!r}")
            batching_on = True
        else:
            raise InputError(f"serve.batching must be false or {{'window_ms': .., 'max_items': ..}}, got {batching!r}")
        return cls(reads=reads, cors=tuple(cors), threads=threads, model_threads=model_threads, batching=batching_on,
                   window_ms=float(window_ms),
                   max_items=max_items, limits=Limits.from_config(values.get("limits")))


@dataclass(frozen=True)
class RaySettings:
    """The Ray cluster that the config's sharded stages run on: `address` of a running one, else a local one of
    `num_cpus` CPUs (None: all), `num_gpus` GPUs and an object store of `object_store_mb` MB."""

    address: str | None = None
    num_cpus: int | None = None
    num_gpus: int | None = None
    object_store_mb: int | None = None

    @classmethod
    def from_config(cls, values: Any) -> "RaySettings":
        if not isinstance(values, dict):
            raise InputError(f"'ray' must be {{'address': ..}} or {{'num_cpus': .., ..}}, got {values!r}")
        unknown = sorted(set(values) - RAY_KEYS)
        if unknown:
            raise InputError(f"unknown ray settings {unknown}; known: {sorted(RAY_KEYS)}")
        address = values.get("address")
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise InputError(f"ray.address must be 'auto', 'host:port' or 'ray://host:port', got {address!r}")
        for key in ("num_cpus", "num_gpus", "object_store_mb"):
            value = values.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if key != "num_gpus" else 0):
                raise InputError(f"ray.{key} must be a {'positive' if key != 'num_gpus' else 'non-negative'} "
                                 f"integer, got {value!r}")
            if address is not None:
                raise InputError(f"ray.{key} sizes a local cluster; a cluster at an address ({address!r}) has its own")
        from rankstack.distributed.cluster import ray_module

        ray_module()  # a clear error now if Ray is not installed
        return cls(address, values.get("num_cpus"), values.get("num_gpus"), values.get("object_store_mb"))


@dataclass
class ServeConfig:
    """A validated server config: what to build (`load` builds it) and how to serve it."""

    path: Path
    raw: dict
    settings: Settings
    documents: list[str]
    ray: RaySettings | None = None

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def expressions(self) -> dict[str, str]:
        return dict(self.raw["pipelines"])


def read_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> ServeConfig:
    """Read and check a server config (nothing is built yet). `overrides`: serve settings that replace the file's
    (e.g. from command-line flags)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read the server config ({e})", path) from None
    if not isinstance(raw, dict):
        raise InputError("the server config must be a JSON object", path)
    unknown = sorted(set(raw) - SERVED_KEYS - EXPERIMENT_KEYS)
    if unknown:
        raise InputError(f"unknown keys {unknown}; a server config has {sorted(SERVED_KEYS)}", path)
    if "cache" in raw:
        log.warning("the config's 'cache' is not used by the server: cached stages would not see document writes")
    pipelines = raw.get("pipelines")
    if not isinstance(pipelines, dict) or not pipelines:
        raise InputError("the config needs 'pipelines': {name: expression, ...} with at least one", path)
    for key in ("indexes", "stages", "pipelines"):
        value = raw.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise InputError(f"'{key}' must map names to strings", path)
    documents = raw.get("documents", [])
    if isinstance(documents, str):
        documents = [documents]
    if not isinstance(documents, list) or not all(isinstance(d, str) for d in documents):
        raise InputError("'documents' must be a list of stage names", path)
    stages = raw.get("stages", {})
    missing = [d for d in documents if d not in stages]
    if missing:
        raise InputError(f"'documents' names {missing}, which are not in 'stages' ({sorted(stages)})", path)
    for key in ("queries", "qrels"):
        if key in raw and not isinstance(raw[key], str):
            raise InputError(f"'{key}' must be a collection name or a file", path)
    serve = {**(raw.get("serve") or {}), **(overrides or {})}
    try:
        settings = Settings.from_config(serve)
    except InputError as e:
        raise InputError(str(e), path) from None
    try:
        ray = RaySettings.from_config(raw["ray"]) if "ray" in raw else None
    except RankstackError as e:
        raise InputError(str(e), path) from None
    return ServeConfig(path.absolute(), raw, settings, documents, ray)
