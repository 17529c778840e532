import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("RANKSTACK_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared test collections not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster for every test that needs one (tests/distributed, the service on Ray): head and worker
    processes on this machine, 2 CPUs, no dashboard, a small object store; started at first use, stopped at the
    end of the session. Yields the `ray` module."""
    ray = pytest.importorskip("ray")
    from rankstack import distributed

    distributed.init(num_cpus=2, object_store_mb=256)
    yield ray
    ray.shutdown()
