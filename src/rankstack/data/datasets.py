"""Named test collections: `load("beir/scifact")`, `load("msmarco-passage/trec-dl-2019")`.

A collection is found, in this order, in the folders named by the RANKSTACK_DATA environment
variable (os.pathsep-separated), among the collections shipped with rankstack (SciFact), and in the
download cache (RANKSTACK_CACHE, default ~/.cache/rankstack/datasets); otherwise its official
archive is downloaded into the cache. Every folder uses BEIR's layout: corpus.jsonl[.gz],
queries.jsonl[.gz], qrels/<split>.tsv, plus an optional first-stage run.

Names: `beir/<name>` (its default split) and `beir/<name>/<split>` for the splits BEIR publishes;
CQADupStack per forum (`beir/cqadupstack/android`, ...), as BEIR evaluates it; TREC DL 2019 / 2020 passage
reranking (`msmarco-passage/trec-dl-2019`, `-2020`); and, when the ir_datasets package is installed, any
ir_datasets id prefixed `irds:` (e.g. `irds:beir/nfcorpus/test`), converted once into the cache.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rankstack.data.corpus import Corpus
from rankstack.data.files import numbered_lines
from rankstack.data.qrels import Qrels
from rankstack.data.queries import Queries
from rankstack.data.run import Run
from rankstack.errors import DatasetNotFoundError

BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"
MSMARCO_URL = "https://msmarco.z22.web.core.windows.net/msmarcoranking/{file}"
NIST_URL = "https://trec.nist.gov/data/deep/{file}"
EMBEDDED = Path(__file__).parent / "embedded"

#: BEIR's collections and the qrels splits each publishes (the first is the default split).
BEIR_SPLITS = {"arguana": ("test",), "climate-fever": ("test",), "cqadupstack": ("test",),
               "dbpedia-entity": ("test", "dev"), "fever": ("test", "dev", "train"), "fiqa": ("test", "dev", "train"),
               "hotpotqa": ("test", "dev", "train"), "msmarco": ("dev", "test", "train"),
               "nfcorpus": ("test", "dev", "train"), "nq": ("test",), "quora": ("test", "dev"), "scidocs": ("test",),
               "scifact": ("test", "train"), "trec-covid": ("test",), "webis-touche2020": ("test",)}
BEIR_NAMES = tuple(BEIR_SPLITS)
#: CQADupStack's forums: BEIR evaluates each on its own and averages them.
CQADUPSTACK_FORUMS = ("android", "english", "gaming", "gis", "mathematica", "physics", "programmers", "stats", "tex",
                      "unix", "webmasters", "wordpress")
IRDS_PREFIX = "irds:"


@dataclass(frozen=True)
class Collection:
    """Where a named collection lives and how to fetch it."""
    folder: str
    split: str
    download: Callable[[Path], None]
    run_file: str | None = None
    description: str = ""
    archive_folder: str | None = None  # the folder a download creates, when several collections share it

    @property
    def download_folder(self) -> str:
        return self.archive_folder or self.folder


@dataclass
class Dataset:
    """A located collection: corpus (streamed), the split's queries and qrels, and an optional first-stage run."""
    name: str
    root: Path
    split: str
    run_file: str | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def corpus(self) -> Corpus:
        return Corpus(_first_existing(self.root, "corpus.jsonl.gz", "corpus.jsonl"), format="jsonl", name=self.name)

    @property
    def qrels(self) -> Qrels:
        if "qrels" not in self._cache:
            self._cache["qrels"] = Qrels.read(self.root / "qrels" / f"{self.split}.tsv")
        return self._cache["qrels"]

    @property
    def queries(self) -> Queries:
        """The queries judged in this split, in the qrels' order."""
        if "queries" not in self._cache:
            every = Queries.read(_first_existing(self.root, "queries.jsonl.gz", "queries.jsonl"), format="jsonl")
            unknown = [q for q in self.qrels if q not in every]
            if unknown:
                raise DatasetNotFoundError(f"{self.name}: qrels name {len(unknown)} queries missing from the "
                                           f"queries file (e.g. {unknown[:3]})")
            self._cache["queries"] = Queries(((q, every[q]) for q in self.qrels), name=self.name)
        return self._cache["queries"]

    @property
    def run(self) -> Run:
        """The collection's own first-stage run (e.g. DL 2019's BM25 top 100)."""
        if not self.run_file:
            raise DatasetNotFoundError(f"{self.name} comes with no first-stage run")
        path = self.root / self.run_file
        if not path.exists():
            raise DatasetNotFoundError(
                f"{self.name}: {path} is missing; the official archives hold no ranked BM25 run. Build it with "
                f"rankstack from the full MS MARCO passage collection ({MSMARCO_URL.format(file='collection.tar.gz')}"
                f", 8.8M passages): `rankstack index collection.tsv idx/msmarco-passage && rankstack search "
                f"idx/msmarco-passage --queries {self.name} -k 100 -o {path}` (Anserini's BM25, k1=0.9 b=0.4), or "
                "copy Anserini's BM25 run for these topics there")
        return Run.read_trec(path, name="BM25 (collection run)")


