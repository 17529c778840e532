"""Query terms marked in document text: the text cut into [piece, matched] segments, matched where a word analyses
(tokenizer, stopwords, stemmer) to a term of the analysed query."""

from __future__ import annotations

import re

from rankstack.text.analyzer import Analyzer

Segments = list[tuple[str, bool]]


class Highlighter:
    def __init__(self, analyzer: Analyzer):
        self.analyzer = analyzer
        self._words = re.compile(analyzer.pattern, re.IGNORECASE if analyzer.lowercase else 0)

    def terms(self, query: str) -> set[str]:
        return set(self.analyzer.analyze(query))

    def segments(self, text: str, terms: set[str], window: int | None = None) -> Segments:
        """`text` as segments with the words matching `terms` marked; `window` characters at most, around the
        first match (with '…' where cut)."""
        spans = [(m.start(), m.end()) for m in self._words.finditer(text)
                 if terms and (a := self.analyzer.analyze(m.group())) and a[0] in terms]
        start, end = 0, len(text)
        if window is not None and len(text) > window:
            first = spans[0][0] if spans else 0
            start = max(0, min(first - window // 4, len(text) - window))
            start = text.rfind(" ", 0, start) + 1 if start > 0 else 0
            end = min(len(text), start + window)
            space = text.find(" ", end)
            end = space if 0 <= space < end + 20 else end
        out: Segments = [("…", False)] if start > 0 else []
        pos = start
        for a, b in spans:
            if a < start or b > end:
                continue
            if a > pos:
                out.append((text[pos:a], False))
            out.append((text[a:b], True))
            pos = b
        if pos < end:
            out.append((text[pos:end], False))
        if end < len(text):
            out.append(("…", False))
        return out
