"""Every stage round-trips through its repr: for every stage type rankstack registers, `parse(repr(s))` rebuilds a
stage with the same repr and the same output, built here on tiny random models and small indexes. A stage type
without a builder below fails `test_every_registered_stage_type_is_covered`: add one, or say in CANNOT_BUILD why
it cannot be built."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("faiss")

from rankstack import Document, Queries, Run  # noqa: E402
from rankstack.data.corpus import write_corpus_jsonl  # noqa: E402
from rankstack.errors import InputError  # noqa: E402
from rankstack.pipeline.config import names, parse  # noqa: E402
from rankstack.pipeline.stage import STAGE_TYPES, CutOff, FromRun  # noqa: E402
from tests.encoders import st_models  # noqa: E402
from tests.rerank.lm_models import build_llama  # noqa: E402

DOCS = [Document(f"d{i}", text) for i, text in enumerate([
    "Fleas lay their eggs on the host animal.", "The flea life cycle lasts weeks: egg, larva, pupa, adult.",
    "Vitamin D and bone density in older adults.", "Stock markets fell sharply on Monday.",
    "Cats need flea treatment every month.", "Sleep deprivation impairs memory consolidation.",
    "Aspirin reduces the risk of colorectal cancer.", "Exercise improves insulin sensitivity."])]
QUERIES = Queries({"q1": "how long is the flea life cycle", "q2": "vitamin d bones", "q3": "memory and sleep"})

#: Registered stage types that cannot be built here, and why.
CANNOT_BUILD = {
    "Reranker": "abstract base class of the rerankers (no scores of its own)",
    "PairReranker": "abstract base class of the (query, text) rerankers",
    "ModelPairReranker": "abstract base class of the local-model pair rerankers",
    # registered once rankstack.distributed is imported (tests/distributed runs first in the whole suite)
    "ShardedStage": "abstract base class of the sharded first stages",
    "ShardedBM25": "needs a Ray cluster: built and compared with one node in tests/distributed",
    "ShardedSparse": "needs a Ray cluster: built and compared with one node in tests/distributed",
    "ShardedDense": "needs a Ray cluster: built and compared with one node in tests/distributed",
    "RemoteReranker": "needs a Ray cluster: tests/distributed",
}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Small indexes and tiny random models, shared by every builder."""
    if not st_models.CONFIG_ONLY.is_dir():
        pytest.skip(f"tokenizer folder not found: {st_models.CONFIG_ONLY}")
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertForSequenceClassification

    from rankstack.encoders import DenseEncoder, InferenceFreeSparseEncoder, MultiVectorEncoder, SpladeEncoder
    from rankstack.retrieve.bm25 import BM25
    from rankstack.retrieve.dense import Dense
    from rankstack.retrieve.late import LateInteraction
    from rankstack.retrieve.sparse import LearnedSparse

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("roundtrip")
    e = {"root": root, "corpus": root / "corpus.jsonl"}
    write_corpus_jsonl(DOCS, e["corpus"])
    bert = st_models.build_bert(root / "bert")
    e["st_dense"] = st_models.save_sentence_transformer(bert, root / "st-dense", dense=[(16, "Tanh", True)],
                                                        prompts={"query": "query: "})
    e["pylate"] = st_models.save_pylate(bert, root / "pylate")
    tokenizer = AutoTokenizer.from_pretrained(st_models.CONFIG_ONLY)
    small = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=64, max_position_embeddings=128, num_labels=1)
    for name, cls in (("mlm", BertForMaskedLM), ("ce", BertForSequenceClassification)):
        torch.manual_seed(0)
        cls(small).save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    e["mlm"], e["ce"] = root / "mlm", root / "ce"
    e["llama"] = build_llama(root / "llama")
    e["idf"] = root / "idf.json"
    e["idf"].write_text(json.dumps({"flea": 2.0, "cycle": 1.5, "vitamin": 1.0, "sleep": 1.2}))
    e["bm25"] = BM25.build(DOCS, root / "bm25", progress=False)
    e["dense"] = Dense(Dense.build(DOCS, root / "dense", DenseEncoder(e["st_dense"], device="cpu", progress=False),
                                   k=5).index.path, k=5)
    e["splade"] = LearnedSparse(LearnedSparse.build(DOCS, root / "splade", SpladeEncoder(e["mlm"], device="cpu"),
                                                    progress=False).index.path, k=5)
    e["inference_free"] = LearnedSparse(LearnedSparse.build(
        DOCS, root / "inference-free", InferenceFreeSparseEncoder(e["mlm"], idf=e["idf"], device="cpu"),
        progress=False).index.path, k=5)
    e["late"] = LateInteraction.build(DOCS, root / "plaid", MultiVectorEncoder(e["pylate"], device="cpu"), nbits=2,
                                      num_centroids=4, k=5, progress=False, nprobe=4, ncandidates=8)
    e["run_file"] = root / "run.trec"
    Run.from_dict({"q1": {"d1": 3.0, "d0": 2.0, "d4": 1.0}, "q2": {"d2": 1.0}}).write_trec(e["run_file"])
    yield e
    torch.set_num_threads(before)


