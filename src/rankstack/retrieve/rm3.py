"""RM3 pseudo-relevance feedback for BM25, as Anserini does it.

The top `fb_docs` documents of the original query form a relevance model: each document's term
distribution P(t|D) = tf / |D|, weighted by the document's BM25 score, summed, cut to the
`fb_terms` heaviest terms and L1-normalised. The expanded query interpolates it with the
L1-normalised original query: `original_weight * P(t|Q) + (1 - original_weight) * P(t|R)`.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from collections import Counter
from typing import Any

from rankstack.data.queries import Queries
from rankstack.data.run import Run
from rankstack.errors import InputError
from rankstack.pipeline.stage import Stage
from rankstack.retrieve.bm25 import BM25

_PLAIN_TERM = re.compile(r"[a-z0-9]+")  # Anserini keeps only such feedback terms


class RM3(Stage):
    """BM25 with RM3 query expansion (Anserini's defaults: 10 docs, 10 terms, weight 0.5)."""

    first_stage = True

    def __init__(self, bm25: BM25, fb_docs: int = 10, fb_terms: int = 10, original_weight: float = 0.5,
                 k: int | None = None):
        if fb_docs < 1 or fb_terms < 1 or not 0 <= original_weight <= 1:
            raise InputError("RM3 needs fb_docs >= 1, fb_terms >= 1 and 0 <= original_weight <= 1")
        if not bm25.index.settings["store"]:
            raise InputError(f"RM3 reads the feedback documents' text: {bm25.index.path} was built with store=False")
        self.bm25, self.fb_docs, self.fb_terms, self.original_weight = bm25, fb_docs, fb_terms, original_weight
        self.k = k or bm25.k

    def expand(self, query: str) -> dict[str, float]:
        """The expanded query as term -> weight."""
        return self._expand_batch([query])[0]

    def _expand_batch(self, texts: list[str]) -> list[dict[str, float]]:
        index, analyzer = self.bm25.index, self.bm25.analyzer
        originals = [self.bm25.query_terms(t) for t in texts]
        feedback = index.search(originals, self.fb_docs, replace(self.bm25.params, theta=1.0))
        expanded = []
        for original, (docnos, scores) in zip(originals, feedback):
            if not original:
                expanded.append({})
                continue
            model: Counter = Counter()
            for doc, score in zip(index.stored(docnos), scores.tolist()):
                fields = json.loads(doc)
                terms = Counter(t for t in analyzer.analyze(f"{fields['title']} {fields['text']}".strip())
                                if _PLAIN_TERM.fullmatch(t))
                length = sum(terms.values())
                for term, tf in terms.items():
                    model[term] += score * tf / length
            top = dict(model.most_common(self.fb_terms))
            model_norm, query_norm = sum(top.values()) or 1.0, sum(original.values())
            weights = {t: self.original_weight * c / query_norm for t, c in original.items()}
            for term, w in top.items():
                weights[term] = weights.get(term, 0.0) + (1 - self.original_weight) * w / model_norm
            expanded.append(weights)
        return expanded

    def transform(self, queries: Queries, run: Run | None = None) -> Run:
        qids = list(queries)
        expanded = self._expand_batch([queries[q] for q in qids])
        hits = self.bm25.index.search(expanded, self.k, self.bm25.params)
        return Run(dict(zip(qids, hits)), self.bm25.index.doc_ids, name="BM25+RM3", presorted=True)

    def config(self) -> dict[str, Any]:
        return {"bm25": self.bm25, "fb_docs": self.fb_docs, "fb_terms": self.fb_terms,
                "original_weight": self.original_weight, "k": self.k}
