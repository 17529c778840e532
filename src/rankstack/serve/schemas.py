"""Request bodies of the HTTP API (pydantic models: they also make the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictFloat, StrictInt, model_validator


def _valid_unicode(value: str) -> str:
    """Refuse lone surrogates (JSON "\\ud800" decodes to one; no text encoding can store it)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the string holds an unpaired surrogate (invalid Unicode)") from None
    return value


Text = Annotated[str, AfterValidator(_valid_unicode)]
#: A document id: 1 to 512 characters, no control characters.
DocId = Annotated[str, Field(min_length=1, max_length=512, pattern=r"^[^\x00-\x1f\x7f]+$"),
                  AfterValidator(_valid_unicode)]
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_valid_unicode)]
Count = Annotated[StrictInt, Field(ge=1)]  # a JSON integer >= 1: `true`, `"3"` or 2.5 is no count


class Strict(BaseModel):
    """Unknown fields refused; numbers are JSON numbers (StrictInt, StrictFloat: `true` or `"3"` is no count)."""
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class SearchRequest(Strict):
    query: Text = Field(description="the query text")
    pipeline: Name | None = Field(None, description="a pipeline name (GET /api/pipelines); default: the first")
    k: Count = Field(10, description="hits to return (at most the k limit)")
    ids: list[DocId] | None = Field(None, description="only these documents may be returned")
    qid: Text | None = Field(None, description="a judged query's id: adds relevance marks and nDCG@10")
    explain: bool = Field(False, description="add each stage's score to each hit")
    text: bool = Field(False, description="add each hit's title and a snippet with the query terms marked")


class BatchQuery(Strict):
    id: Name
    query: Text


class BatchSearchRequest(Strict):
    queries: list[BatchQuery | Text] = Field(description="queries: {id, query} objects, or texts (ids 0, 1, ...)")
    pipeline: Name | None = None
    k: Count = 10


class Candidate(Strict):
    id: DocId | None = Field(None, description="the document id (its text is read from the collection if not given)")
    text: Text | None = Field(None, description="the candidate's text")

    @model_validator(mode="after")
    def _id_or_text(self):
        if self.id is None and self.text is None:
            raise ValueError("a candidate needs an id or a text")
        return self


class RerankRequest(Strict):
    query: Text
    pipeline: Name = Field(description="a second-stage pipeline (a reranker)")
    candidates: list[Candidate | DocId] = Field(description="best first: {id, text} objects or document ids")
    k: Count | None = Field(None, description="hits to return (default: all candidates)")


class Hit(Strict):
    id: DocId
    score: StrictFloat = Field(ge=-3.4e38, le=3.4e38, description="a finite float32")


class FuseRequest(Strict):
    runs: list[list[Hit]] | None = Field(None, description="ranked lists to fuse (or give pipelines and a query)")
    pipelines: list[Name] | None = Field(None, description="pipelines whose results for `query` are fused")
    query: Text | None = None
    method: Literal["rrf", "combsum", "combmnz"] = "rrf"
    k: Count = Field(10, description="hits to return")
    rrf_k: StrictInt = Field(60, ge=0, le=1_000_000, description="the k of reciprocal rank fusion")
    weights: list[float] | None = None
    norm: Literal["minmax", "zscore", "none"] = "minmax"

    @model_validator(mode="after")
    def _runs_or_pipelines(self):
        if (self.runs is None) == (self.pipelines is None):
            raise ValueError("give either runs, or pipelines and a query")
        if self.pipelines is not None and self.query is None:
            raise ValueError("fusing pipelines needs a query")
        return self


class DocumentBody(Strict):
    title: Text = ""
    text: Text


class DocumentIn(DocumentBody):
    id: DocId


class DocumentsRequest(Strict):
    documents: list[DocumentIn] = Field(description="documents to add; an existing id is replaced")