def _stages(e):
    """Stage instances to round-trip, by the type they are (several per type where options differ)."""
    from rankstack.encoders import DenseEncoder, InferenceFreeSparseEncoder, MultiVectorEncoder, SpladeEncoder
    from rankstack.rerank import (BiEncoder, CrossEncoder, IndexTexts, Listwise, MaxSim, Pointwise,
                                  QueryLikelihood)
    from rankstack.retrieve.dense_prf import DenseRocchio
    from rankstack.retrieve.rm3 import RM3

    bm25, corpus, cpu = e["bm25"], str(e["corpus"]), {"device": "cpu", "progress": False}
    dense_encoder = DenseEncoder(e["st_dense"], batch_size=3, **cpu)
    return {
        "BM25": [bm25],
        "CutOff": [CutOff(3)],
        "Pipeline": [bm25 % 4 >> BiEncoder(dense_encoder, corpus, depth=3)],
        "FromRun": [FromRun(e["run_file"])],
        "Fusion": [(bm25 | e["dense"]).rrf(k=10), (bm25 | e["splade"] | e["late"]).interpolate([0.2, 0.3, 0.5])],
        "RM3": [RM3(bm25, fb_docs=2, fb_terms=3)],
        "DenseRocchio": [DenseRocchio(e["dense"], fb_docs=2)],
        "Dense": [e["dense"]],
        "LearnedSparse": [e["splade"], e["inference_free"]],
        "LateInteraction": [e["late"]],
        "CrossEncoder": [CrossEncoder(e["ce"], corpus, depth=3, cache=False, device="cpu", progress=False)],
        "BiEncoder": [BiEncoder(dense_encoder, corpus, depth=4),
                      BiEncoder(DenseEncoder(e["st_dense"], truncate_dim=8, include_prompt=False, **cpu), corpus),
                      BiEncoder(SpladeEncoder(e["mlm"], document_top_k=20, **cpu), IndexTexts(bm25)),
                      BiEncoder(InferenceFreeSparseEncoder(e["mlm"], idf=e["idf"], **cpu), corpus, depth=None)],
        "MaxSim": [MaxSim(MultiVectorEncoder(e["pylate"], query_length=8, **cpu), texts=corpus, depth=3),
                   MaxSim(str(e["pylate"]), index=e["late"], depth=3)],
        "QueryLikelihood": [QueryLikelihood(e["llama"], corpus, depth=3, cache=False, **cpu)],
        "Pointwise": [Pointwise(e["llama"], corpus, depth=3, tokens=("yes", "no"), cache=False, **cpu)],
        "Listwise": [Listwise(e["llama"], corpus, depth=4, window=3, stride=2, first_token=True, device="cpu")],
        "Cached": [bm25.cached(e["root"] / "cache")],
    }


def _run(stage, e):
    candidates = (e["bm25"] % 5)(QUERIES)
    return stage(QUERIES) if stage.first_stage else stage(QUERIES, candidates)


