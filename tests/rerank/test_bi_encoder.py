import pytest

from rankstack import Document, Queries, Run
from rankstack.errors import InputError
from rankstack.rerank import CorpusTexts
from rankstack.rerank.bi_encoder import BiEncoder
from tests.rerank.conftest import MODELS

MINILM, SPLADE = MODELS / "sentence-transformers__all-MiniLM-L6-v2", MODELS / "splade-tiny-msmarco"
DOCS = {"d1": "Fleas lay eggs on the host animal.", "d2": "Vitamin D and bone density in adults.",
        "d3": "The flea life cycle lasts weeks.", "d4": "Stock markets fell sharply on Monday.",
        "d5": "Cats need flea treatment every month."}
QUERIES = Queries({"q1": "how long is the flea life cycle", "q2": "bone health vitamins", "q3": "no candidates"})
RUN = Run.from_dict({"q1": {"d4": 5.0, "d1": 4.0, "d3": 3.0, "d5": 2.0, "d2": 1.0},
                     "q2": {"d1": 2.0, "d2": 1.0}, "q3": {}})


def _encoder(kind):
    from rankstack.encoders import DenseEncoder, SpladeEncoder

    folder = MINILM if kind == "dense" else SPLADE
    if not folder.is_dir():
        pytest.skip(f"model folder not found: {folder}")
    return (DenseEncoder if kind == "dense" else SpladeEncoder)(folder, device="cpu")


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_scores_are_the_encoders_dot_products_and_no_candidate_is_lost(kind):
    encoder = _encoder(kind)
    run = BiEncoder(encoder, _texts(), depth=3)(QUERIES, RUN)
    for q in ("q1", "q2"):
        assert sorted(run.ids(q)) == sorted(RUN.ids(q))  # same candidates, none lost or duplicated
    head = RUN.ids("q1")[:3]
    query = encoder.encode_queries([QUERIES["q1"]])
    documents = encoder.encode_documents([DOCS[d] for d in head])
    expected = (documents @ query.T).toarray().ravel() if kind == "sparse" else documents @ query[0]
    got = dict(run.hits("q1"))
    assert [got[d] for d in head] == pytest.approx(expected.tolist(), rel=1e-5, abs=1e-5)
    assert run.ids("q1")[3:] == RUN.ids("q1")[3:]  # below depth: former order, lower scores
    assert min(got[d] for d in head) > max(got[d] for d in RUN.ids("q1")[3:])
    assert len(run["q3"].docnos) == 0
    if kind == "dense":
        assert run.ids("q1")[0] == "d3" and run.ids("q2")[0] == "d2"  # the real model finds the obvious match


def _texts():
    return CorpusTexts(Document(d, t) for d, t in DOCS.items())


def test_bad_depth_is_refused():
    with pytest.raises(InputError, match="depth"):
        BiEncoder(object(), _texts(), depth=0)
