"""Damaged index files: a clear IndexFormatError or the very same results, never a crash or a silent change.

Each case damages a copy of a small index (one flipped byte, or a file cut short) and searches it in a worker
process (tests/index/damage.py), so that a segfault or a heap abort is caught and counted. bench/soak.py runs
thousands of such cases and the kill tests; the README gives its counts.
"""

import random

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.index import damage

CASES_PER_KIND = 25


@pytest.fixture(scope="module")
def worker():
    w = damage.Worker()
    yield w
    w.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory, worker):
    pytest.importorskip("faiss")
    out = {}
    for kind in damage.KINDS:
        path = tmp_path_factory.mktemp("built") / kind
        damage.build(kind, path)
        reference = worker.ask(kind, path)
        assert "results" in reference, reference
        out[kind] = (path, reference["results"])
    return out


@pytest.mark.parametrize("kind", damage.KINDS)
def test_damage_gives_a_clear_error_or_unchanged_results(kind, built, worker, tmp_path):
    path, reference = built[kind]

    @settings(max_examples=CASES_PER_KIND, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(seed=st.integers(0, 2**32 - 1))
    def case(seed):
        result, what, answer = damage.run_case(worker, kind, path, tmp_path / "copy", random.Random(seed), reference)
        assert result in ("unchanged", "error"), f"{what}: {result} {answer}"
        if result == "error":  # the message names the damaged file or the manifest, and how to check the rest
            assert "rankstack check" in answer["message"] or "manifest" in answer["message"], answer

    case()
