"""rankstack serve under load on loopback: SciFact, BM25 and BM25 >> dense rescoring (all-MiniLM-L6-v2).

Two benchmarks, each one bounded command:

    PYTHONPATH=src python bench/bench_serve.py batching   # 64 clients on BM25 >> dense, micro-batching on vs off
    PYTHONPATH=src python bench/bench_serve.py load       # 1, 8, 64 clients on BM25 and on BM25 >> dense

Each client is an asyncio task with its own keep-alive HTTP/1.1 connection (a minimal client on asyncio streams,
so that the load generator costs the server as little CPU as possible), sending SciFact's test queries in turn
(POST /api/search, k=10) for `--seconds` after `--warmup` seconds, one request at a time. Reported: requests/s,
p50 and p99 latency, errors (any answer but 200). `batching` alternates the two servers (`--rounds` times each,
both started once) so that other load on the machine falls on both alike; it also reads the servers' metrics for
the mean model batch. The first run builds the indexes under bench/out/serve/ (BM25: seconds; MiniLM over 5,183
abstracts: minutes on a small CPU); later runs reuse them. Results: one JSON object on stdout and in bench/out/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
WORK = OUT / "serve"
MINILM = "models/sentence-transformers__all-MiniLM-L6-v2"
SHARED = [Path(os.environ["RANKSTACK_SHARED"])] if os.environ.get("RANKSTACK_SHARED") else \
    [REPO.parent / "shared", REPO.parent.parent / "shared"]
PIPELINES = {"BM25": "bm25 % 10", "BM25 >> dense": "bm25 % 100 >> BiEncoder(index=dense)"}


def shared(rel: str) -> Path:
    for root in SHARED:
        if (root / rel).exists():
            return root / rel
    sys.exit(f"not found: {rel} under {', '.join(map(str, SHARED))} (set RANKSTACK_SHARED)")


# --- set-up ---------------------------------------------------------------------------------------------------


def build_indexes(model: Path) -> None:
    """BM25 and MiniLM (Flat, inner product) indexes of SciFact under WORK, unless there already."""
    from rankstack.data import datasets
    from rankstack.retrieve.bm25 import BM25
    from rankstack.retrieve.dense import Dense

    corpus = datasets.load("beir/scifact").corpus
    if not (WORK / "bm25" / "manifest.json").exists():
        BM25.build(corpus, WORK / "bm25", overwrite=True)
    if not (WORK / "minilm" / "manifest.json").exists():
        start = time.perf_counter()
        Dense.build(corpus, WORK / "minilm", str(model), overwrite=True)
        print(f"encoded SciFact with MiniLM in {time.perf_counter() - start:.0f}s", file=sys.stderr)


def write_config(name: str, batching: bool, model_threads: int | None) -> Path:
    config = {"stages": {"bm25": "BM25('bm25')", "dense": "Dense('minilm')"}, "pipelines": PIPELINES,
              "serve": {"threads": 96, "batching": {"window_ms": 2, "max_items": 256} if batching else False,
                        "model_threads": model_threads, "limits": {"request_seconds": 120}}}
    path = WORK / f"{name}.json"
    path.write_text(json.dumps(config, indent=1))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, config: Path):
        self.port = free_port()
        env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
        self.log = open(WORK / f"{config.stem}.log", "w")
        self.process = subprocess.Popen([sys.executable, "-m", "rankstack.cli", "serve", str(config), "--port",
                                         str(self.port), "--log-level", "warning"], stdout=self.log,
                                        stderr=subprocess.STDOUT, env=env)

    async def wait_ready(self, timeout: float = 300) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.process.poll() is not None:
                sys.exit(f"the server exited: see {self.log.name}")
            try:
                conn = await Connection.open(self.port)
                status, _ = await conn.request("GET", "/ready")
                conn.close()
                if status == 200:
                    return
            except OSError:
                pass
            await asyncio.sleep(0.5)
        sys.exit(f"the server was not ready after {timeout}s: see {self.log.name}")

    async def metrics(self) -> str:
        conn = await Connection.open(self.port)
        _, body = await conn.request("GET", "/metrics")
        conn.close()
        return body.decode()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


# --- the load generator ---------------------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1 (Content-Length bodies, as the server sends)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int):
        self.reader, self.writer, self.port = reader, writer, port

    @classmethod
    async def open(cls, port: int) -> "Connection":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, port)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(port: int, pipeline: str, queries: list[str], clients: int, seconds: float, warmup: float,
               pid: int | None = None) -> dict:
    """`clients` concurrent clients for warmup + seconds; statistics of the requests that ended after the warm-up,
    and the server's CPU time per request over the measured window (`pid`: the server process)."""
    bodies = [json.dumps({"query": q, "pipeline": pipeline, "k": 10}).encode() for q in queries]
    start = time.perf_counter()
    measure_from, end = start + warmup, start + warmup + seconds
    latencies: list[float] = []
    errors = {"count": 0, "examples": []}
    cpu: list[float] = []

    async def sample(at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        if pid is not None:
            cpu.append(cpu_seconds(pid))

    samplers = [asyncio.create_task(sample(measure_from)), asyncio.create_task(sample(end))]

    async def client(i: int) -> None:
        conn = await Connection.open(port)
        n = i
        while True:
            sent = time.perf_counter()
            if sent >= end:
                break
            try:
                status, body = await conn.request("POST", "/api/search", bodies[n % len(bodies)])
            except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                status, body = -1, repr(e).encode()
                conn.close()
                conn = await Connection.open(port)
            done = time.perf_counter()
            if done >= measure_from and sent < end:
                if status == 200:
                    latencies.append(done - sent)
                else:
                    errors["count"] += 1
                    if len(errors["examples"]) < 3:
                        errors["examples"].append(f"{status}: {body[:200].decode(errors='replace')}")
            n += clients
        conn.close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    await asyncio.gather(*samplers)
    window = end - measure_from
    lat = np.array(latencies) * 1000
    cpu_ms = round((cpu[1] - cpu[0]) * 1000 / len(latencies), 2) if len(cpu) == 2 and latencies else None
    return {"pipeline": pipeline, "clients": clients, "requests": len(latencies), "seconds": round(window, 2),
            "requests_per_s": round(len(latencies) / window, 1), "server_cpu_ms_per_request": cpu_ms,
            "p50_ms": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 2) if len(lat) else None,
            "errors": errors["count"], "error_examples": errors["examples"]}


