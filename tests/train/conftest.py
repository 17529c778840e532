"""Fixtures for the training tests: tiny random BERT models (real tokenizer, random weights, fixed seed) as start
checkpoints, and a toy corpus with queries and judgments. They check mechanics, never quality."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the hub
try:
    import torch
    import transformers  # noqa: F401
except ImportError:  # the neural extra is not installed: nothing here can run
    collect_ignore_glob = ["test_*.py"]

MODELS = Path(os.environ.get("RANKSTACK_SHARED_MODELS", Path(__file__).resolve().parents[3] / "shared" / "models"))
CONFIG_ONLY = MODELS / "cross-encoder__ms-marco-MiniLM-L-6-v2__config-only"

DOCS = {
    "d1": "Vitamin D supplementation improves bone mineral density in older adults.",
    "d2": "Smoking increases the risk of lung cancer in cohort studies.",
    "d3": "The tumour suppressor p53 regulates apoptosis and DNA repair.",
    "d4": "Microbiome diversity predicts response to immunotherapy in melanoma.",
    "d5": "Exercise lowers blood pressure in patients with hypertension.",
    "d6": "Statins reduce cholesterol and cardiovascular events.",
    "d7": "Sleep deprivation impairs memory consolidation in students.",
    "d8": "Antibiotic resistance spreads through horizontal gene transfer.",
}
DOCS = {d: f"{t} A clinical study." for d, t in DOCS.items()}  # a word every query shares: BM25 ranks every document
QUERIES = {"q1": "vitamin d bone density study", "q2": "smoking lung cancer risk study", "q3": "p53 apoptosis study",
           "q4": "gut microbiome immunotherapy study", "q5": "exercise blood pressure study",
           "q6": "statins cholesterol study"}
QRELS = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1, "d8": 0}, "q4": {"d4": 1}, "q5": {"d5": 1},
         "q6": {"d6": 1, "d5": 1}}

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=128)


def tiny_bert(out: Path, task: str = "base", seed: int = 0) -> Path:
    """A 2-layer, 32-wide BERT ('base', 'mlm' or 'classifier') with MiniLM's tokenizer, as a transformers folder."""
    from transformers import (AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification,
                              AutoTokenizer)

    if not CONFIG_ONLY.is_dir():
        pytest.skip(f"model folder not found: {CONFIG_ONLY}")
    config = AutoConfig.from_pretrained(CONFIG_ONLY, **TINY)
    torch.manual_seed(seed)
    auto = {"base": AutoModel, "mlm": AutoModelForMaskedLM, "classifier": AutoModelForSequenceClassification}[task]
    auto.from_config(config).save_pretrained(out)
    tok = AutoTokenizer.from_pretrained(CONFIG_ONLY)
    tok.model_max_length = 128
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("tiny") / "base", "base")


@pytest.fixture(scope="session")
def tiny_mlm(tmp_path_factory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("tiny") / "mlm", "mlm")


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory) -> Path:
    from rankstack.data.corpus import Document, write_corpus_jsonl

    path = tmp_path_factory.mktemp("data") / "corpus.jsonl"
    write_corpus_jsonl([Document(i, t, "") for i, t in DOCS.items()], path)
    return path


@pytest.fixture(scope="package", autouse=True)
def _torch_threads():
    """One torch thread while these tests run (a small shared machine); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("RANKSTACK_TEST_THREADS", "1")))
    yield
    torch.set_num_threads(before)
