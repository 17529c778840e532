"""Training examples: a query, one relevant document, hard negatives and (for distillation) a teacher's scores.

    examples = mine_negatives(bm25, train.queries, train.qrels, depth=100, count=8)   # rankstack.train.mining
    save_examples(examples, "negatives.jsonl"); load_examples("negatives.jsonl")

Documents are named by id; their texts come from a `Texts` source (rankstack.rerank.texts) at training time.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from rankstack.errors import InputError


@dataclass
class Example:
    """One (query, positive) pair with its negatives (best-ranked first) and, optionally, a teacher's scores of
    the positive and the negatives by document id."""

    qid: str
    query: str
    positive: str
    negatives: list[str] = field(default_factory=list)
    teacher: dict[str, float] | None = None

    def teacher_scores(self, doc_ids: Iterable[str]) -> list[float]:
        """The teacher's scores of `doc_ids`; InputError when the example has none for one of them."""
        if self.teacher is None:
            raise InputError(f"query {self.qid!r} has no teacher scores: attach them (rankstack.train.mining."
                             "attach_teacher_scores) or choose a loss without a teacher")
        try:
            return [self.teacher[d] for d in doc_ids]
        except KeyError as e:
            raise InputError(f"query {self.qid!r}: no teacher score for document {e.args[0]!r}") from None


def save_examples(examples: Iterable[Example], path: str | os.PathLike) -> None:
    """Write examples as JSON lines (written to a temporary file, then renamed)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for example in examples:
            f.write(json.dumps(asdict(example), ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def load_examples(path: str | os.PathLike) -> list[Example]:
    """Examples from a JSON-lines file written by `save_examples`."""
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    out.append(Example(str(row["qid"]), str(row["query"]), str(row["positive"]),
                                       [str(d) for d in row.get("negatives", [])], row.get("teacher")))
                except (ValueError, KeyError, TypeError) as e:
                    raise InputError(f"not a training example ({type(e).__name__}: {e})", path, number) from None
    except OSError as e:
        raise InputError(f"cannot read training examples: {e}", path) from None
    return out