def batch_means(metrics: str) -> dict[str, float]:
    """Mean items and requests per model batch, by model, from the Prometheus text."""
    sums = {}
    for kind in ("items", "requests"):
        for model, total in re.findall(rf'rankstack_batch_{kind}_sum{{model="([^"]+)"}} (\S+)', metrics):
            count = re.search(rf'rankstack_batch_{kind}_count{{model="{re.escape(model)}"}} (\S+)', metrics)
            if count and float(count.group(1)):
                sums[f"{model} {kind}/batch"] = round(float(total) / float(count.group(1)), 1)
    return sums


# --- the two benchmarks -----------------------------------------------------------------------------------


async def bench_batching(args, queries: list[str]) -> dict:
    servers = {"batched": Server(write_config("batched", True, args.model_threads)),
               "unbatched": Server(write_config("unbatched", False, args.model_threads))}
    try:
        for server in servers.values():
            await server.wait_ready()
        rounds = []
        for r in range(args.rounds):
            for name, server in servers.items():
                result = await load(server.port, "BM25 >> dense", queries, args.clients, args.seconds, args.warmup,
                                    server.process.pid)
                rounds.append({"server": name, "round": r + 1, **result})
                print(json.dumps(rounds[-1]), file=sys.stderr)
        batches = batch_means(await servers["batched"].metrics())
    finally:
        for server in servers.values():
            server.stop()
    summary = {}
    for name in servers:
        mine = [x for x in rounds if x["server"] == name]
        summary[name] = {"requests_per_s": round(float(np.median([x["requests_per_s"] for x in mine])), 1),
                         "p50_ms": round(float(np.median([x["p50_ms"] for x in mine])), 1),
                         "p99_ms": round(float(np.median([x["p99_ms"] for x in mine])), 1),
                         "server_cpu_ms_per_request": round(float(np.median([x["server_cpu_ms_per_request"]
                                                                              for x in mine])), 2),
                         "errors": sum(x["errors"] for x in mine)}
    summary["speedup"] = round(summary["batched"]["requests_per_s"] / summary["unbatched"]["requests_per_s"], 2)
    return {"benchmark": "micro-batching", "pipeline": PIPELINES["BM25 >> dense"], "clients": args.clients,
            "summary": summary, "batched_server_batches": batches, "rounds": rounds}


