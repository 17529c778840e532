"""Lexical analysis: tokenize, lowercase, drop stopwords, stem. Recorded in an index as a plain dict."""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import chain
from typing import Any, Iterable

import numpy as np
import Stemmer

from rankstack.errors import InputError
from rankstack.text import stopwords as stopword_lists
from rankstack.text.ascii_tokens import TokenTable

# Words with inner apostrophes or dots kept whole ("don't", "u.s", "3.5"), roughly as Lucene's
# StandardTokenizer does; a trailing possessive "'s" is removed as Lucene's EnglishPossessiveFilter does.
DEFAULT_PATTERN = r"\w+(?:['’.]\w+)*"
STEMMERS = ("porter", "english", "none")


class Analyzer:
    """Turns text into index terms.

    Defaults follow Anserini's English analysis (Lucene's stop set, Porter stemming).
    `stemmer` is a PyStemmer algorithm name: ``porter`` (Porter 1980, as Lucene/Anserini),
    ``english`` (Snowball Porter2), any other Snowball language, or ``none``.
    """

    def __init__(self, stemmer: str = "porter", stopwords: str | Iterable[str] | None = "lucene",
                 lowercase: bool = True, pattern: str = DEFAULT_PATTERN, max_token_length: int = 255):
        self.stemmer_name = stemmer or "none"
        self.stopwords_spec, self._stopwords = stopword_lists.resolve(stopwords)
        self.lowercase = lowercase
        self.pattern = pattern
        self.max_token_length = max_token_length
        try:
            self._regex = re.compile(pattern)
        except re.error as e:
            raise InputError(f"invalid tokenizer pattern {pattern!r}: {e}") from None
        if self.stemmer_name == "none":
            self._stemmer = None
        else:
            try:
                # no PyStemmer cache (maxCacheSize 0): this class caches every token, and PyStemmer's
                # bounded cache, purged as new words arrive, made each stem of a build 4x slower
                self._stemmer = Stemmer.Stemmer(self.stemmer_name, 0)
            except KeyError:
                raise InputError(f"unknown stemmer {stemmer!r}; use 'porter', 'english', 'none' or another "
                                 f"language of {sorted(Stemmer.algorithms())}") from None
        self._cache = _Normalised(self._normalise)
        self._tokens = TokenTable(self._normalise)

    def tokenize(self, text: str) -> list[str]:
        """Raw tokens, lowercased when configured, before stopping and stemming."""
        return self._regex.findall(text.lower() if self.lowercase else text)

    def analyze(self, text: str) -> list[str]:
        """Index terms of `text`, in order, repeats kept."""
        cache = self._cache
        out = []
        for token in self._regex.findall(text.lower() if self.lowercase else text):
            term = cache.get(token, 0)
            if term == 0:
                term = self._normalise(token)
                if len(cache) < 2_000_000:  # bounded: queries may hold any string
                    cache[token] = term
            if term is not None:
                out.append(term)
        return out

    def analyze_batch(self, texts: list[str]) -> "TermBatch":
        """Analyse many texts at once, as `analyze` each: much faster for indexing. With the default pattern, ASCII
        texts are tokenized by a compiled kernel, the others by the regex; every distinct token is numbered and
        normalised once, and kept (rankstack.text.ascii_tokens.TokenTable: a build's whole vocabulary)."""
        table = self._tokens
        fast = [i for i, t in enumerate(texts) if t.isascii()] if self.pattern == DEFAULT_PATTERN else []
        if len(fast) == len(texts):
            codes, counts = table.ascii_codes(texts, self.lowercase)
        else:
            codes, counts = self._merge_slow(texts, fast)
        return TermBatch(table.terms, codes, counts)

    def _merge_slow(self, texts: list[str], fast: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Codes and token counts of texts of which only those at `fast` may go through the compiled tokenizer: the
        others through the regex, all merged in text order."""
        table = self._tokens
        fast_set = set(fast)
        slow = [i for i in range(len(texts)) if i not in fast_set]
        findall = self._regex.findall
        slow_tokens = [findall(texts[i].lower()) for i in slow] if self.lowercase else \
            [findall(texts[i]) for i in slow]
        fast_codes, fast_counts = table.ascii_codes([texts[i] for i in fast], self.lowercase)
        slow_codes = table.codes(list(chain.from_iterable(slow_tokens)))
        counts = np.zeros(len(texts), np.int64)
        counts[fast] = fast_counts
        counts[slow] = list(map(len, slow_tokens))
        starts = np.cumsum(counts) - counts
        codes = np.empty(int(counts.sum()), np.int32)
        for rows, part_codes in ((fast, fast_codes), (slow, slow_codes)):
            part_counts = counts[rows]
            shift = starts[rows] - (np.cumsum(part_counts) - part_counts)  # where each text's tokens move
            codes[np.arange(len(part_codes)) + np.repeat(shift, part_counts)] = part_codes
        return codes, counts

    def _normalise(self, token: str) -> str | None:
        term: str | None = token
        if term.endswith(("'s", "’s")):
            term = term[:-2]
        if not term or term in self._stopwords or len(term) > self.max_token_length:
            term = None
        elif self._stemmer is not None:
            term = self._stemmer.stemWord(term)
        return term

    def config(self) -> dict[str, Any]:
        """A JSON-serialisable description from which `from_config` rebuilds the same analyzer."""
        return {"stemmer": self.stemmer_name, "stopwords": self.stopwords_spec, "lowercase": self.lowercase,
                "pattern": self.pattern, "max_token_length": self.max_token_length}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Analyzer":
        return cls(**config)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Analyzer) and self.config() == other.config()

    def __repr__(self) -> str:
        return f"Analyzer(stemmer={self.stemmer_name!r}, stopwords={self.stopwords_spec!r})" \
            if isinstance(self.stopwords_spec, str) else f"Analyzer(stemmer={self.stemmer_name!r}, stopwords=[...])"


@dataclass
class TermBatch:
    """Analysed texts: `terms[codes[i]]` is the i-th token's index term (None: a dropped token), the first
    `counts[0]` tokens are the first text's, and so on. `terms` is the analyzer's list of every distinct token's
    term met so far (it only grows), so most of it may be other batches'."""

    terms: list[str | None]
    codes: np.ndarray  # int32, one per token
    counts: np.ndarray  # int64, tokens per text

    def flat(self) -> list[str | None]:
        """Every token's term, in order."""
        terms = self.terms
        return [terms[c] for c in self.codes.tolist()]


class _Normalised(dict):
    """token -> index term (None: dropped), a token missing from it normalised and kept at its first lookup."""

    def __init__(self, normalise):
        super().__init__()
        self._normalise = normalise

    def __missing__(self, token: str) -> str | None:
        self[token] = term = self._normalise(token)
        return term
