"""Plots for experiment reports (matplotlib, rendered off-screen to PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

SIZE = (8.0, 4.5)  # inches
DPI = 100  # so every plot is 800 x 450 pixels


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=SIZE, dpi=DPI)


def per_query_differences(path: Path, differences: dict[str, np.ndarray], measure: str, baseline: str) -> Path:
    """Per-query difference to the baseline, sorted, one curve per run."""
    plt, fig, ax = _figure()
    for name, diff in differences.items():
        ax.plot(np.sort(diff)[::-1], label=name, drawstyle="steps-mid")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set(xlabel="queries (sorted by difference)", ylabel=f"{measure} − baseline",
           title=f"Per-query {measure} difference to {baseline}")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def metric_by_depth(path: Path, curves: dict[str, tuple[Sequence[int], Sequence[float]]], measure: str) -> Path:
    """Effectiveness against rerank depth (or any cut-off), one curve per pipeline family."""
    plt, fig, ax = _figure()
    for name, (depths, values) in curves.items():
        ax.plot(depths, values, marker="o", label=name)
    positive = all(d > 0 for depths, _ in curves.values() for d in depths)
    ax.set(xscale="log" if positive else "linear", xlabel="rerank depth", ylabel=measure,
           title=f"{measure} against rerank depth")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def effectiveness_vs_latency(path: Path, points: dict[str, tuple[float, float]], measure: str) -> Path:
    """One point per pipeline: mean latency per query (ms, log scale) against the measure. Pipelines with no
    positive latency (never timed, or served from a cache in no measurable time) stand at the left edge, marked."""
    plt, fig, ax = _figure()
    timed = [latency for latency, _ in points.values() if np.isfinite(latency) and latency > 0]
    floor = min(timed) / 10 if timed else 1.0
    for name, (latency, value) in points.items():
        untimed = not (np.isfinite(latency) and latency > 0)
        x = floor if untimed else latency
        ax.scatter([x], [value], s=40, marker="x" if untimed else "o")
        label = f"{name} (no latency measured)" if untimed else name
        ax.annotate(label, (x, value), textcoords="offset points", xytext=(5, 5), fontsize="small")
    ax.set(xscale="log" if timed else "linear", xlabel="mean latency per query (ms)", ylabel=measure,
           title=f"{measure} against latency")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