async def bench_load(args, queries: list[str]) -> dict:
    server = Server(write_config("load", True, args.model_threads))
    results = []
    try:
        await server.wait_ready()
        for pipeline in PIPELINES:
            for clients in args.concurrency:
                results.append(await load(server.port, pipeline, queries, clients, args.seconds, args.warmup,
                                          server.process.pid))
                print(json.dumps(results[-1]), file=sys.stderr)
        batches = batch_means(await server.metrics())
    finally:
        server.stop()
    return {"benchmark": "load", "pipelines": PIPELINES, "results": results, "batches": batches}


def table(result: dict) -> str:
    if result["benchmark"] == "load":
        rows = [f"{'pipeline':<16}{'clients':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/req':>11}"
                f"{'errors':>8}"]
        rows += [f"{r['pipeline']:<16}{r['clients']:>8}{r['requests_per_s']:>9.1f}{r['p50_ms']:>9.1f}"
                 f"{r['p99_ms']:>9.1f}{r['server_cpu_ms_per_request']:>11.2f}{r['errors']:>8}"
                 for r in result["results"]]
    else:
        s = result["summary"]
        rows = [f"{'server':<12}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/req':>11}{'errors':>8}"]
        rows += [f"{name:<12}{s[name]['requests_per_s']:>9.1f}{s[name]['p50_ms']:>9.1f}{s[name]['p99_ms']:>9.1f}"
                 f"{s[name]['server_cpu_ms_per_request']:>11.2f}{s[name]['errors']:>8}"
                 for name in ("batched", "unbatched")]
        rows.append(f"speed-up {s['speedup']}x; batches: {result['batched_server_batches']}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmark", choices=["batching", "load"])
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds per setting "
                                                                    "(default: 20 for batching, 12 for load)")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=64, help="batching: concurrent clients")
    parser.add_argument("--rounds", type=int, default=2, help="batching: alternations of the two servers")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64], help="load: client counts")
    parser.add_argument("--model", default=None, help=f"MiniLM folder (default: shared/{MINILM})")
    parser.add_argument("--model-threads", type=int, default=None,
                        help="the servers' torch threads (default: torch's, one per core; 1 where other jobs share "
                             "the machine: OpenMP threads spin waiting for descheduled partners)")
    args = parser.parse_args()
    args.seconds = args.seconds or (20.0 if args.benchmark == "batching" else 12.0)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(REPO / "src"))
    WORK.mkdir(parents=True, exist_ok=True)
    build_indexes(Path(args.model) if args.model else shared(MINILM))
    from rankstack.data import datasets

    queries = list(datasets.load("beir/scifact").queries.values())
    run = bench_batching if args.benchmark == "batching" else bench_load
    result = {**asyncio.run(run(args, queries)), "cpus": os.cpu_count(),
              "command": "python bench/bench_serve.py " + " ".join(sys.argv[1:])}
    (OUT / f"serve_{args.benchmark}.json").write_text(json.dumps(result, indent=1))
    print(table(result), file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
