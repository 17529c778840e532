"""`rankstack demo` with a tiny random dense model (mechanics: the table, the cache, first-use compilation reported
on its own line); `--bm25-only` as a fresh process, offline, on the shipped SciFact, with its real figures."""

import os
import subprocess
import sys

from rankstack.cli import main
from rankstack.devices import cpu_has_bf16_units


def table_rows(out: str) -> list[str]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("run"))
    rows = []
    for line in lines[start + 1:]:
        if not line.strip() or line.endswith(" queries"):
            break
        rows.append(line)
    return rows


def test_demo_fuses_bm25_and_dense_into_one_table(tiny, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("RANKSTACK_DATA", "")
    cache = tmp_path / "cache"
    args = ["demo", "--encoder", str(tiny["mlm"]), "--cache", str(cache), "-m", "nDCG@10", "-m", "R@100"]
    assert main(args) == 0
    out = capsys.readouterr().out
    rows = table_rows(out)
    assert [r.split()[0] for r in rows] == ["zero-shot", "BM25", "dense"]  # the fused row above BM25
    # On a CPU: bf16 where it has bf16 units, else int8, and 128 tokens by default, and said so
    assert f"dense mlm ({'bfloat16' if cpu_has_bf16_units() else 'int8'}, 128 tokens)" in rows[2]
    assert "(baseline)" in rows[1] and "queries/s" in out
    assert "numba kernels ready in" in out and "BM25 index: 5,183 documents in" in out
    assert "dense index: encoded 5,183 documents in" in out and "documents/s" in out
    bm25_ndcg = float(rows[1].split()[2].rstrip("†"))
    assert abs(bm25_ndcg - 0.6785) < 0.001
    folder = cache / "beir__scifact"
    assert (folder / "bm25" / "manifest.json").exists()
    assert not list(folder.glob("shards-*")) and not list(folder.glob("warm-up-*"))  # nothing left over
    # A second run reuses both indexes and prints the same table.
    assert main(args) == 0
    again = capsys.readouterr().out
    assert "BM25 index: reused" in again and "dense index: reused" in again
    assert table_rows(again)[:2] == rows[:2] or [r.split()[:4] for r in table_rows(again)] == \
        [r.split()[:4] for r in rows]


def test_demo_without_cache_leaves_nothing(tiny, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("RANKSTACK_DATA", "")
    cache = tmp_path / "cache"
    assert main(["demo", "--encoder", str(tiny["mlm"]), "--cache", str(cache), "--no-cache", "-m", "nDCG@10",
                 "--precision", "float32", "--max-length", "16"]) == 0
    out = capsys.readouterr().out
    assert "zero-shot fusion(BM25, dense)" in out and "dense mlm (float32, 16 tokens)" in out and "reused" not in out
    assert list(cache.iterdir()) == []


def test_demo_refuses_a_negative_max_length(tiny, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("RANKSTACK_DATA", "")
    assert main(["demo", "--encoder", str(tiny["mlm"]), "--cache", str(tmp_path), "--max-length", "-1"]) == 2
    assert "--max-length must be 0" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # refused before any work


def test_demo_refuses_a_bad_measure_before_any_work(capsys, tmp_path):
    assert main(["demo", "--bm25-only", "--cache", str(tmp_path), "-m", "nDCG@x"]) == 2
    assert "invalid measure" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_console_script_demo_bm25_only_runs_offline(tmp_path):
    """`rankstack demo --bm25-only` end to end, as a fresh process, on the embedded SciFact."""
    env = {"RANKSTACK_DATA": "", "PATH": "", "PYTHONPATH": os.pathsep.join(sys.path), "HOME": str(tmp_path),
           "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "rankstack.cli", "demo", "--bm25-only"], capture_output=True,
                         text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr
    (row,) = table_rows(out.stdout)
    ndcg = float(row.split()[1])
    assert abs(ndcg - 0.6789) < 0.005
    assert (tmp_path / ".cache" / "rankstack" / "demo" / "beir__scifact" / "bm25" / "manifest.json").exists()


def test_demo_precision_auto_follows_the_cpu(monkeypatch):
    from rankstack.cli import demo
    for has_units, expected in ((True, "bf16"), (False, "int8")):
        monkeypatch.setattr("rankstack.devices.cpu_has_bf16_units", lambda: has_units)
        assert demo._dtype("auto") == expected
    assert demo._dtype("float32") == "fp32" and demo._dtype("int8") == "int8" and demo._dtype("bf16") == "bf16"
