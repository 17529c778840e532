"""Stopword lists, by name."""

from __future__ import annotations

from typing import Iterable

from rankstack.errors import InputError

# Lucene's EnglishAnalyzer default stop set (used by Anserini).
LUCENE = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there "
    "these they this to was will with".split()
)

# A larger English list (NLTK's), for those who want aggressive stopping.
ENGLISH = frozenset(
    "i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves he "
    "him his himself she she's her hers herself it it's its itself they them their theirs themselves what "
    "which who whom this that that'll these those am is are was were be been being have has had having do "
    "does did doing a an the and but if or because as until while of at by for with about against between "
    "into through during before after above below to from up down in out on off over under again further "
    "then once here there when where why how all any both each few more most other some such no nor not "
    "only own same so than too very s t can will just don don't should should've now d ll m o re ve y ain "
    "aren aren't couldn couldn't didn didn't doesn doesn't hadn hadn't hasn hasn't haven haven't isn isn't "
    "ma mightn mightn't mustn mustn't needn needn't shan shan't shouldn shouldn't wasn wasn't weren weren't "
    "won won't wouldn wouldn't".split()
)

NAMED = {"lucene": LUCENE, "english": ENGLISH, "none": frozenset()}


def resolve(stopwords: str | Iterable[str] | None) -> tuple[str | list[str], frozenset[str]]:
    """Return (a JSON-serialisable description, the word set) for a name, a list of words or None."""
    if stopwords is None:
        return "none", frozenset()
    if isinstance(stopwords, str):
        if stopwords not in NAMED:
            raise InputError(f"unknown stopword list {stopwords!r}; use one of {sorted(NAMED)} or a list of words")
        return stopwords, NAMED[stopwords]
    words = sorted({w.lower() for w in stopwords})
    return words, frozenset(words)
