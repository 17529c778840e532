"""BM25.search, the per-query path that skips the Run, answers exactly as the stage does for a batch."""

from __future__ import annotations

import pytest

from rankstack import BM25, Document
from rankstack.errors import InputError
from rankstack.pipeline.stage import Stage

WORDS = "cat dog zebra stripes fast slow river bank money tree leaf green blue red".split()


@pytest.fixture(scope="module")
def bm25(tmp_path_factory):
    import random
    rng = random.Random(3)
    docs = [Document(f"d{i}", " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12)))) for i in range(400)]
    stage = BM25.build(docs, tmp_path_factory.mktemp("bm25") / "index", progress=False)
    stage.add([Document(f"e{i}", " ".join(rng.choice(WORDS) for _ in range(5))) for i in range(50)])  # 2 segments
    return stage


@pytest.mark.parametrize("query", ["cat", "zebra stripes river", "green green tree", "unknownword", "cat unknownword"])
@pytest.mark.parametrize("k", [1, 3, 10, 1000])
def test_one_query_equals_the_stage(bm25, query, k):
    assert bm25.search(query, k) == Stage.search(bm25, query, k)
    assert bm25.search(query, k) == (bm25 % k)({"q": query}).hits("q")


def test_one_query_checks_its_input(bm25):
    for query, k in [(123, 10), ("  ", 10), ("cat", 0), ("cat", 2.5)]:
        with pytest.raises(InputError):
            bm25.search(query, k)