def _same(a, b):
    assert set(a) == set(b)
    for q in a:
        assert a.ids(q) == b.ids(q)
        assert np.allclose(a[q].scores, b[q].scores, rtol=1e-5, atol=1e-5)


def test_every_registered_stage_type_is_covered(env):
    names()  # imports every stage module
    registered = {n for n, cls in STAGE_TYPES.items() if cls.__module__.startswith("rankstack.")}
    built = set(_stages(env))
    assert registered - built - set(CANNOT_BUILD) == set(), "stage types with neither a builder nor a reason"
    assert built <= registered and not built & set(CANNOT_BUILD)


def test_parse_of_repr_rebuilds_every_stage(env):
    for type_name, stages in _stages(env).items():
        for stage in stages:
            text = repr(stage)
            again = parse(text)
            assert repr(again) == text, type_name
            assert type(again) is type(stage) or type_name == "Cached"  # a cache's repr is its stage's
            _same(_run(stage, env), _run(again, env))


def test_the_issue_example_gets_an_encoder_not_a_string(env):
    from rankstack.encoders import DenseEncoder
    from rankstack.rerank import BiEncoder

    pipeline = env["bm25"] % 10 >> BiEncoder(DenseEncoder(env["st_dense"], device="cpu"), str(env["corpus"]))
    again = parse(repr(pipeline))
    assert isinstance(again.stages[-1].encoder, DenseEncoder)
    _same(pipeline(QUERIES), again(QUERIES))


def test_in_memory_sources_are_refused_with_what_to_do(env):
    from rankstack.encoders import DenseEncoder, MultiVectorEncoder
    from rankstack.rerank import BiEncoder, CorpusTexts, MaxSim

    texts = CorpusTexts(DOCS)
    stage = BiEncoder(DenseEncoder(env["st_dense"], device="cpu"), texts)
    assert "in_memory('corpus', 8, 'sha256:" in repr(stage)
    with pytest.raises(InputError, match="held in memory.*corpus file or an index directory"):
        parse(repr(stage))
    assert repr(BiEncoder(stage.encoder, CorpusTexts(DOCS[:-1]))) != repr(stage)  # other documents, other repr
    again = parse(repr(stage).replace(repr(texts.source), "texts"), {"texts": texts})  # or name the object
    _same(stage(QUERIES, env["bm25"](QUERIES)), again(QUERIES, env["bm25"](QUERIES)))
    projection = np.random.default_rng(0).standard_normal((4, 32)).astype(np.float32)
    maxsim = MaxSim(MultiVectorEncoder(env["pylate"], projection=projection, device="cpu"), texts=str(env["corpus"]))
    assert "projection=in_memory('projection', (4, 32)" in repr(maxsim)
    with pytest.raises(InputError, match="projection held in memory"):
        parse(repr(maxsim))


def test_experiment_configs_name_encoders(env, tmp_path):
    from rankstack.experiment import run_config

    queries, qrels = tmp_path / "queries.tsv", tmp_path / "qrels.txt"
    queries.write_text("".join(f"{q}\t{t}\n" for q, t in QUERIES.items()))
    qrels.write_text("q1 0 d1 1\nq2 0 d2 1\nq3 0 d5 1\n")
    config = {"queries": str(queries), "qrels": str(qrels), "measures": ["nDCG@10"],
              "stages": {"bm25": f"BM25(index={str(env['bm25'].index.path)!r})"},
              "pipelines": {"bm25": "bm25",
                            "dense rerank": f"bm25 % 5 >> BiEncoder(DenseEncoder({str(env['st_dense'])!r}, "
                                            f"device='cpu'), texts={str(env['corpus'])!r})"},
              "latency_sample": 1}
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(config))
    experiment, _ = run_config(path)
    assert experiment.names == ["bm25", "dense rerank"]
    rerank = experiment.pipelines[1].stages[-1]
    assert type(rerank.encoder).__name__ == "DenseEncoder" and rerank.encoder.dimension == 16
    expected = (env["bm25"] % 5 >> rerank)(QUERIES)
    for q in QUERIES:
        assert experiment.runs[1].ids(q) == expected.ids(q)
