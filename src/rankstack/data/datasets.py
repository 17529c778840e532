"""Named test collections: `load("beir/scifact")`, `load("msmarco-passage/trec-dl-2019")`.

A collection is found, in this order, in the folders named by the RANKSTACK_DATA environment
variable (os.pathsep-separated), among the collections shipped with rankstack (SciFact), and in the
download cache (RANKSTACK_CACHE, default ~/.cache/rankstack/datasets); otherwise its official
archive is downloaded into the cache. Every folder uses BEIR's layout: corpus.jsonl[.gz],
queries.jsonl[.gz], qrels/<split>.tsv, plus an optional first-stage run.
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

BEIR_NAMES = ("arguana", "climate-fever", "cqadupstack", "dbpedia-entity", "fever", "fiqa", "hotpotqa", "msmarco",
              "nfcorpus", "nq", "quora", "scidocs", "scifact", "trec-covid", "webis-touche2020")


@dataclass(frozen=True)
class Collection:
    """Where a named collection lives and how to fetch it."""
    folder: str
    split: str
    download: Callable[[Path], None]
    run_file: str | None = None
    description: str = ""


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
        if not self.run_file or not (self.root / self.run_file).exists():
            raise DatasetNotFoundError(f"{self.name} comes with no first-stage run")
        return Run.read_trec(self.root / self.run_file, name="BM25 (collection run)")


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
    for name in BEIR_NAMES:
        for split in ("test", "dev", "train"):
            collections[f"beir/{name}/{split}"] = Collection(name, split, _beir(name))
        collections[f"beir/{name}"] = Collection(name, "dev" if name == "msmarco" else "test", _beir(name))
    for year in (2019, 2020):
        collections[f"msmarco-passage/trec-dl-{year}"] = Collection(
            f"trec-dl-{year}-passage", "test", _trec_dl(year), run_file="bm25_top100.run.trec",
            description=f"TREC DL {year} passage reranking: judged queries and their BM25 candidates")
    return collections


COLLECTIONS = _registry()


def names() -> list[str]:
    return sorted(COLLECTIONS)


def cache_dir() -> Path:
    return Path(os.environ.get("RANKSTACK_CACHE", Path.home() / ".cache" / "rankstack" / "datasets"))


def data_roots() -> list[Path]:
    roots = [Path(p) for p in os.environ.get("RANKSTACK_DATA", "").split(os.pathsep) if p]
    return [*roots, EMBEDDED, cache_dir()]


def load(name: str, download: bool = True) -> Dataset:
    """Locate (and if needed download) a named collection."""
    spec = COLLECTIONS.get(name.strip("/"))
    if spec is None:
        raise DatasetNotFoundError(f"unknown collection {name!r}; known: beir/<name>[/<split>] for BEIR's "
                                   f"{', '.join(BEIR_NAMES)}, and msmarco-passage/trec-dl-2019, -2020")
    for root in data_roots():
        folder = root / spec.folder
        if (folder / "qrels" / f"{spec.split}.tsv").exists():
            return Dataset(name, folder, spec.split, spec.run_file)
    if not download:
        raise DatasetNotFoundError(f"{name} is not available locally; looked in {[str(r) for r in data_roots()]}")
    target = cache_dir() / spec.folder
    target.parent.mkdir(parents=True, exist_ok=True)
    spec.download(target)
    if not (target / "qrels" / f"{spec.split}.tsv").exists():
        raise DatasetNotFoundError(f"{name}: the downloaded archive has no qrels/{spec.split}.tsv")
    return Dataset(name, target, spec.split, spec.run_file)


def _first_existing(root: Path, *names: str) -> Path:
    for n in names:
        if (root / n).exists():
            return root / n
    raise DatasetNotFoundError(f"{root} holds none of {names}")
