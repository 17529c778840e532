"""The training loop: seeded batches, gradient accumulation, AdamW with linear warm-up and decay, bf16 autocast on
CUDA, atomic checkpoints, resume after a kill, a progress bar with loss and throughput.

    report = train(model, examples, CorpusTexts(corpus), Objective("infonce"), TrainingArguments(epochs=1),
                   "models/minilm-scifact")          # run again after a crash: continues from the last checkpoint

Everything random is a function of the seed: the order of examples in epoch e, the negatives drawn for example i
in epoch e, and (restored from the checkpoint) torch's generator for dropout. A run resumed from a checkpoint
therefore ends with the same weights as one never interrupted (on the same device and thread count).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from rankstack.progress import progress_bar

from rankstack.devices import cpu_description, select_device
from rankstack.errors import InputError
from rankstack.rerank.texts import Texts
from rankstack.train.examples import Example
from rankstack.train.models import Ranker
from rankstack.train.objectives import Objective

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
STATE_FILE = "state.pt"
REPORT_FILE = "training.json"


@dataclass
class TrainingArguments:
    """Optimisation settings. `batch_size` examples per forward pass, `gradient_accumulation` passes per optimizer
    step; `warmup`: the fraction of steps with a linearly rising learning rate (then linear decay to 0);
    `max_steps` caps the optimizer steps. `dtype` None: bf16 autocast on CUDA, fp32 on CPU ("bf16" or "fp32" to
    choose). A checkpoint every `checkpoint_every` optimizer steps (0: none). `threads`: torch CPU threads."""

    epochs: float = 1.0
    batch_size: int = 16
    gradient_accumulation: int = 1
    learning_rate: float = 2e-5
    head_learning_rate: float | None = None
    warmup: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float | None = 1.0
    max_steps: int | None = None
    seed: int = 0
    device: str | None = None
    dtype: str | None = None
    checkpoint_every: int = 50
    threads: int | None = None
    progress: bool | None = None

    def __post_init__(self):
        if self.epochs <= 0 or self.batch_size < 1 or self.gradient_accumulation < 1 or self.learning_rate <= 0:
            raise InputError("epochs, batch_size, gradient_accumulation and learning_rate must be positive")
        if not 0 <= self.warmup < 1:
            raise InputError(f"warmup is a fraction of the steps in [0, 1), got {self.warmup}")
        if self.dtype not in (None, "auto", "bf16", "fp32"):
            raise InputError(f"unknown training dtype {self.dtype!r} (expected 'bf16' or 'fp32')")
        if self.checkpoint_every < 0 or (self.max_steps is not None and self.max_steps < 1):
            raise InputError("checkpoint_every must be >= 0 and max_steps >= 1")


@dataclass
class TrainingReport:
    """What a finished run did: steps, losses, wall time and CPU time (summed over the parts of a resumed run, up to
    each part's last checkpoint) and hardware."""

    steps: int
    examples_seen: int
    seconds: float
    hardware: str
    cpu_seconds: float = 0.0   # CPU time of the training process (all threads), summed like `seconds`
    losses: list[float] = field(default_factory=list)   # mean loss per logged interval
    resumed_from: list[int] = field(default_factory=list)  # steps of the checkpoints it continued from
    completed: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def hardware(device: torch.device | None = None) -> str:
    """The device a run trains on, in words (CPU model and torch threads, or the GPU's name)."""
    if device is not None and device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    model = cpu_description()["model"]
    return f"CPU {model}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def _steps_per_epoch(n_examples: int, args: TrainingArguments) -> int:
    return math.ceil(math.ceil(n_examples / args.batch_size) / args.gradient_accumulation)


def total_steps(n_examples: int, args: TrainingArguments) -> int:
    steps = math.ceil(_steps_per_epoch(n_examples, args) * args.epochs)
    return min(steps, args.max_steps) if args.max_steps else steps


def _optimizer(model: Ranker, args: TrainingArguments) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and norms; `head_learning_rate` for the layers new to the task
    (`model.head_prefixes`: a new classifier and the pooler before it, a projection)."""
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decay = 0.0 if p.ndim < 2 or "norm" in name.lower() else args.weight_decay
        lr = args.head_learning_rate if args.head_learning_rate and name.startswith(model.head_prefixes) \
            else args.learning_rate
        groups.setdefault((lr, decay), []).append(p)
    if not groups:
        raise InputError("the model has no trainable parameters")
    return torch.optim.AdamW([{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()],
                             lr=args.learning_rate)


def _schedule(optimizer: torch.optim.Optimizer, steps: int, warmup: float) -> torch.optim.lr_scheduler.LambdaLR:
    warm = int(steps * warmup)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (steps - step) / max(1, steps - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def latest_checkpoint(output: Path) -> Path | None:
    """The newest complete checkpoint under output/checkpoints (written atomically, so any listed one is whole)."""
    folder = output / CHECKPOINTS
    found = sorted(p for p in folder.glob("step-*") if (p / STATE_FILE).is_file()) if folder.is_dir() else []
    return found[-1] if found else None


def _save_checkpoint(output: Path, state: dict[str, Any]) -> Path:
    folder = output / CHECKPOINTS
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{state['step']:08d}"
    tmp = folder / f".tmp-{final.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    torch.save(state, tmp / STATE_FILE)
    with open(tmp / STATE_FILE, "rb") as f:
        os.fsync(f.fileno())
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in folder.glob("step-*"):  # only the newest is kept
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def run_key(model: Ranker, examples: Sequence[Example], objective: Objective, args: TrainingArguments) -> str:
    """What identifies a run (model, data, objective, arguments that change the result), to resume only the same."""
    settings = {k: v for k, v in asdict(args).items() if k not in ("progress", "checkpoint_every", "threads")}
    data = [[e.qid, e.positive, e.negatives, e.teacher] for e in examples]
    text = json.dumps([model.describe(), objective.describe(), settings, data], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def train(model: Ranker, examples: Sequence[Example], texts: Texts, objective: Objective, args: TrainingArguments,
          output: str | os.PathLike, *, resume: bool = True) -> TrainingReport:
    """Train `model` on `examples` and save it to `output` (in its sentence-transformers/rankstack layout, with
    training.json). With `resume`, continue from the newest checkpoint in output/checkpoints; a run already
    completed there is not repeated (its report is returned)."""
    output = Path(output)
    if not examples:
        raise InputError("no training examples")
    objective.check(model, examples)
    report_file = output / REPORT_FILE
    key = run_key(model, examples, objective, args)
    if resume and report_file.is_file():
        done = json.loads(report_file.read_text(encoding="utf-8"))
        if done.get("completed"):
            if done.get("key") not in (None, key):  # None: written before runs had keys
                raise InputError(f"{output} holds a model trained with other settings or data; train into another "
                                 "folder, or pass resume=False (rankstack train --restart) to replace it")
            log.info("%s: training already completed; remove %s to train again", output, report_file)
            return TrainingReport(**{k: done[k] for k in TrainingReport.__dataclass_fields__ if k in done})
    output.mkdir(parents=True, exist_ok=True)
    device = select_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    autocast = torch.bfloat16 if (args.dtype == "bf16" or (args.dtype in (None, "auto") and device.type == "cuda")) \
        else None
    torch.manual_seed(args.seed)
    model.to(device).train()
    optimizer = _optimizer(model, args)
    steps = total_steps(len(examples), args)
    scheduler = _schedule(optimizer, steps, args.warmup)
    step, epoch, position, seen, elapsed, cpu = 0, 0, 0, 0, 0.0, 0.0
    history: list[float] = []
    resumed: list[int] = []
    checkpoint = latest_checkpoint(output) if resume else None
    if checkpoint is not None:
        state = torch.load(checkpoint / STATE_FILE, map_location=device, weights_only=False)
        if state.get("key") != key:
            raise InputError(f"{checkpoint} belongs to another run (other settings or data): remove it, train into "
                             "another folder, or pass resume=False (rankstack train --restart)")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), device)
        step, epoch, position, seen = state["step"], state["epoch"], state["position"], state["seen"]
        elapsed, history, resumed = state["elapsed"], state["history"], state["resumed_from"] + [state["step"]]
        cpu = state.get("cpu", 0.0)
        log.info("resuming from %s (step %d of %d)", checkpoint, step, steps)
    micro_per_epoch = math.ceil(len(examples) / args.batch_size)
    bar = progress_bar(args.progress, total=steps, initial=step, desc=f"training {model.kind}", unit="step")
    start, cpu_start = time.perf_counter(), time.process_time()
    window: list[float] = []
    window_examples, window_start = 0, time.perf_counter()
    order = _order(len(examples), args.seed, epoch)
    while step < steps:
        if position >= micro_per_epoch:
            epoch, position = epoch + 1, 0
            order = _order(len(examples), args.seed, epoch)
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for _ in range(args.gradient_accumulation):
            if position >= micro_per_epoch:
                break
            index = order[position * args.batch_size:(position + 1) * args.batch_size]
            batch = [examples[i] for i in index]
            negatives = [objective.pick_negatives(examples[i], np.random.default_rng([args.seed, epoch, int(i)]))
                         for i in index]
            with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                loss, _ = objective(model, batch, texts, negatives, step)
            (loss / args.gradient_accumulation).backward()
            step_loss += float(loss.detach()) / args.gradient_accumulation
            position += 1
            seen += len(batch)
            window_examples += len(batch)
        if args.max_grad_norm:
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], args.max_grad_norm)
        optimizer.step()
        scheduler.step()
        step += 1
        window.append(step_loss)
        now = time.perf_counter()
        speed = window_examples / max(now - window_start, 1e-9)
        bar.set_postfix(loss=f"{np.mean(window[-20:]):.4f}", examples_s=f"{speed:.1f}")
        bar.update(1)
        if step % 10 == 0 or step == steps:
            history.append(float(np.mean(window)))
            window, window_examples, window_start = [], 0, now
        if args.checkpoint_every and step % args.checkpoint_every == 0 and step < steps:
            _save_checkpoint(output, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                "step": step, "epoch": epoch, "position": position, "seen": seen, "steps_total": steps,
                "examples": len(examples), "key": key, "elapsed": elapsed + time.perf_counter() - start,
                "cpu": cpu + time.process_time() - cpu_start,
                "history": history, "resumed_from": resumed})
    bar.close()
    model.eval()
    model.save(output)
    seconds = round(elapsed + time.perf_counter() - start, 1)
    report = TrainingReport(step, seen, seconds, hardware(device), round(cpu + time.process_time() - cpu_start, 1),
                            history, resumed)
    tmp = report_file.with_name(REPORT_FILE + ".tmp")
    tmp.write_text(json.dumps({**report.to_dict(), "key": key, "arguments": asdict(args),
                               "objective": objective.describe(),
                               "model": model.describe()}, indent=2), encoding="utf-8")
    os.replace(tmp, report_file)
    shutil.rmtree(output / CHECKPOINTS, ignore_errors=True)
    return report
