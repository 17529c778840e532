"""The driver that bench/ab_search.py and bench/ab_backends.py share: two source trees ("old", "new"), each in a
worker process of its own, take turns round after round, so that the noise of a shared machine falls on both.

A worker is Python code run with ``python -c``: it prints one JSON line when ready (its setup's figures), then,
for each "go" line on its stdin, one JSON object of figures (higher is better, e.g. queries/s).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

SIDES = ("old", "new")


def run(worker: str, trees: dict[str, str], argv: list[str], rounds: int, threads: int = 1
        ) -> tuple[dict[str, dict], dict[str, list[dict]]]:
    """(each side's ready line, each side's figures per round); `argv(side)` are the worker's arguments, with
    "{side}" in them replaced by the side's name. Numba may use `threads` threads, BLAS one."""
    workers, ready = {}, {}
    for side in SIDES:
        env = {"PYTHONPATH": str(Path(trees[side]).resolve()), "PATH": "/usr/bin:/bin",
               "NUMBA_NUM_THREADS": str(threads), "OMP_NUM_THREADS": "1"}
        workers[side] = subprocess.Popen([sys.executable, "-c", worker, *(a.format(side=side) for a in argv)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd="/tmp")
        ready[side] = json.loads(workers[side].stdout.readline())
    results: dict[str, list[dict]] = {side: [] for side in SIDES}
    for r in range(rounds):
        for side in (SIDES if r % 2 == 0 else SIDES[::-1]):
            workers[side].stdin.write("go\n")
            workers[side].stdin.flush()
            results[side].append(json.loads(workers[side].stdout.readline()))
    for w in workers.values():
        w.stdin.close()
        w.wait()
    return ready, results


def table(results: dict[str, list[dict]], keys) -> str:
    """Markdown: per key, each side's best and median over the rounds, and new/old of both."""
    lines = ["| | old best | old median | new best | new median | new/old (best) | new/old (median) |",
             "|---|---|---|---|---|---|---|"]
    for key in keys:
        o, n = [r[key] for r in results["old"]], [r[key] for r in results["new"]]
        lines.append(f"| {key} | {max(o):,.0f} | {statistics.median(o):,.0f} | {max(n):,.0f} | "
                     f"{statistics.median(n):,.0f} | {max(n) / max(o):.3f} | "
                     f"{statistics.median(n) / statistics.median(o):.3f} |")
    return "\n".join(lines)
