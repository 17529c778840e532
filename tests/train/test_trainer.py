"""The training loop: seeded and deterministic, gradient accumulation equal to one larger batch, the learning-rate
schedule, checkpoints that belong to their run, clear errors; bf16 on CUDA where there is one."""

import pytest
import torch

from rankstack.data.corpus import Document
from rankstack.errors import InputError
from rankstack.rerank.texts import CorpusTexts
from rankstack.train.examples import Example
from rankstack.train.models import build_model
from rankstack.train.objectives import Objective
from rankstack.train.trainer import TrainingArguments, _save_checkpoint, latest_checkpoint, total_steps, train
from tests.train.conftest import DOCS, QRELS, QUERIES, tiny_bert

TEXTS = CorpusTexts([Document(i, t) for i, t in DOCS.items()])
EXAMPLES = [Example(q, QUERIES[q], d, [x for x in DOCS if x not in QRELS[q]][:3]) for q in QRELS
            for d, r in QRELS[q].items() if r][:6]


@pytest.fixture(scope="module")
def no_dropout(tmp_path_factory):
    path = tiny_bert(tmp_path_factory.mktemp("nodrop") / "base")
    import json
    cfg = json.loads((path / "config.json").read_text())
    cfg.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (path / "config.json").write_text(json.dumps(cfg))
    return path


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _run(start, tmp, **kwargs):
    args = {"batch_size": 4, "max_steps": 2, "learning_rate": 1e-3, "warmup": 0.0, "progress": False, **kwargs}
    model = build_model("cross-encoder", start, seed=kwargs.get("seed", 0))
    train(model, EXAMPLES, TEXTS, Objective("bce", negatives=2), TrainingArguments(**args), tmp)
    return _weights(model)


