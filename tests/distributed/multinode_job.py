"""A multi-node Ray cluster on this machine (a head and two worker nodes, each its own raylet and object store on
loopback, as Ray's own tests build them), in its own process so that it does not meet the session's cluster:

1. a distributed BM25 build whose worker node dies while it encodes parts: no document lost or duplicated;
2. a 2-shard index served by 2 replicas a shard, spread over the nodes: the same hits and scores as one node;
3. a worker node lost while a batch runs: every answer complete and unchanged, the shard servers it hosted
   restarted on the nodes left.

    python tests/distributed/multinode_job.py CORPUS QUERIES WORKDIR   (prints one JSON line: what it saw)

tests/distributed/test_multinode.py runs it and checks what it prints.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from ray.cluster_utils import Cluster

from rankstack import BM25, Queries, distributed
from rankstack.distributed import ShardedBM25
from rankstack.distributed.cluster import ray_module, shutdown

NODE = {"num_cpus": 1, "object_store_memory": 80 << 20}
# a lost node noticed within ~3 s instead of Ray's default ~15-30 s (what a test can wait for)
DETECTION = {"health_check_initial_delay_ms": 1000, "health_check_period_ms": 1000, "health_check_failure_threshold": 3}


def node_of(pool, shard: int, replica: int) -> str:
    return pool.ray.get(pool.actors[shard][replica].status.remote())["node"]


def lose_node_while(cluster: Cluster, nodes: dict, busy, work) -> tuple[object, str]:
    """Run `work()` in a thread; once `busy()` names a node id, remove that worker node; (work's result, node)."""
    out: dict = {}
    thread = threading.Thread(target=lambda: out.update(result=work()))
    thread.start()
    lost = None
    deadline = time.time() + 120
    while lost is None and thread.is_alive() and time.time() < deadline:
        node_id = busy()
        if node_id in nodes:
            cluster.remove_node(nodes.pop(node_id), allow_graceful=False)
            lost = node_id
        else:
            time.sleep(0.01)
    thread.join()
    return out.get("result"), lost


def main(corpus: str, queries_file: str, workdir: str) -> None:
    work = Path(workdir)
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False,
                                                                "_system_config": DETECTION})
    nodes = {}
    for _ in range(2):
        node = cluster.add_node(**NODE)
        nodes[node.node_id] = node
    cluster.wait_for_nodes()
    distributed.init(address=cluster.address)
    ray = ray_module()
    report: dict = {"nodes": len(ray.nodes())}
    start = time.monotonic()

    def lap(name: str) -> None:
        report.setdefault("seconds", {})[name] = round(time.monotonic() - start, 1)
    try:
        # 1. a worker node dies while the build encodes its parts (parts of 250 documents: 21 parts)
        parts = work / "parts"

        def encoding_node():
            done = list(parts.glob("part-*.json")) if parts.exists() else []
            if not done:
                return None
            alive = [n for n in ray.nodes() if n["Alive"] and n["NodeID"] in nodes]
            return alive[0]["NodeID"] if alive else None

        index, lost = lose_node_while(cluster, nodes, encoding_node, lambda: distributed.build(
            corpus, work / "sharded", "bm25", shards=2, part_size=250, workers=3, parts=parts, progress=False))
        report["build_lost_node"] = lost is not None
        report["build_docs"] = sum(s.num_docs for s in index.shards) if index is not None else None
        lap("build")
        single = BM25.build(corpus, work / "single", progress=False)
        report["single_docs"] = single.index.num_docs
        fresh = cluster.add_node(**NODE)  # a node in place of the lost one
        nodes[fresh.node_id] = fresh
        cluster.wait_for_nodes()

        # 2. two replicas a shard, spread over the nodes: the same hits and scores as one node
        texts = list(Queries.read(queries_file).values())
        batch = Queries({f"q{i}": texts[i % len(texts)] for i in range(3000)})
        stage = ShardedBM25(index.path, replicas=2, algorithm="exhaustive")
        placement = [[node_of(stage.pool, s, r) for r in range(2)] for s in range(2)]
        report["replicas_on_distinct_nodes"] = all(len(set(p)) == 2 for p in placement)
        report["nodes_used"] = len({n for p in placement for n in p})
        expected = single.at_depth(1000)(batch)
        report["same_as_one_node"] = same_runs(stage(batch), expected)
        lap("served")

        # 3. the worker node of a busy shard server is lost while the batch runs
        def searching_node():
            for replicas in stage.pool.actors:
                for status in ray.get([a.status.remote() for a in replicas]):
                    if status["busy"] and status["node"] in nodes:
                        return status["node"]
            return None

        run, lost = lose_node_while(cluster, nodes, searching_node, lambda: stage(batch))
        report["search_lost_node"] = lost is not None
        report["same_after_node_loss"] = run is not None and same_runs(run, expected)
        report["failures_retried"] = stage.pool.failures
        lap("node lost")
        report["answers_from_live_nodes"] = same_runs(stage(batch), expected)
        alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        report["servers_on_live_nodes"] = all(node_of(stage.pool, s, r) in alive for s in range(2) for r in range(2))
        stage.close()
    finally:
        shutdown()
        cluster.shutdown()
    print(json.dumps(report))


def same_runs(a, b) -> bool:
    return list(a) == list(b) and all(a.ids(q) == b.ids(q) and a[q].scores.tobytes() == b[q].scores.tobytes()
                                      for q in a)


if __name__ == "__main__":
    main(*sys.argv[1:4])
