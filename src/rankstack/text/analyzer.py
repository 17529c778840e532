"""Lexical analysis: tokenize, lowercase, drop stopwords, stem. Recorded in an index as a plain dict."""

from __future__ import annotations

import re
from itertools import chain
from typing import Any, Iterable

import Stemmer

from rankstack.errors import InputError
from rankstack.text import stopwords as stopword_lists

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
                if len(cache) < 2_000_000:  # bounded when searching (indexing keeps every token it meets)
                    cache[token] = term
            if term is not None:
                out.append(term)
        return out

    def analyze_batch(self, texts: list[str]) -> tuple[list[str | None], list[int]]:
        """Analyse many texts at once: (terms of all texts, in order, None for dropped tokens; token
        count per text). Much faster than `analyze` per text for indexing."""
        findall = self._regex.findall
        tokens = [findall(t.lower()) for t in texts] if self.lowercase else [findall(t) for t in texts]
        counts = [len(t) for t in tokens]
        flat = list(chain.from_iterable(tokens))
        return list(map(self._cache.__getitem__, flat)), counts  # a new token is normalised once, and kept

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


class _Normalised(dict):
    """token -> index term (None: dropped), a token missing from it normalised and kept at its first lookup."""

    def __init__(self, normalise):
        super().__init__()
        self._normalise = normalise

    def __missing__(self, token: str) -> str | None:
        self[token] = term = self._normalise(token)
        return term
