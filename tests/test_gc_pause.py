import gc
import threading

import pytest

from rankstack import BM25, Document
from rankstack.gc_pause import gc_paused


@pytest.fixture
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    gc.enable() if was else gc.disable()


def test_pauses_nest_and_restore_the_collector(collector_on):
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()
    with pytest.raises(ValueError), gc_paused():
        raise ValueError
    assert gc.isenabled()
    gc.disable()
    with gc_paused():
        pass
    assert not gc.isenabled()  # a collector that was off stays off


def test_overlapping_pauses_in_threads_restore_it_once_all_end(collector_on):
    inside, release = threading.Event(), threading.Event()

    def worker():
        with gc_paused():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=worker)
    with gc_paused():
        thread.start()
        inside.wait(10)
    assert not gc.isenabled()  # the thread's pause is still open
    release.set()
    thread.join(10)
    assert gc.isenabled()


def test_a_build_leaves_the_collector_as_it_was(collector_on, tmp_path):
    docs = [Document(f"d{i}", f"text {i}") for i in range(50)]
    BM25.build(docs, tmp_path / "one", progress=False)
    BM25.build(docs, tmp_path / "two", progress=False, workers=2)
    assert gc.isenabled()
    with pytest.raises(Exception, match="duplicate document id"):
        BM25.build(docs + docs[:1], tmp_path / "three", progress=False)
    assert gc.isenabled()
