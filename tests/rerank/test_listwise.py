"""Listwise (RankGPT / FIRST): permutation parsing (property tests), sliding windows, the HTTP backend against a
scripted server (malformed, partial, duplicate answers, 5xx, hangs, concurrency), the local backend with a tiny
random Llama (FIRST equals a direct forward pass). Whatever happens, no document is lost or duplicated."""

import logging
import re

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rankstack import Document, Queries, Run
from rankstack.errors import InputError
from rankstack.pipeline.config import parse
from rankstack.rerank import CorpusTexts
from rankstack.rerank.listwise import (LETTERS, Listwise, identifiers, parse_permutation, truncate_words,
                                       window_prompt, windows)
from tests.rerank.lm_models import llama_dir  # noqa: F401 (fixture)
from tests.rerank.test_openai_client import ScriptedServer

DOCS = [Document(f"d{i}", f"passage number {i} about fleas and their eggs " * (1 + i % 3)) for i in range(12)]
QUERIES = Queries({f"q{k}": f"query {k}" for k in range(5)})
RUN = Run.from_dict({f"q{k}": {f"d{(i + k) % 12}": 20.0 - i for i in range(12)} for k in range(5)})


# --- parsing -------------------------------------------------------------------------------------------------


@given(st.text(max_size=200), st.integers(1, 30), st.booleans())
def test_any_text_gives_a_permutation(text, n, letters):
    perm, found = parse_permutation(text, n, letters)
    assert sorted(perm) == list(range(n)) and 0 <= found <= n


@given(st.permutations(list(range(20))).flatmap(lambda p: st.tuples(st.just(p), st.integers(1, 20))),
       st.sampled_from(["[{}]", "{}", "[{}] ", "passage {}"]), st.sampled_from([" > ", ">", ", ", "\n"]))
def test_well_formed_answers_are_read_exactly(perm_n, fmt, sep):
    perm, n = perm_n
    perm = [i for i in perm if i < n]
    text = sep.join(fmt.format(i + 1) for i in perm)
    assert parse_permutation(text, n) == (perm, n)
    letters = sep.join(fmt.format(LETTERS[i]) for i in perm)
    assert parse_permutation(letters, n, letters=True) == (perm, n)


@given(st.lists(st.integers(-3, 40), max_size=40), st.integers(1, 20))
def test_duplicates_and_out_of_range_are_repaired(ids, n):
    text = " > ".join(f"[{i}]" for i in ids)
    perm, found = parse_permutation(text, n)
    named = list(dict.fromkeys(i - 1 for i in ids if 1 <= i <= n))
    assert perm[:found] == named and found == len(named)
    assert perm[found:] == [i for i in range(n) if i not in named]  # missing ones in their input order
    assert sorted(perm) == list(range(n))


def test_loose_variants():
    assert parse_permutation("[3] > [1] > [2]", 3) == ([2, 0, 1], 3)
    assert parse_permutation("The ranking is: 3>1", 3) == ([2, 0, 1], 2)
    assert parse_permutation("[2] > [2] > [9] > [0]", 3) == ([1, 0, 2], 1)
    assert parse_permutation("I cannot rank these passages.", 3) == ([0, 1, 2], 0)
    assert parse_permutation(None, 2) == ([0, 1], 0)
    assert parse_permutation("[C] > [A]", 3, letters=True) == ([2, 0, 1], 2)
    assert parse_permutation("A > Z > b > B", 3, letters=True) == ([0, 1, 2], 2)


@settings(deadline=None)  # pure arithmetic: a busy shared machine must not fail it on time
@given(st.integers(0, 120), st.integers(1, 25), st.integers(1, 24))
def test_windows_cover_the_ranks_bottom_up(n, window, stride):
    assume(stride < window or stride == window == 1)  # what Listwise accepts
    spans = windows(n, window, stride)
    if n == 0:
        assert spans == []
        return
    assert spans[0][1] == n and spans[-1][0] == 0
    assert all(e - s <= window for s, e in spans)
    assert set().union(*(range(s, e) for s, e in spans)) == set(range(n))
    assert all(a[0] > b[0] for a, b in zip(spans, spans[1:]))


