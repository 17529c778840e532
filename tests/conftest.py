import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("RANKSTACK_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared test collections not found at {SHARED_DATA}")
    return SHARED_DATA
