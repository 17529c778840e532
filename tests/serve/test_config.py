"""The server config: checked before anything is built, each problem named."""

import json

import pytest

from rankstack.errors import InputError
from rankstack.serve.collection import Collection
from rankstack.serve.config import read_config
from rankstack.serve.limits import Limits


def write(tmp_path, config):
    path = tmp_path / "serve.json"
    path.write_text(json.dumps(config))
    return path


@pytest.mark.parametrize("config, message", [
    ({}, "needs 'pipelines'"),
    ({"pipelines": {"a": "x"}, "extra": 1}, "unknown keys"),
    ({"pipelines": {"a": 3}}, "must map names to strings"),
    ({"pipelines": {"a": "x"}, "documents": ["bm25"]}, "not in 'stages'"),
    ({"pipelines": {"a": "x"}, "serve": {"reads": "maybe"}}, "reads"),
    ({"pipelines": {"a": "x"}, "serve": {"threads": 0}}, "threads"),
    ({"pipelines": {"a": "x"}, "serve": {"batching": {"window_ms": -1}}}, "window_ms"),
    ({"pipelines": {"a": "x"}, "serve": {"batching": {"size": 3}}}, "unknown batching"),
    ({"pipelines": {"a": "x"}, "serve": {"limits": {"k": 0}}}, "limit k"),
    ({"pipelines": {"a": "x"}, "serve": {"limits": {"k": 2.5}}}, "whole number"),
    ({"pipelines": {"a": "x"}, "serve": {"limits": {"rows": 2}}}, "unknown limits"),
    ({"pipelines": {"a": "x"}, "serve": {"cors": "*", "colour": 1}}, "unknown serve settings"),
])
def test_bad_configs_name_their_problem(tmp_path, config, message):
    with pytest.raises(InputError, match=message):
        read_config(write(tmp_path, config))


def test_an_experiment_config_is_served_as_it_is(tmp_path):
    config = read_config(write(tmp_path, {"queries": "beir/scifact", "qrels": "beir/scifact", "measures": ["nDCG@10"],
                                          "baseline": "a", "pipelines": {"a": "BM25('idx')"}, "report": "r"}))
    assert config.expressions == {"a": "BM25('idx')"} and config.settings.limits == Limits()
    overridden = read_config(write(tmp_path, {"pipelines": {"a": "x"}}), {"batching": False, "threads": 4})
    assert overridden.settings.batching is False and overridden.settings.threads == 4


def test_a_second_copy_of_a_written_index_is_refused(tmp_path, indexes):
    import shutil

    shutil.copytree(indexes / "bm25", tmp_path / "bm25")
    config = read_config(write(tmp_path, {"stages": {"bm25": "BM25('bm25')"}, "documents": ["bm25"],
                                          "pipelines": {"ok": "bm25 % 10", "copy": "BM25('bm25') % 10"}}))
    with pytest.raises(InputError, match="on its own"):
        Collection(config)
    ok = read_config(write(tmp_path, {"stages": {"bm25": "BM25('bm25')"}, "documents": ["bm25"],
                                      "pipelines": {"ok": "bm25 % 10", "rm3": "RM3(bm25) % 10"}}))
    assert list(Collection(ok).pipelines) == ["ok", "rm3"]
