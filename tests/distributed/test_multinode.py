"""Several Ray nodes on this machine (tests/distributed/multinode_job.py, in its own process and cluster): a
distributed build that loses a worker node, replicas laid out on different nodes, and a node lost during a batch
of searches, with every answer the same as one node's."""

import json
import subprocess
import sys
from pathlib import Path

from .conftest import SCIFACT

JOB = Path(__file__).with_name("multinode_job.py")


def test_a_lost_node_costs_no_document_and_no_answer(tmp_path):
    done = subprocess.run([sys.executable, str(JOB), str(SCIFACT), str(SCIFACT.with_name("queries.jsonl.gz")),
                           str(tmp_path)], capture_output=True, text=True, timeout=600)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines, (done.stdout[-3000:], done.stderr[-3000:])
    seen = json.loads(lines[-1])
    assert seen["nodes"] == 3
    assert seen["build_lost_node"] and seen["build_docs"] == seen["single_docs"] == 5183  # none lost or duplicated
    assert seen["replicas_on_distinct_nodes"] and seen["nodes_used"] == 3
    assert seen["same_as_one_node"]
    assert seen["search_lost_node"] and seen["failures_retried"] >= 1
    assert seen["same_after_node_loss"] and seen["answers_from_live_nodes"] and seen["servers_on_live_nodes"]
