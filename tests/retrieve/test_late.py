"""LateInteraction first stage: build / reopen / add / delete over a PLAID index, with MiniLM token vectors."""

import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from rankstack.data.corpus import Document  # noqa: E402
from rankstack.data.queries import Queries  # noqa: E402
from rankstack.errors import IncompatibleIndexError, InputError  # noqa: E402
from rankstack.pipeline.config import parse  # noqa: E402
from rankstack.retrieve.late import LateInteraction  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
MODELS = Path(os.environ.get("RANKSTACK_SHARED_MODELS", Path(__file__).resolve().parents[3] / "shared" / "models"))
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
    "Air pollution is associated with asthma in children.",
    "Antibiotic resistance spreads through horizontal gene transfer.",
])]
QUERIES = Queries({"q1": "does smoking cause lung cancer", "q2": "vitamin D and bones",
                   "q3": "gut bacteria and cancer"})
EXHAUSTIVE = dict(nprobe=8, ncandidates=1000)


@pytest.fixture(scope="module")
def encoder():
    if not MINILM.is_dir():
        pytest.skip(f"model folder not found: {MINILM}")
    from rankstack.encoders import MultiVectorEncoder
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield MultiVectorEncoder(MINILM, projection=None, query_length=16, device="cpu", progress=False)
    torch.set_num_threads(before)


@pytest.fixture
def late(tmp_path, encoder):
    return LateInteraction.build(DOCS, tmp_path / "plaid", encoder, nbits=2, num_centroids=8, k=5, progress=False,
                                 **EXHAUSTIVE)


def brute_force(stage, encoder, queries):
    """Exact MaxSim over every live document's decompressed vectors, written out."""
    index = stage.index
    ids = [d for d in index.doc_ids.take(np.arange(len(index.live))) if index.docnos([d])[0] >= 0]
    docs = index.vectors(index.docnos(ids))
    out = {}
    for qid, q in zip(queries, encoder.encode_queries([queries[q] for q in queries])):
        scores = np.array([(q @ d.T).max(1).sum() for d in docs])
        out[qid] = [ids[i] for i in np.argsort(-scores, kind="stable")]
    return out


def test_exhaustive_run_is_brute_force_maxsim(late, encoder):
    run = late(QUERIES)
    expected = brute_force(late, encoder, QUERIES)
    for qid in QUERIES:
        assert run.ids(qid) == expected[qid][:5]
    assert run.ids("q1")[0] == "d1" and run.ids("q2")[0] == "d0"
    assert late.index.encoder_info == encoder.model_info()
    assert late.search("p53 apoptosis", k=1)[0][0] == "d2"


def test_reopen_by_path_and_repr(late, encoder, tmp_path):
    again = LateInteraction(tmp_path / "plaid", str(MINILM), k=5, **EXHAUSTIVE)
    assert again.encoder.query_length == 16  # the recorded settings
    assert again(QUERIES).to_dict() == late(QUERIES).to_dict()
    rebuilt = parse(repr(again))
    assert isinstance(rebuilt, LateInteraction) and rebuilt.config() == again.config()


def test_add_and_delete(late, encoder):
    assert late.add([Document("new", "Coffee consumption and liver disease."),
                     Document("d1", "Regular coffee drinking and liver cirrhosis.")]) == 2
    assert late.index.num_docs == 11
    assert [i for i, _ in late.search("coffee and the liver", k=2)] in (["new", "d1"], ["d1", "new"])
    assert late.search("smoking and lung cancer", k=1)[0][0] != "d1"  # d1 was replaced
    late.delete(["new"])
    assert "new" not in late(QUERIES).ids("q1") and late.index.num_docs == 10
    with pytest.raises(InputError, match="unknown document"):
        late.delete(["missing"])


def test_other_encoder_settings_are_refused(late, encoder, tmp_path):
    from rankstack.encoders import MultiVectorEncoder
    projected = MultiVectorEncoder(MINILM, projection=np.ones((32, 384), np.float32), device="cpu", progress=False)
    with pytest.raises(IncompatibleIndexError, match="dimension"):
        LateInteraction(tmp_path / "plaid", projected)
    longer = MultiVectorEncoder(MINILM, projection=None, query_length=32, device="cpu", progress=False)
    with pytest.raises(IncompatibleIndexError, match="query_length"):
        LateInteraction(tmp_path / "plaid", longer)
    with pytest.raises(InputError, match="empty"):
        LateInteraction.build([], tmp_path / "empty", encoder)
    with pytest.raises(InputError, match="already holds"):
        LateInteraction.build(DOCS, tmp_path / "plaid", encoder)


def test_per_dimension_buckets(encoder, tmp_path):
    late = LateInteraction.build(DOCS, tmp_path / "perdim", encoder, nbits=2, num_centroids=8, k=5,
                                 buckets="per_dimension", progress=False, **EXHAUSTIVE)
    assert late.index.manifest.settings["buckets"] == "per_dimension" and late.index.weights.shape == (encoder.dimension, 4)
    run, expected = late(QUERIES), brute_force(late, encoder, QUERIES)
    assert all(run.ids(qid) == expected[qid][:5] for qid in QUERIES)


def test_rescore_from_stored_float16_vectors(encoder, tmp_path, late):
    stored = LateInteraction.build(DOCS, tmp_path / "stored", encoder, nbits=2, num_centroids=8, k=5,
                                   store_vectors="float16", rescore=True, progress=False, **EXHAUSTIVE)
    assert stored.index.vector_dtype == "float16" and stored.config()["rescore"] is True
    # Exact MaxSim over the documents' own token vectors, float16-rounded, encoded here again.
    docs = [v.astype(np.float16).astype(np.float32) for v in encoder.encode_documents([d.contents for d in DOCS])]
    run = stored(QUERIES)
    for qid, q in zip(QUERIES, encoder.encode_queries([QUERIES[q] for q in QUERIES])):
        scores = np.array([(q @ d.T).max(1).sum() for d in docs], np.float32)
        top = np.argsort(-scores, kind="stable")[:5]
        assert run.ids(qid) == [DOCS[i].id for i in top]
        assert np.allclose(run[qid].scores, scores[top], atol=1e-3)
    rebuilt = parse(repr(stored))
    assert isinstance(rebuilt, LateInteraction) and rebuilt.rescore and rebuilt(QUERIES).to_dict() == run.to_dict()
    assert stored.add([Document("new", "Smoking tobacco and lung cancer risk.")]) == 1
    assert stored.search("smoking and lung cancer", k=2)[0][0] in ("new", "d1")
    stored.delete(["new", "d1"])
    assert not {"new", "d1"} & set(stored(QUERIES).ids("q1"))
    with pytest.raises(IncompatibleIndexError, match="stored vectors"):
        LateInteraction(late.index, encoder, rescore=True)  # built without them
