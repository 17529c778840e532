"""Pipelines as text: `repr(pipeline)` is an expression in the stage algebra, and `parse` rebuilds it.

    parse("(BM25(index='idx', k=1000) | RM3(bm25=BM25(index='idx'))).rrf(k=60) % 100")
    parse("(bm25 | dense).rrf() % 100 >> ce", stages={"bm25": ..., "dense": ..., "ce": ...})

The expression may use the stage classes (every Stage subclass, by name), the names in `stages`,
numbers, strings, lists and the operators `>>`, `%` and `|`. It is evaluated without builtins;
still, parse only configuration files you trust.
"""

from __future__ import annotations

import ast
import importlib
from typing import Mapping

from rankstack.errors import InputError
from rankstack.pipeline.stage import STAGE_TYPES, Stage

_ALLOWED = (ast.Expression, ast.BinOp, ast.RShift, ast.Mod, ast.BitOr, ast.Call, ast.Name, ast.Load, ast.Constant,
            ast.keyword, ast.Attribute, ast.List, ast.Tuple, ast.UnaryOp, ast.USub)


def parse(expression: str, stages: Mapping[str, Stage] | None = None) -> Stage:
    """Build the stage an expression describes (see the module docstring)."""
    _load_stage_modules()
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as e:
        raise InputError(f"pipeline expression {expression!r} is not valid: {e.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED) or (isinstance(node, ast.Attribute) and node.attr.startswith("_")):
            raise InputError(f"pipeline expression {expression!r} uses {type(node).__name__}, which is not allowed")
    namespace = {**STAGE_TYPES, **(stages or {})}
    try:
        stage = eval(compile(tree, "<pipeline>", "eval"), {"__builtins__": {}}, namespace)
    except NameError as e:
        raise InputError(f"pipeline expression {expression!r}: {e}; known names: {sorted(namespace)}") from None
    if not isinstance(stage, Stage):
        raise InputError(f"pipeline expression {expression!r} does not describe a stage")
    return stage


#: Modules that define stages; those needing an optional extra (torch, FAISS) are skipped when it is missing.
STAGE_MODULES = ("pipeline.fusion", "retrieve.bm25", "retrieve.rm3", "retrieve.dense", "retrieve.dense_prf",
                 "retrieve.sparse", "retrieve.late", "rerank.cross_encoder", "rerank.bi_encoder", "rerank.maxsim",
                 "rerank.query_likelihood", "rerank.pointwise", "rerank.listwise")


def _load_stage_modules() -> None:
    """Import the modules that define stages, so that their classes are registered."""
    for module in STAGE_MODULES:
        try:
            importlib.import_module(f"rankstack.{module}")
        except ImportError as e:
            if e.name is None or e.name.split(".")[0] not in ("torch", "transformers", "faiss"):
                raise