def _beir(name: str) -> Callable[[Path], None]:
    def download(target: Path) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            archive = Path(tmp) / f"{name}.zip"
            _fetch(BEIR_URL.format(name=name), archive)
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp)
            shutil.move(str(Path(tmp) / name), target)
    return download


def _trec_dl(year: int) -> Callable[[Path], None]:
    """Build a reranking collection from the official top-1000 candidates, queries and NIST qrels."""
    def download(target: Path) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            top1000, qrels = tmp / "top1000.tsv.gz", tmp / "qrels.txt"
            _fetch(MSMARCO_URL.format(file=f"msmarco-passagetest{year}-top1000.tsv.gz"), top1000)
            _fetch(NIST_URL.format(file=f"{year}qrels-pass.txt"), qrels)
            build = tmp / "build"
            (build / "qrels").mkdir(parents=True)
            judged = Qrels.read(qrels)
            passages, queries = {}, {}
            for _, line in numbered_lines(top1000):
                qid, pid, query, passage = line.split("\t", 3)
                if qid in judged:
                    queries[qid] = query
                    passages[pid] = passage
            with gzip.open(build / "corpus.jsonl.gz", "wt", encoding="utf-8") as f:
                for pid, text in passages.items():
                    f.write(json.dumps({"_id": pid, "title": "", "text": text}, ensure_ascii=False) + "\n")
            Queries(queries).write_jsonl(build / "queries.jsonl")
            with open(build / "qrels" / "test.tsv", "w") as f:
                f.write("query-id\tcorpus-id\tscore\n")
                f.writelines(f"{q}\t{d}\t{r}\n" for q, docs in judged.items() for d, r in docs.items())
            shutil.copy(qrels, build / f"{year}qrels-pass.txt")
            shutil.move(str(build), target)
    return download


