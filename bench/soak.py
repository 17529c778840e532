"""Reliability soak: thousands of damaged index files, hundreds of killed writers, readers opening under writers.

    .venv/bin/python bench/soak.py --damages 1000 --kills 50 --seconds 60

- Damages: for each index type, a small index (tests/index/damage.py) is copied, one byte of one file flipped (or
  the file cut short), and searched in a worker process. Outcomes per file kind: the same results, a clear
  IndexFormatError, or a failure (other results, another exception, a crash of the worker).
- Kills: a writer of each type commits in a loop and is killed (SIGKILL) after a random delay; the index must open
  at the last commit (or the one being published), search, and keep no stray file after the next writer.
- Concurrent opens: a writer commits continuously while this process opens and searches snapshots.
Prints markdown tables (the README's reliability section) and writes bench/out/soak.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.index import damage, kills  # noqa: E402

FILE_KINDS = [(r"^manifest\.json$", "manifest"), (r"^seg_", "segment"), (r"^del_", "tombstones"),
              (r"\.faiss$", "FAISS index"), (r"^vec_", "ids + vectors"), (r"^codec_", "PLAID codec"),
              (r"^chunk_", "PLAID chunk"), (r"^data_", "Seismic data"), (r"^file_", "index file")]


def file_kind(description: str) -> str:
    name = re.search(r"(?:of|truncated) (\S+)", description).group(1)
    return next(kind for pattern, kind in FILE_KINDS if re.search(pattern, name))


def soak_damages(n: int, tmp: Path, seed: int) -> dict:
    worker = damage.Worker()
    table: dict = collections.defaultdict(collections.Counter)
    failures = []
    try:
        for kind in damage.KINDS:
            path = tmp / kind
            damage.build(kind, path)
            reference = worker.ask(kind, path)["results"]
            rng = random.Random(seed)
            for _ in range(n):
                result, what, answer = damage.run_case(worker, kind, path, tmp / "copy", rng, reference)
                table[(kind, file_kind(what))][result] += 1
                if result not in ("unchanged", "error"):
                    failures.append({"kind": kind, "damage": what, "outcome": result, "answer": str(answer)[:500]})
    finally:
        worker.close()
    return {"table": {f"{k} / {f}": dict(c) for (k, f), c in sorted(table.items())}, "failures": failures}


def soak_kills(n: int, tmp: Path, seed: int) -> dict:
    rng = random.Random(seed)
    table, failures = {}, []
    for kind in kills.KINDS:
        counts = collections.Counter()
        for trial in range(n):
            path = tmp / f"kill-{kind}-{trial}"
            delay = rng.uniform(0, 0.6)
            try:
                allowed, found, stray = kills.kill_once(kind, path, delay)
            except Exception as e:  # noqa: BLE001 - counted and reported
                counts["failed to open"] += 1
                failures.append({"kind": kind, "delay": delay, "error": repr(e)[:500]})
                continue
            counts["kills"] += 1
            counts["died mid-commit"] += len(allowed) > 1
            counts["lost committed documents"] += found not in allowed
            counts["stray files after the next writer"] += bool(stray)
            if found not in allowed or stray:
                failures.append({"kind": kind, "delay": delay, "allowed": sorted(allowed), "found": found,
                                 "stray": sorted(stray)})
        table[kind] = dict(counts)
    return {"table": table, "failures": failures}


def soak_concurrent(seconds: float, tmp: Path) -> dict:
    table, failures = {}, []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for kind in kills.KINDS:
        path = tmp / f"concurrent-{kind}"
        proc = subprocess.Popen([sys.executable, "-c", f"PATH = {str(path)!r}\n" + kills.WRITERS[kind]],
                                stdout=subprocess.PIPE, text=True, env=env)
        while proc.stdout.readline().split()[0] != "c":
            pass
        commits = collections.Counter()
        drain = threading.Thread(target=lambda: commits.update(line.split()[0] for line in proc.stdout), daemon=True)
        drain.start()
        opens = errors = 0
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                try:
                    kills.live_count(kind, path)
                    opens += 1
                except Exception as e:  # noqa: BLE001 - counted and reported
                    errors += 1
                    failures.append({"kind": kind, "error": repr(e)[:500]})
                if proc.poll() is not None:
                    raise RuntimeError(f"the {kind} writer died")
        finally:
            proc.kill()
            proc.wait()
        table[kind] = {"opens": opens, "failures": errors, "commits": commits["c"]}
    return {"table": table, "failures": failures}


def markdown(results: dict) -> str:
    lines = ["Damages (one flipped byte or a truncated file per case):", "",
             "| index / file | cases | unchanged results | clear error | wrong results | other exception | crash |",
             "|---|---|---|---|---|---|---|"]
    for name, c in results["damages"]["table"].items():
        lines.append(f"| {name} | {sum(c.values())} | {c.get('unchanged', 0)} | {c.get('error', 0)} | "
                     f"{c.get('wrong', 0)} | {c.get('exception', 0)} | {c.get('crash', 0)} |")
    lines += ["", "Killed writers (SIGKILL after a random delay of 0-0.6 s):", "",
              "| index | kills | died mid-commit | lost committed documents | stray files after the next writer |",
              "|---|---|---|---|---|"]
    for kind, c in results["kills"]["table"].items():
        lines.append(f"| {kind} | {c.get('kills', 0)} | {c.get('died mid-commit', 0)} | "
                     f"{c.get('lost committed documents', 0)} | {c.get('stray files after the next writer', 0)} |")
    lines += ["", "Readers opening and searching snapshots while a writer commits continuously:", "",
              "| index | writer's commits | reader opens | failures |", "|---|---|---|---|"]
    for kind, c in results["concurrent"]["table"].items():
        lines.append(f"| {kind} | {c['commits']} | {c['opens']} | {c['failures']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--damages", type=int, default=1000, help="damaged copies per index type")
    parser.add_argument("--kills", type=int, default=50, help="killed writers per index type")
    parser.add_argument("--seconds", type=float, default=60, help="seconds of concurrent opens per index type")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=str(ROOT / "bench" / "out" / "soak.json"))
    args = parser.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rankstack-soak-") as tmp:
        tmp = Path(tmp)
        results = {"damages": soak_damages(args.damages, tmp, args.seed),
                   "kills": soak_kills(args.kills, tmp, args.seed),
                   "concurrent": soak_concurrent(args.seconds, tmp)}
    results["seconds"] = round(time.perf_counter() - start, 1)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=1))
    print(markdown(results))
    failures = sum(len(results[k]["failures"]) for k in ("damages", "kills", "concurrent"))
    print(f"\n{failures} failures in {results['seconds']} s; details in {args.output}")


if __name__ == "__main__":
    main()