def test_prompt_lists_every_passage():
    text = window_prompt("flea eggs", ["a", "b", "c"])
    assert re.findall(r"^\[(\d+)\] ", text, flags=re.M) == ["1", "2", "3"] and "flea eggs" in text
    assert re.findall(r"^\[(\w)\] ", window_prompt("q", ["a", "b"], letters=True), flags=re.M) == ["A", "B"]
    with pytest.raises(InputError, match="26"):
        identifiers(27, letters=True)


# --- the HTTP backend ----------------------------------------------------------------------------------------


@pytest.fixture
def server():
    s = ScriptedServer()
    yield s
    s.close()


def http_stage(server, **kwargs):
    args = {"depth": 8, "window": 4, "stride": 2, "backoff": 0.0, "timeout": 5.0}
    return Listwise("test-model", CorpusTexts(DOCS), base_url=server.url, **{**args, **kwargs})


def simulate(ids, depth, window, stride, answer):
    """Sliding windows by hand: `answer(window ids)` gives the new order of a window."""
    order = list(ids[:depth])
    for s, e in windows(len(order), window, stride):
        order[s:e] = answer(order[s:e])
    return order + list(ids[depth:])


def check_complete(out, run=RUN):
    for q in run:
        ids = out.ids(q)
        assert sorted(ids) == sorted(run.ids(q)) and len(set(ids)) == len(ids)
        assert np.all(np.diff(out[q].scores) < 0)


def test_sliding_windows_follow_the_answers(server):
    stage = http_stage(server)
    out = stage(QUERIES, RUN)  # the server answers each window reversed
    check_complete(out)
    for q in QUERIES:
        assert out.ids(q) == simulate(RUN.ids(q), 8, 4, 2, lambda w: w[::-1])
    assert stage.stats["windows"] == 5 * len(windows(8, 4, 2)) and stage.stats["fallbacks"] == 0
    assert server.requests[0]["model"] == "test-model" and server.requests[0]["temperature"] == 0.0


def test_malformed_partial_and_duplicate_answers(server):
    server.script["query 0"] = [("text", "Sorry, I cannot do that."), ("text", "[2] > [2] > [7] > [1]")]
    server.script["query 1"] = [("text", "[3]")]
    server.script["query 2"] = [("raw", b"{}")]  # JSON, but no message: unusable, asked again
    stage = http_stage(server, depth=4, window=4)
    out = stage(QUERIES, RUN)
    check_complete(out)
    first = RUN.ids("q0")[:4]
    assert out.ids("q0")[:4] == [first[1], first[0], first[2], first[3]]  # duplicate and out of range repaired
    one = RUN.ids("q1")[:4]
    assert out.ids("q1")[:4] == [one[2], one[0], one[1], one[3]]  # partial: the rest in input order
    assert out.ids("q2")[:4] == RUN.ids("q2")[:4][::-1]  # the second answer was the default
    assert stage.stats["repaired"] == 2 and stage.stats["fallbacks"] == 0
    assert sum("Search Query: query 0." in r["messages"][-1]["content"] for r in server.requests) == 2


def test_server_errors_then_success_and_a_hang(server):
    server.script["query 0"] = [("status", 500), ("status", 502)]
    server.script["query 1"] = [("hang", 3.0)]
    server.script["query 2"] = [("status", 429, 0)]
    stage = http_stage(server, depth=4, window=4, timeout=0.5, retries=3)
    out = stage(QUERIES, RUN)
    check_complete(out)
    for q in QUERIES:
        assert out.ids(q)[:4] == RUN.ids(q)[:4][::-1]
    assert stage.stats["fallbacks"] == 0


def test_unusable_after_retries_keeps_the_input_order(server, caplog):
    server.script["query 0"] = [("status", 500)] * 10
    server.script["query 1"] = [("text", "no idea")] * 10
    stage = http_stage(server, depth=4, window=4, retries=2)
    with caplog.at_level(logging.WARNING, logger="rankstack.rerank.listwise"):
        out = stage(QUERIES, RUN)
    check_complete(out)
    assert out.ids("q0") == RUN.ids("q0") and out.ids("q1") == RUN.ids("q1")  # kept as they were
    assert out.ids("q2")[:4] == RUN.ids("q2")[:4][::-1]
    assert stage.stats["fallbacks"] == 2
    assert sum("keeping its input order" in r.message for r in caplog.records) == 2
    assert sum("query 1." in r["messages"][-1]["content"] for r in server.requests) == 3  # asked 1 + 2 times