def test_same_seed_same_weights_other_seed_other_weights(tiny_base, tmp_path):
    a = _run(tiny_base, tmp_path / "a", seed=1)
    b = _run(tiny_base, tmp_path / "b", seed=1)
    c = _run(tiny_base, tmp_path / "c", seed=2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_gradient_accumulation_equals_a_larger_batch(no_dropout, tmp_path):
    # bce is a mean over pairs: two micro-batches of 2 examples accumulate to the gradient of one batch of 4
    one = _run(no_dropout, tmp_path / "one", batch_size=4, max_steps=1)
    two = _run(no_dropout, tmp_path / "two", batch_size=2, gradient_accumulation=2, max_steps=1)
    assert all(torch.allclose(one[k], two[k], atol=1e-6) for k in one)
    moved = [k for k in one if "classifier" in k]
    assert moved


def test_steps_schedule_and_report(tiny_base, tmp_path):
    args = TrainingArguments(epochs=2, batch_size=4, gradient_accumulation=1, progress=False)
    assert total_steps(6, args) == 4  # 2 batches an epoch
    assert total_steps(6, TrainingArguments(epochs=2, batch_size=1, gradient_accumulation=4)) == 4
    assert total_steps(6, TrainingArguments(epochs=10, max_steps=3)) == 3
    model = build_model("cross-encoder", tiny_base)
    report = train(model, EXAMPLES, TEXTS, Objective("infonce", negatives=2), args, tmp_path / "m")
    assert report.steps == 4 and report.examples_seen == 12 and report.seconds > 0 and report.completed
    assert "CPU" in report.hardware and len(report.losses) == 1


def test_a_checkpoint_of_another_run_is_refused(tiny_base, tmp_path):
    model = build_model("cross-encoder", tiny_base)
    _save_checkpoint(tmp_path, {"step": 3, "examples": 99, "steps_total": 7})
    assert latest_checkpoint(tmp_path).name == "step-00000003"
    with pytest.raises(InputError, match="belongs to another run"):
        train(model, EXAMPLES, TEXTS, Objective("bce", negatives=1), TrainingArguments(progress=False), tmp_path)
    # a completed run is reused only by the same settings
    args = TrainingArguments(max_steps=1, progress=False)
    first = train(model, EXAMPLES, TEXTS, Objective("bce", negatives=1), args, tmp_path, resume=False)
    assert train(model, EXAMPLES, TEXTS, Objective("bce", negatives=1), args, tmp_path) == first
    with pytest.raises(InputError, match="trained with other settings"):
        train(model, EXAMPLES, TEXTS, Objective("bce", negatives=2), args, tmp_path)


def test_bad_arguments_and_objectives(tiny_base, tmp_path):
    with pytest.raises(InputError, match="warmup"):
        TrainingArguments(warmup=1.5)
    with pytest.raises(InputError, match="dtype"):
        TrainingArguments(dtype="fp8")
    with pytest.raises(InputError, match="unknown loss"):
        Objective("hinge")
    model = build_model("cross-encoder", tiny_base)
    with pytest.raises(InputError, match="needs teacher scores"):
        train(model, EXAMPLES, TEXTS, Objective("kl", negatives=1), TrainingArguments(progress=False), tmp_path)
    with pytest.raises(InputError, match="FLOPS regulariser applies to SPLADE"):
        train(model, EXAMPLES, TEXTS, Objective("infonce", flops_query=0.1), TrainingArguments(progress=False),
              tmp_path)
    with pytest.raises(InputError, match="no training examples"):
        train(model, [], TEXTS, Objective(), TrainingArguments(progress=False), tmp_path)


def test_distillation_losses_train(tiny_base, tmp_path):
    examples = [Example(e.qid, e.query, e.positive, e.negatives, {d: float(-i) for i, d in
                                                                 enumerate([e.positive, *e.negatives])})
                for e in EXAMPLES]
    for loss in ("margin-mse", "kl"):
        model = build_model("dense", tiny_base)
        report = train(model, examples, TEXTS, Objective(loss, negatives=2),
                       TrainingArguments(batch_size=3, max_steps=2, progress=False), tmp_path / loss)
        assert report.steps == 2 and all(x == x for x in report.losses)  # finite


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_autocast_on_cuda(tiny_base, tmp_path):
    model = build_model("dense", tiny_base)
    report = train(model, EXAMPLES, TEXTS, Objective("infonce"),
                   TrainingArguments(batch_size=3, max_steps=2, device="cuda", progress=False), tmp_path)
    assert report.hardware.startswith("GPU") and all(x == x for x in report.losses)
    assert next(model.parameters()).dtype == torch.float32  # mixed precision: fp32 weights, bf16 compute


def _pretrained_like(path, squeeze: float):
    """A tiny BERT whose [CLS] output varies with its input (as a pretrained encoder's does, unlike one at the usual
    0.02 init) and whose pooler shrinks it by `squeeze` (all-MiniLM-L6-v2's untrained pooler: [CLS] RMS 0.36 in,
    0.06 out); no dropout."""
    import json

    from transformers import AutoConfig, AutoModel

    tiny_bert(path)
    cfg = json.loads((path / "config.json").read_text())
    cfg.update(initializer_range=0.3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (path / "config.json").write_text(json.dumps(cfg))
    torch.manual_seed(0)
    model = AutoModel.from_config(AutoConfig.from_pretrained(path))
    with torch.no_grad():
        model.pooler.dense.weight.mul_(squeeze)
    model.save_pretrained(path)
    return path


def test_a_new_cross_encoder_head_learns_behind_a_squeezing_pooler(tmp_path):
    # regression: the SciFact cross-encoder's InfoNCE loss stayed at ln 4 because only the classifier took the head's
    # learning rate while the checkpoint's untrained pooler, which squeezes [CLS], moved at the encoder's. A toy any
    # head can learn (the positives are always d1-d4, the negatives d5-d7) with the encoder nearly frozen:
    start = _pretrained_like(tmp_path / "start", squeeze=0.05)
    ids = list(DOCS)
    examples = [Example(q, QUERIES[q], ids[i % 4], ids[4:7]) for i, q in enumerate(QUERIES)]
    args = TrainingArguments(epochs=100, max_steps=20, batch_size=6, learning_rate=1e-5, head_learning_rate=1e-2,
                             warmup=0.0, checkpoint_every=0, progress=False)
    model = build_model("cross-encoder", start)
    assert set(model.head_prefixes) == {"model.classifier.", "model.bert.pooler."}
    fixed = train(model, examples, TEXTS, Objective("infonce", negatives=3), args, tmp_path / "fixed")
    model = build_model("cross-encoder", start)
    model.head_prefixes = ("model.classifier.",)  # the defect: the pooler at the encoder's rate
    stuck = train(model, examples, TEXTS, Objective("infonce", negatives=3), args, tmp_path / "stuck")
    ln4 = torch.log(torch.tensor(4.0)).item()
    assert stuck.losses[-1] > 0.9 * ln4  # the toy reproduces the defect
    assert fixed.losses[-1] < 0.1 * ln4 < fixed.losses[0]


def test_only_layers_new_to_the_task_take_the_head_learning_rate(tiny_base, tmp_path):
    from rankstack.train.trainer import _optimizer

    args = TrainingArguments(learning_rate=1e-5, head_learning_rate=1e-3)
    model = build_model("cross-encoder", tiny_base)
    rate = {id(p): g["lr"] for g in _optimizer(model, args).param_groups for p in g["params"]}
    fast = {n for n, p in model.named_parameters() if rate[id(p)] == 1e-3}
    assert fast == {"model.classifier.weight", "model.classifier.bias", "model.bert.pooler.dense.weight",
                    "model.bert.pooler.dense.bias"}
    trained = tiny_bert(tmp_path / "ce", "classifier")  # a checkpoint with its own classifier: nothing is new
    assert build_model("cross-encoder", trained).head_prefixes == ()
    assert build_model("colbert", tiny_base).head_prefixes == ("linear.",)
    assert build_model("dense", tiny_base).head_prefixes == ()


def _toy_loss(model, examples, objective):
    """The objective on the whole toy, in eval mode (no dropout)."""
    model.eval()
    with torch.no_grad():
        loss, _ = objective(model, examples, TEXTS, [e.negatives for e in examples], 0)
    model.train()
    return float(loss)


@pytest.mark.parametrize("kind", ["dense", "splade", "colbert"])
def test_bi_encoder_losses_fall_on_a_learnable_toy(kind, tiny_base, tiny_mlm, tmp_path):
    # the same toy for the paths with no new classifier: the gradient reaches the encoder and the loss falls
    ids = list(DOCS)
    examples = [Example(q, QUERIES[q], ids[i % 4], ids[4:7]) for i, q in enumerate(QUERIES)]
    model = build_model(kind, tiny_mlm if kind == "splade" else tiny_base)
    objective = Objective("infonce", negatives=3, in_batch=False)
    before = _toy_loss(model, examples, objective)
    args = TrainingArguments(epochs=100, max_steps=8, batch_size=6, learning_rate=1e-3, warmup=0.0,
                             checkpoint_every=0, progress=False)
    train(model, examples, TEXTS, objective, args, tmp_path / "m")
    assert _toy_loss(model, examples, objective) < 0.5 * before
