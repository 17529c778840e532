"""Fixtures for the encoder tests: local model folders (skipped when absent), encoders loaded once per session."""

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
MINILM = MODELS / "sentence-transformers__all-MiniLM-L6-v2"
SPLADE = MODELS / "splade-tiny-msmarco"
CONFIG_ONLY = MODELS / "cross-encoder__ms-marco-MiniLM-L-6-v2__config-only"

#: Texts of very different lengths: one beyond max_seq_length (256 tokens), one of a single word.
TEXTS = [
    "Vitamin D supplementation and bone mineral density in older adults.",
    "cells",
    " ".join(["The tumour suppressor p53 regulates apoptosis, cell-cycle arrest and DNA repair."] * 17),  # ~300 tokens
    "Does smoking increase the risk of lung cancer? A meta-analysis of cohort studies from 1990 to 2020 "
    "across Europe, Asia and North America, with adjustment for age, sex and occupation.",
    "Hello, world!",
    "Microbiome diversity predicts response to immunotherapy.",
]


def _need(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"model folder not found: {path}")
    return path


@pytest.fixture(scope="package", autouse=True)
def _torch_threads():
    """One torch thread while these tests run: on a small shared machine it avoids oversubscription
    (RANKSTACK_TEST_THREADS changes it); the previous setting comes back afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("RANKSTACK_TEST_THREADS", "1")))
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return _need(MINILM)


@pytest.fixture(scope="session")
def splade_dir() -> Path:
    return _need(SPLADE)


@pytest.fixture(scope="package")
def dense(minilm_dir):
    from rankstack.encoders import DenseEncoder
    return DenseEncoder(minilm_dir, device="cpu", batch_size=2, progress=False)


@pytest.fixture(scope="package")
def splade(splade_dir):
    from rankstack.encoders import SpladeEncoder
    return SpladeEncoder(splade_dir, device="cpu", batch_size=2, logits_budget_mb=8, progress=False)
SHORT = [t for t in TEXTS if len(t) < 500]
