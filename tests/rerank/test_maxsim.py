"""MaxSim reranker: exact scores, every candidate kept once, only the top `depth` reordered; texts or index."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from rankstack.data.corpus import Document  # noqa: E402
from rankstack.data.queries import Queries  # noqa: E402
from rankstack.data.run import Run  # noqa: E402
from rankstack.errors import InputError  # noqa: E402
from rankstack.pipeline.config import parse  # noqa: E402
from rankstack.rerank.maxsim import MaxSim  # noqa: E402
from rankstack.rerank.texts import CorpusTexts  # noqa: E402
from rankstack.retrieve.late import LateInteraction  # noqa: E402

from .conftest import MODELS  # noqa: E402

MINILM = MODELS / "sentence-transformers__all-MiniLM-L6-v2"
DOCS = [Document(f"d{i}", text) for i, text in enumerate([
    "Vitamin D supplementation and bone mineral density in older adults.",
    "Smoking increases the risk of lung cancer.",
    "The tumour suppressor p53 regulates apoptosis and DNA repair.",
    "Microbiome diversity predicts response to immunotherapy.",
    "Statins lower LDL cholesterol and cardiovascular events.",
    "Aspirin reduces the risk of colorectal cancer.",
    "Sleep deprivation impairs memory consolidation.",
    "Exercise improves insulin sensitivity in type 2 diabetes.",
])]
QUERIES = Queries({"q1": "does smoking cause lung cancer", "q2": "vitamin D and bones", "q3": "sleep and memory",
                   "q4": "no candidates"})
# Candidates in a deliberately poor order, of several lengths (q3 shorter than depth, q4 none).
CANDIDATES = Run.from_dict({"q1": {f"d{i}": 8.0 - i for i in (7, 6, 5, 4, 3, 2, 1, 0)},
                            "q2": {f"d{i}": 8.0 - i for i in (5, 4, 3, 2, 1, 0)},
                            "q3": {"d0": 2.0, "d6": 1.0}, "q4": {}})


@pytest.fixture(scope="module")
def encoder():
    if not MINILM.is_dir():
        pytest.skip(f"model folder not found: {MINILM}")
    from rankstack.encoders import MultiVectorEncoder
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield MultiVectorEncoder(MINILM, projection=None, query_length=16, device="cpu", progress=False)
    torch.set_num_threads(before)


def reference(encoder, vectors_of, qid, doc_ids):
    """MaxSim by hand: numpy over the query's and documents' token vectors."""
    q = encoder.encode_queries([QUERIES[qid]])[0]
    return {d: float((q @ vectors_of(d).T).max(1).sum()) for d in doc_ids}


def check_rerank(run, encoder, vectors_of, depth):
    for qid in QUERIES:
        before = CANDIDATES.ids(qid)
        after = run.ids(qid)
        assert sorted(after) == sorted(before) and len(set(after)) == len(after)  # none lost or duplicated
        head = before[:depth]
        assert after[depth:] == before[depth:]  # below depth: the original order
        expected = reference(encoder, vectors_of, qid, head)
        assert after[:len(head)] == sorted(head, key=lambda d: (-expected[d], CANDIDATES.ids(qid).index(d)))
        scores = run[qid].scores
        assert np.allclose(scores[:len(head)], [expected[d] for d in after[:len(head)]], atol=1e-4)
        assert (np.diff(scores) <= 0).all()


def test_rerank_from_texts(encoder):
    texts = {d.id: d.contents for d in DOCS}
    reranker = MaxSim(encoder, texts=CorpusTexts(DOCS), depth=3)
    run = reranker(QUERIES, CANDIDATES)
    check_rerank(run, encoder, lambda d: encoder.encode_documents([texts[d]])[0], 3)
    assert run.ids("q1")[0] == "d1"
    everything = MaxSim(encoder, texts=CorpusTexts(DOCS), depth=None)(QUERIES, CANDIDATES)
    check_rerank(everything, encoder, lambda d: encoder.encode_documents([texts[d]])[0], 100)
    assert everything.ids("q2")[0] == "d0"


def test_rerank_from_plaid_index(encoder, tmp_path):
    late = LateInteraction.build(DOCS, tmp_path / "plaid", encoder, num_centroids=8, nprobe=8, progress=False)
    reranker = MaxSim(str(MINILM), index=late, depth=4)
    run = reranker(QUERIES, CANDIDATES)
    check_rerank(run, encoder, lambda d: late.index.vectors(late.index.docnos([d]))[0], 4)
    assert isinstance(parse(repr(reranker)), MaxSim)
    piped = (late % 5 >> MaxSim(encoder, index=tmp_path / "plaid", depth=2))(QUERIES)
    assert [len(piped[q].docnos) for q in QUERIES] == [5, 5, 5, 5]


def test_errors(encoder, tmp_path):
    with pytest.raises(InputError, match="exactly one"):
        MaxSim(encoder)
    with pytest.raises(InputError, match="exactly one"):
        MaxSim(encoder, index=tmp_path, texts=CorpusTexts(DOCS))
    with pytest.raises(InputError, match="depth"):
        MaxSim(encoder, texts=CorpusTexts(DOCS), depth=0)
    unknown = Run.from_dict({"q1": {"d1": 1.0, "ghost": 0.5}})
    with pytest.raises(InputError, match="ghost"):
        MaxSim(encoder, texts=CorpusTexts(DOCS))(QUERIES, unknown)
    late = LateInteraction.build(DOCS[:4], tmp_path / "plaid", encoder, num_centroids=4, progress=False)
    with pytest.raises(InputError, match="'d[4-7]' is not in the index"):
        MaxSim(encoder, index=late)(QUERIES, CANDIDATES)
    with pytest.raises(InputError, match="candidate run"):
        MaxSim(encoder, index=late)(QUERIES)