def _fetch(url: str, destination: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(destination, "wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as e:
        raise DatasetNotFoundError(f"could not download {url} ({e}); when offline, point RANKSTACK_DATA at a "
                                   "folder holding the collection in BEIR's layout") from None


def _registry() -> dict[str, Collection]:
    collections = {}
    for name, splits in BEIR_SPLITS.items():
        if name == "cqadupstack":
            for forum in CQADUPSTACK_FORUMS:
                spec = Collection(f"cqadupstack/{forum}", "test", _beir(name), archive_folder=name,
                                  description=f"CQADupStack's {forum} forum")
                collections[f"beir/cqadupstack/{forum}"] = collections[f"beir/cqadupstack/{forum}/test"] = spec
            continue
        for split in splits:
            collections[f"beir/{name}/{split}"] = Collection(name, split, _beir(name))
        collections[f"beir/{name}"] = Collection(name, splits[0], _beir(name))
    for year in (2019, 2020):
        spec = Collection(f"trec-dl-{year}-passage", "test", _trec_dl(year), run_file="bm25_top100.run.trec",
                          description=f"TREC DL {year} passage reranking: judged queries and their BM25 candidates")
        collections[f"msmarco-passage/trec-dl-{year}"] = collections[f"msmarco-passage/trec-dl-{year}/test"] = spec
    return collections


COLLECTIONS = _registry()


def names() -> list[str]:
    """Every collection name `load` takes (each split spelled out too), sorted; `irds:` ids come on top."""
    return sorted(COLLECTIONS)


@dataclass(frozen=True)
class Entry:
    """One collection as `rankstack datasets` lists it: its name, its splits (the default first), and where it is
    found locally (None: downloaded on first use)."""
    name: str
    splits: tuple[str, ...]
    local: dict[str, Path]


def catalog() -> list[Entry]:
    """The named collections, one entry each (their splits grouped), with the splits found locally."""
    splits: dict[str, list[str]] = {}
    for name, spec in COLLECTIONS.items():
        base = name.removesuffix(f"/{spec.split}")
        if base == name or base not in COLLECTIONS:
            base = name
        splits.setdefault(base, [])
        if spec.split not in splits[base]:
            splits[base].append(spec.split)
    entries = []
    for base in sorted(splits):
        default = COLLECTIONS[base].split
        ordered = (default, *sorted(s for s in splits[base] if s != default))
        local = {split: folder for split in ordered
                 if (folder := locate(base if split == default else f"{base}/{split}")) is not None}
        entries.append(Entry(base, ordered, local))
    return entries


def cache_dir() -> Path:
    return Path(os.environ.get("RANKSTACK_CACHE", Path.home() / ".cache" / "rankstack" / "datasets"))


def data_roots() -> list[Path]:
    roots = [Path(p) for p in os.environ.get("RANKSTACK_DATA", "").split(os.pathsep) if p]
    return [*roots, EMBEDDED, cache_dir()]


def is_name(value: str) -> bool:
    """True for a name `load` takes: a known collection, or an `irds:` id."""
    value = value.strip("/")
    return value in COLLECTIONS or value.startswith(IRDS_PREFIX) or value == "beir/cqadupstack"


def locate(name: str) -> Path | None:
    """The local folder holding a named collection's split, or None."""
    spec = _spec(name)
    for root in data_roots():
        folder = root / spec.folder
        if (folder / "qrels" / f"{spec.split}.tsv").exists():
            return folder
    return None


def _spec(name: str) -> Collection:
    name = name.strip("/")
    spec = COLLECTIONS.get(name)
    if spec is not None:
        return spec
    if name == "beir/cqadupstack":
        raise DatasetNotFoundError("beir/cqadupstack is twelve forums that BEIR evaluates one by one and averages: "
                                   f"load beir/cqadupstack/<forum>, one of {', '.join(CQADUPSTACK_FORUMS)}")
    if name.startswith(IRDS_PREFIX):
        from rankstack.data.irds import collection

        return collection(name.removeprefix(IRDS_PREFIX))
    raise DatasetNotFoundError(f"unknown collection {name!r}; known: beir/<name>[/<split>] for BEIR's "
                               f"{', '.join(BEIR_NAMES)} (cqadupstack per forum: beir/cqadupstack/android, ...), "
                               "msmarco-passage/trec-dl-2019 and -2020, and irds:<id> with ir_datasets installed; "
                               "`rankstack datasets` lists them")


def load(name: str, download: bool = True) -> Dataset:
    """Locate (and if needed download) a named collection."""
    spec = _spec(name)
    folder = locate(name)
    if folder is not None:
        return Dataset(name, folder, spec.split, spec.run_file)
    if not download:
        raise DatasetNotFoundError(f"{name} is not available locally; looked in {[str(r) for r in data_roots()]}")
    target = cache_dir() / spec.download_folder
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        spec.download(target)
    folder = cache_dir() / spec.folder
    if not (folder / "qrels" / f"{spec.split}.tsv").exists():
        raise DatasetNotFoundError(f"{name}: the downloaded archive has no {spec.folder}/qrels/{spec.split}.tsv")
    return Dataset(name, folder, spec.split, spec.run_file)


def _first_existing(root: Path, *names: str) -> Path:
    for n in names:
        if (root / n).exists():
            return root / n
    raise DatasetNotFoundError(f"{root} holds none of {names}")
