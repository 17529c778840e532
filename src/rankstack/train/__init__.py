"""Training rankers on your own data: hard negatives mined with any rankstack stage, false negatives filtered,
teacher scores for distillation, synthetic queries; pointwise, pairwise, listwise and distillation losses;
cross-encoders, dense bi-encoders, SPLADE and ColBERT heads, saved where sentence-transformers and rankstack's
stages both load them.

    from rankstack.train import mine_negatives, build_model, Objective, TrainingArguments, train
    mined = mine_negatives((bm25 | dense).rrf(), train.queries, train.qrels, depth=100, count=8)
    model = build_model("dense", "sentence-transformers/all-MiniLM-L6-v2")
    train(model, mined.examples, CorpusTexts(corpus), Objective("infonce"), TrainingArguments(epochs=1), "out/")

`rankstack train RECIPE` runs the whole loop from a JSON or YAML file (rankstack.train.recipe). Needs the neural
extra (torch, transformers); YAML recipes need the train extra (PyYAML).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rankstack._lazy import lazy_exports

_EXPORTS = {"Example": "examples", "load_examples": "examples", "save_examples": "examples",
            "FalseNegativeFilter": "mining", "mine_negatives": "mining", "attach_teacher_scores": "mining",
            "stage_scores": "mining", "build_model": "models", "Objective": "objectives",
            "TrainingArguments": "trainer", "train": "trainer", "run_recipe": "recipe", "trained_stage": "recipe",
            "synthetic_queries": "synthetic", "LocalGenerator": "synthetic", "EndpointGenerator": "synthetic",
            "write_model_card": "card"}

if TYPE_CHECKING:
    from rankstack.train.card import write_model_card
    from rankstack.train.examples import Example, load_examples, save_examples
    from rankstack.train.mining import FalseNegativeFilter, attach_teacher_scores, mine_negatives, stage_scores
    from rankstack.train.models import build_model
    from rankstack.train.objectives import Objective
    from rankstack.train.recipe import run_recipe, trained_stage
    from rankstack.train.synthetic import EndpointGenerator, LocalGenerator, synthetic_queries
    from rankstack.train.trainer import TrainingArguments, train

__getattr__ = lazy_exports("rankstack.train", _EXPORTS)

__all__ = sorted(_EXPORTS)
