"""Experiments: run several pipelines on the same queries, compare them with significance tests,
time them, and write an HTML report with plots.

    exp = rankstack.Experiment([bm25, bm25 >> reranker], queries, qrels, ["nDCG@10", "R@100"],
                               names=["BM25", "BM25 >> CE"])
    print(exp.table())
    exp.report("report/")            # report/index.html (+ PNG plots), viewable offline
"""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from rankstack.data.qrels import Qrels
from rankstack.data.queries import Queries
from rankstack.data.run import Run
from rankstack.errors import InputError
from rankstack.evaluate import compare, evaluate, parse_measures
from rankstack.evaluate.significance import Comparison
from rankstack.pipeline.stage import Stage


class Experiment:
    """Runs each pipeline over all queries (one batch), evaluates and compares them with the baseline,
    and measures latency by running `latency_sample` queries one at a time."""

    def __init__(self, pipelines: Sequence[Stage] | Mapping[str, Stage], queries: Queries, qrels: Qrels,
                 measures: Sequence[str], names: Sequence[str] | None = None, baseline: int = 0,
                 test: str = "t-test", correction: str | None = "holm", alpha: float = 0.05,
                 latency_sample: int = 50, complete: bool = False, notes: Sequence[str] = ()):
        if isinstance(pipelines, Mapping):
            names, pipelines = list(pipelines), list(pipelines.values())
        if not pipelines:
            raise InputError("an experiment needs at least one pipeline")
        names = list(names) if names is not None else [repr(p) for p in pipelines]
        if len(names) != len(pipelines):
            raise InputError(f"{len(names)} names for {len(pipelines)} pipelines")
        self.pipelines, self.names, self.queries, self.qrels = list(pipelines), names, queries, qrels
        self.notes = list(notes)  # printed under the table (e.g. that latencies time cache hits)
        self.measures = [str(m) for m in parse_measures(measures)]
        self.runs: list[Run] = []
        self.seconds: list[float] = []
        for name, pipeline in zip(names, self.pipelines):
            start = time.perf_counter()
            run = pipeline(queries)
            self.seconds.append(time.perf_counter() - start)
            run.name = name
            self.runs.append(run)
        self.latencies = [self._latencies(p, latency_sample) for p in self.pipelines]
        self.comparison: Comparison = compare(self.runs, qrels, self.measures, baseline=baseline, test=test,
                                              correction=correction, alpha=alpha, complete=complete)
        self.baseline = baseline

    def _latencies(self, pipeline: Stage, sample: int) -> np.ndarray:
        """Milliseconds per query, each query run alone (after one untimed warm-up query)."""
        qids = list(self.queries)[:sample]
        if not qids:
            return np.zeros(0)
        pipeline(self.queries.subset(qids[:1]))
        out = []
        for qid in qids:
            one = self.queries.subset([qid])
            start = time.perf_counter()
            pipeline(one)
            out.append((time.perf_counter() - start) * 1000)
        return np.array(out)

    def latency(self, i: int) -> tuple[float, float]:
        """(mean, 95th percentile) milliseconds per query of pipeline i."""
        values = self.latencies[i]
        return (float(values.mean()), float(np.percentile(values, 95))) if len(values) else (float("nan"),) * 2

    def table(self) -> str:
        latency = [self.latency(i) for i in range(len(self.runs))]
        table = self.comparison.to_table({"mean ms": [f"{m:.1f}" for m, _ in latency],
                                          "p95 ms": [f"{p:.1f}" for _, p in latency]})
        return "\n".join([table, *(f"note: {n}" for n in self.notes)])

    def to_json(self) -> str:
        data = json.loads(self.comparison.to_json())
        for i, run in enumerate(data["runs"]):
            mean, p95 = self.latency(i)
            run.update({"pipeline": repr(self.pipelines[i]), "latency_ms_mean": mean, "latency_ms_p95": p95,
                        "batch_seconds": self.seconds[i]})
        return json.dumps(data, indent=2, ensure_ascii=False)

    def depth_curve(self, make_pipeline: Callable[[int], Stage], depths: Sequence[int], measure: str | None = None
                    ) -> tuple[list[int], list[float]]:
        """`measure` (default: the first) of make_pipeline(depth) for each depth."""
        measure = measure or self.measures[0]
        values = [evaluate(make_pipeline(d)(self.queries), self.qrels, [measure]).aggregate[measure] for d in depths]
        return list(depths), values

    def report(self, directory: str | Path, depth_curves: Mapping[str, tuple[Sequence[int], Sequence[float]]]
               | None = None, measure: str | None = None) -> Path:
        """Write directory/index.html with the table and plots (PNG files beside it, also embedded, so the
        HTML alone opens offline). `depth_curves`: name -> (depths, values), e.g. from `depth_curve`."""
        from rankstack.evaluate import plots

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        measure = measure or self.measures[0]
        evaluations = self.comparison.evaluations
        base = evaluations[self.baseline].per_query[measure]
        differences = {e.name: np.array([v - base[q] for q, v in e.per_query[measure].items() if q in base])
                       for i, e in enumerate(evaluations) if i != self.baseline}
        images = []
        if differences:
            images.append(plots.per_query_differences(directory / "per_query_differences.png", differences,
                                                      measure, self.names[self.baseline]))
        if depth_curves:
            images.append(plots.metric_by_depth(directory / "metric_by_depth.png", dict(depth_curves), measure))
        points = {n: (self.latency(i)[0], evaluations[i].aggregate[measure]) for i, n in enumerate(self.names)}
        images.append(plots.effectiveness_vs_latency(directory / "effectiveness_vs_latency.png", points, measure))
        (directory / "results.json").write_text(self.to_json())
        figures = "\n".join(
            f'<figure><img alt="{p.stem}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
            f"<figcaption>{p.stem.replace('_', ' ')}</figcaption></figure>" for p in images)
        pipelines = "\n".join(f"<li><b>{html.escape(n)}</b>: <code>{html.escape(repr(p))}</code></li>"
                              for n, p in zip(self.names, self.pipelines))
        page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>rankstack experiment</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}} pre{{background:#f4f4f4;padding:1em}}
figure{{margin:1em 0}} img{{max-width:100%}}</style></head>
<body><h1>rankstack experiment</h1>
<p>{len(self.queries)} queries; measures: {', '.join(self.measures)}; latency: queries run one at a time.</p>
<pre>{html.escape(self.table())}</pre>
<h2>Pipelines</h2><ul>{pipelines}</ul>
<h2>Plots</h2>{figures}
<p>Full results, per query: <a href="results.json">results.json</a></p>
</body></html>"""
        (directory / "index.html").write_text(page, encoding="utf-8")
        return directory / "index.html"


#: The keys of an experiment config (README: "Experiments from a file"); the first four are required.
CONFIG_KEYS = ("queries", "qrels", "measures", "pipelines", "stages", "indexes", "baseline", "cache", "report",
               "latency_sample")


def run_config(path: str | Path) -> tuple[Experiment, Path | None]:
    """Run an experiment described by a JSON file; relative paths are relative to the file. Keys:

    queries, qrels: collection names or files; measures: list; indexes: {directory: corpus} BM25
    indexes built when missing; stages: {name: expression}; pipelines: {name: expression} (see
    rankstack.pipeline.config); baseline: a pipeline name; cache: a directory (optional); report: a
    directory (optional); latency_sample: queries timed one at a time (default 50).

    The config is checked whole before any work (unknown or misspelled keys, measures, the baseline, the plotting
    extra a report needs): a mistake costs nothing.
    """
    from rankstack.data import resolve

    path = Path(path)
    config = _read_config(path)
    root = path.parent
    _, pipelines = load_pipelines(config, root)
    notes = []
    if config.get("cache"):
        pipelines = {name: p.cached(root / config["cache"]) for name, p in pipelines.items()}
        notes.append(f"latencies time cache hits: each pipeline ran once over all queries, filling the cache "
                     f"({config['cache']}), before its queries were timed one at a time")
    names = list(pipelines)
    baseline = names.index(config["baseline"]) if "baseline" in config else 0
    queries, qrels = _resolve(config["queries"], root, resolve.queries), _resolve(config["qrels"], root, resolve.qrels)
    experiment = Experiment(pipelines, queries.subset(qrels) if len(queries) else queries, qrels,
                            config["measures"], baseline=baseline, latency_sample=config.get("latency_sample", 50),
                            notes=notes)
    report = experiment.report(root / config["report"]) if config.get("report") else None
    return experiment, report


def load_pipelines(config: Mapping, root: Path) -> tuple[dict[str, Stage], dict[str, Stage]]:
    """The named stages and pipelines of a config (keys `indexes`, `stages`, `pipelines`; see `run_config`),
    after building the BM25 indexes it lists that are missing. Relative paths are relative to `root`. Shared by
    `rankstack experiment` and `rankstack serve`."""
    from rankstack.data import resolve
    from rankstack.pipeline.config import parse
    from rankstack.retrieve.bm25 import BM25

    for directory, corpus in config.get("indexes", {}).items():
        if not (root / directory / "manifest.json").exists():
            BM25.build(_resolve(corpus, root, resolve.corpus), root / directory)
    stages: dict[str, Stage] = {}
    with _working_directory(root):
        for name, expression in config.get("stages", {}).items():
            stages[name] = parse(expression, stages)
        pipelines = {name: parse(expression, stages) for name, expression in config["pipelines"].items()}
    return stages, pipelines


def _read_config(path: Path) -> dict:
    """The config, checked: JSON object, known keys (a misspelling names its closest key), required keys, value
    types, measures, the baseline among the pipelines, and matplotlib when a report is asked for."""
    import difflib
    import importlib.util

    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read experiment config ({e})", path) from None
    if not isinstance(config, dict):
        raise InputError("an experiment config is a JSON object (see the README's example)", path)
    for key in config:
        if key not in CONFIG_KEYS:
            close = difflib.get_close_matches(key, CONFIG_KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise InputError(f"unknown key {key!r}; {hint}keys: {', '.join(CONFIG_KEYS)}", path)
    missing = [key for key in CONFIG_KEYS[:4] if key not in config]
    if missing:
        raise InputError(f"experiment config lacks {missing}", path)
    for key, kind in (("queries", str), ("qrels", str), ("measures", list), ("pipelines", dict), ("stages", dict),
                      ("indexes", dict), ("baseline", str), ("cache", str), ("report", str), ("latency_sample", int)):
        if key in config and not isinstance(config[key], kind):
            expected = {str: "a string", int: "an integer", list: "a list", dict: "an object"}[kind]
            raise InputError(f"{key!r} must be {expected}, got {json.dumps(config[key])[:60]}", path)
    if not config["pipelines"]:
        raise InputError("'pipelines' is empty: name at least one pipeline", path)
    parse_measures(config["measures"])
    if "baseline" in config and config["baseline"] not in config["pipelines"]:
        raise InputError(f"baseline {config['baseline']!r} is not one of the pipelines "
                         f"({', '.join(map(repr, config['pipelines']))})", path)
    if config.get("report") and importlib.util.find_spec("matplotlib") is None:
        raise InputError("'report' needs matplotlib for its plots: pip install 'rankstack[report]' (or drop "
                         "'report')", path)
    return config


def _resolve(value: str, root: Path, reader):
    """A collection name, or a file relative to the config."""
    return reader(str(root / value) if (root / value).exists() else value)


class _working_directory:
    """Relative index paths in stage expressions resolve against the config's folder."""

    def __init__(self, path: Path):
        self.path, self.previous = path, None

    def __enter__(self):
        import os

        self.previous = os.getcwd()
        os.chdir(self.path)

    def __exit__(self, *exc):
        import os

        os.chdir(self.previous)
