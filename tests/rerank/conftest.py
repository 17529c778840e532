"""Fixtures for the reranker tests: random-weight MiniLM-L6 cross-encoders built from the config-only folder."""

import json
import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the hub

MODELS = Path(os.environ.get("RANKSTACK_SHARED_MODELS", Path(__file__).resolve().parents[3] / "shared" / "models"))
CONFIG_ONLY = MODELS / "cross-encoder__ms-marco-MiniLM-L-6-v2__config-only"

_WORDS = ("flea life cycle egg larva pupa host temperature humidity days year video series control pest the of a "
          "and to in is for on with as by at from dog cat pet treatment lasts weeks months adult female lay").split()


def make_pairs(n: int = 50, seed: int = 0) -> list[tuple[str, str]]:
    """Pairs of very different lengths: empty and one-word documents, documents far beyond any max_length, and a
    query longer than max_length itself (queries otherwise short enough that only the document is truncated)."""
    rng = random.Random(seed)
    lengths = [0, 1, 3, 10, 40, 90, 150, 400, 3000]
    pairs = []
    for i in range(n):
        query = " ".join(rng.choices(_WORDS, k=rng.randint(1, 25)))
        doc = " ".join(rng.choices(_WORDS, k=lengths[i % len(lengths)] + rng.randint(0, 5)))
        pairs.append((query, doc))
    pairs.append((" ".join(rng.choices(_WORDS, k=300)), "a short document"))  # query alone too long
    pairs.append(("[SEP] a query with a separator", "and a document [SEP] with one too"))
    return pairs


def build_model(out: Path, seed: int = 0, **config_changes) -> Path:
    """A MiniLM-L6 sequence classifier with random weights (fixed seed) and the real tokenizer, as a plain HF folder."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    config = AutoConfig.from_pretrained(CONFIG_ONLY, **config_changes)
    torch.manual_seed(seed)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(CONFIG_ONLY).save_pretrained(out)
    return out


def edit_config(folder: Path, **changes) -> None:
    """Set (value) or remove (None) keys of a model folder's config.json."""
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    path.write_text(json.dumps(cfg))


@pytest.fixture(scope="session")
def plain_dir(tmp_path_factory) -> Path:
    """The MiniLM cross-encoder's config as shipped: `sbert_ce_default_activation_function` says Identity."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    if not CONFIG_ONLY.is_dir():
        pytest.skip(f"model folder not found: {CONFIG_ONLY}")
    return build_model(tmp_path_factory.mktemp("ce") / "plain")


@pytest.fixture(scope="session")
def st_module():
    return pytest.importorskip("sentence_transformers")
