"""`rankstack train RECIPE` end to end on a toy collection with a tiny random model: mining, training, saving, the
model card and the evaluation table; resuming after the training process is killed gives the same weights as a
run never interrupted; bad recipes are clear errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rankstack.cli import main
from rankstack.errors import InputError
from rankstack.train.recipe import load_recipe
from tests.train.conftest import QRELS, QUERIES


def write_recipe(folder: Path, corpus_file: Path, start: Path, kind: str = "dense", **changes) -> Path:
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items()))
    rows = [f"{q}\t{d}\t{r}" for q, ds in QRELS.items() for d, r in ds.items()]
    (folder / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")
    recipe = {
        "model": {"kind": kind, "start": str(start)},
        "output": "model",
        "data": {"corpus": str(corpus_file), "queries": "queries.jsonl", "qrels": "qrels.tsv"},
        "indexes": {"bm25-index": str(corpus_file)},
        "stages": {"bm25": "BM25(index='bm25-index')"},
        "mining": {"stage": "bm25", "depth": 8, "count": 3, "filter": {"teacher": "bm25 % 3", "margin": 0}},
        "loss": {"name": "infonce", "negatives": 1},
        "training": {"epochs": 1, "batch_size": 2, "learning_rate": 1e-3, "seed": 3, "threads": 1},
        "evaluation": {"queries": "queries.jsonl", "qrels": "qrels.tsv", "measures": ["nDCG@10", "R@5"],
                       "baselines": {"BM25": "bm25"}, "first_stage": "bm25", "depth": 5},
    }
    for key, value in changes.items():
        recipe[key] = value
    path = folder / "recipe.json"
    path.write_text(json.dumps(recipe))
    return path


@pytest.mark.parametrize("kind", ["dense", "cross-encoder"])
def test_train_command_end_to_end(kind, tmp_path, corpus_file, tiny_base, capsys):
    recipe = write_recipe(tmp_path, corpus_file, tiny_base, kind)
    assert main(["train", str(recipe), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "trained 4 steps" in out and "CPU" in out
    assert "BM25" in out and f"trained {kind} (model)" in out and "nDCG@10" in out
    model = tmp_path / "model"
    card = (model / "README.md").read_text()
    for words in ("## Negatives", "## Loss", "## Training", "## Figures", "infonce", "bm25 % 3", "filtered_as_false"):
        assert words in card
    assert json.loads((model / "training.json").read_text())["completed"] is True
    assert len((model / "examples.jsonl").read_text().splitlines()) == 7
    # a second run reuses the model and the mined examples: nothing is trained again
    assert main(["train", str(recipe), "--quiet", "--no-eval"]) == 0
    assert "trained 4 steps" in capsys.readouterr().out


def _tensors(folder: Path) -> dict:
    from safetensors.torch import load_file
    return load_file(str(folder / "model.safetensors"))


def test_resume_after_kill_gives_the_uninterrupted_result(tmp_path, corpus_file, tiny_base):
    training = {"epochs": 40, "batch_size": 2, "learning_rate": 1e-3, "seed": 3, "threads": 1, "checkpoint_every": 4}
    recipe = write_recipe(tmp_path, corpus_file, tiny_base, "dense", training=training)
    recipe_data = json.loads(recipe.read_text())
    del recipe_data["evaluation"]
    recipe.write_text(json.dumps(recipe_data))
    command = [sys.executable, "-m", "rankstack.cli", "train", str(recipe), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command + ["--output", str(tmp_path / "whole")], check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    process = subprocess.Popen(command + ["--output", str(killed)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        found = sorted((killed / "checkpoints").glob("step-*")) if (killed / "checkpoints").is_dir() else []
        if found and int(found[-1].name.split("-")[1]) >= 8:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the training finished before it could be killed"
    assert not (killed / "training.json").exists()
    resumed = subprocess.run(command + ["--output", str(killed)], check=True, env=env, capture_output=True, text=True)
    assert "resumed from step" in resumed.stdout
    step = int(resumed.stdout.split("resumed from step ")[1].split()[0].rstrip(","))
    assert 8 <= step < 160
    whole, again = _tensors(tmp_path / "whole"), _tensors(killed)
    assert whole.keys() == again.keys()
    for name in whole:
        assert (whole[name] == again[name]).all(), name
    start = _tensors(tiny_base)
    assert any(not (start[n] == whole[n]).all() for n in start if n in whole)  # it did train
    report = json.loads((killed / "training.json").read_text())
    assert report["resumed_from"] == [step] and report["steps"] == 160
    assert not (killed / "checkpoints").exists()


def test_bad_recipes(tmp_path, corpus_file, tiny_base, capsys):
    recipe = write_recipe(tmp_path, corpus_file, tiny_base, extra={"x": 1})
    with pytest.raises(InputError, match="unknown recipe section"):
        load_recipe(recipe)
    assert main(["train", str(recipe)]) == 2
    assert "unknown recipe section" in capsys.readouterr().err
    recipe = write_recipe(tmp_path, corpus_file, tiny_base, loss={"name": "hinge"})
    assert main(["train", str(recipe), "--quiet"]) == 2
    assert "unknown loss 'hinge'" in capsys.readouterr().err
    recipe = write_recipe(tmp_path, corpus_file, tiny_base, mining={"stage": "bm25", "colour": 1})
    assert main(["train", str(recipe), "--quiet"]) == 2
    assert "mining: unknown key(s) ['colour']" in capsys.readouterr().err
    (tmp_path / "broken.yaml").write_text("model: [unclosed")
    with pytest.raises(InputError, match="not valid YAML"):
        load_recipe(tmp_path / "broken.yaml")
    recipe = write_recipe(tmp_path, corpus_file, tiny_base, model={"kind": "dense", "start": str(tmp_path / "none")})
    assert main(["train", str(recipe), "--quiet"]) == 2
    assert "model directory not found" in capsys.readouterr().err