def test_windows_of_different_queries_run_in_parallel_within_the_limit(server):
    for k in range(5):
        server.script[f"query {k}"] = [("delay", 0.2)] * 3
    stage = http_stage(server, depth=8, window=4, stride=2, concurrency=2)
    check_complete(stage(QUERIES, RUN))
    assert server.max_in_flight == 2


def test_first_token_reads_logprobs_or_falls_back_to_text(server):
    logprobs = [{"token": "[", "logprob": -0.01, "top_logprobs": [{"token": "[", "logprob": -0.01}]},
                {"token": "C", "logprob": -0.1, "top_logprobs": [{"token": "C", "logprob": -0.1},
                                                                 {"token": " A", "logprob": -1.0},
                                                                 {"token": "Z", "logprob": -2.0},
                                                                 {"token": "D", "logprob": -3.0}]}]
    server.script["query 0"] = [("logprobs", "[C] > [A]", logprobs)]
    stage = http_stage(server, depth=4, window=4, first_token=True)
    out = stage(QUERIES, RUN)
    check_complete(out)
    head = RUN.ids("q0")[:4]
    assert out.ids("q0")[:4] == [head[2], head[0], head[3], head[1]]  # by logprob; B not among them: last
    assert out.ids("q1")[:4] == RUN.ids("q1")[:4][::-1]  # no logprobs: the text, parsed
    assert stage.stats["first_token_text"] == 4
    assert server.requests[0]["logprobs"] is True and server.requests[0]["top_logprobs"] == 4


def test_depth_one_and_empty_runs(server):
    run = Run.from_dict({"q0": {"d1": 1.0}, "q1": {}})
    out = http_stage(server)(Queries({"q0": "query 0", "q1": "query 1"}), run)
    assert out.ids("q0") == ["d1"] and out.ids("q1") == [] and not server.requests


def test_settings_are_checked_and_repr_rebuilds(server):
    with pytest.raises(InputError, match="stride"):
        http_stage(server, window=4, stride=4)
    with pytest.raises(InputError, match="26"):
        http_stage(server, window=30, first_token=True)
    with pytest.raises(InputError, match="texts"):
        Listwise("m", base_url=server.url)(QUERIES, RUN)
    stage = Listwise("m", base_url=server.url, window=6, stride=3, api_key_env="MY_KEY")
    assert "MY_KEY" in repr(stage) and "sk-" not in repr(stage)
    assert repr(parse(repr(stage))) == repr(stage)


# --- the local backend ---------------------------------------------------------------------------------------


def test_local_first_token_equals_a_direct_forward_pass(llama_dir):  # noqa: F811
    torch = pytest.importorskip("torch")
    stage = Listwise(llama_dir, CorpusTexts(DOCS), depth=6, window=6, stride=3, first_token=True, passage_words=8,
                     device="cpu", batch_size=3)
    backend = stage.backend
    windows_in = [(QUERIES[q], [truncate_words(d.contents, 4) for d in DOCS[:6]]) for q in ["q0", "q1"]]
    perms = stage.rank_windows(windows_in)
    for (query, passages), perm in zip(windows_in, perms):
        ids = backend._encode(query, passages)
        assert ids == backend.prompter.encode([backend.prompter.text(window_prompt(query, passages, True), "[")])[0]
        with torch.inference_mode():
            logits = backend.loaded.model(input_ids=torch.tensor([ids])).logits[0, -1]
        expected = np.argsort(-logits[backend.id_tokens[:6]].numpy(), kind="stable").tolist()
        assert perm == expected
    out = stage(QUERIES, RUN)
    check_complete(out)


def test_local_generation_is_parsed_and_repaired(llama_dir):  # noqa: F811
    stage = Listwise(llama_dir, CorpusTexts(DOCS), depth=6, window=4, stride=2, passage_words=6, device="cpu",
                     max_new_tokens=12)
    out = stage(Queries({"q0": QUERIES["q0"], "q1": QUERIES["q1"]}), RUN)
    check_complete(out, Run({q: (RUN[q].docnos, RUN[q].scores) for q in ["q0", "q1"]}, RUN.doc_ids))
    for q in ["q0", "q1"]:
        ids = out.ids(q)
        assert sorted(ids) == sorted(RUN.ids(q)) and ids[6:] == RUN.ids(q)[6:]
    assert stage.stats["windows"] == 2 * len(windows(6, 4, 2))
