"""Writers of every index type killed at random moments lose nothing committed and leave nothing behind."""

import pytest

from tests.index import kills


@pytest.mark.parametrize("kind", kills.KINDS)
def test_a_killed_writer_leaves_its_last_commit(kind, tmp_path):
    if kind == "dense":
        pytest.importorskip("faiss")
    for trial, delay in enumerate([0.0, 0.03, 0.15, 0.4]):
        allowed, found, stray = kills.kill_once(kind, tmp_path / f"idx{trial}", delay)
        assert found in allowed, (delay, allowed, found)
        assert not stray, stray
