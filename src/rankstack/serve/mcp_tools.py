"""MCP tools over streamable HTTP (the `mcp` package): `search` and `fetch_document`, answered by the same Service
as the HTTP API (same pipelines, limits, batching and access rules)."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel

from rankstack.serve.errors import from_exception
from rankstack.serve.schemas import Count
from rankstack.serve.service import Service

PATH = "/mcp"


class FoundDocument(BaseModel):
    id: str
    score: float
    title: str
    snippet: str


class SearchResult(BaseModel):
    pipeline: str
    query: str
    hits: list[FoundDocument]


class FullDocument(BaseModel):
    id: str
    title: str
    text: str


def _plain(segments: list) -> str:
    return "".join(piece for piece, _ in segments)


def build(service: Service) -> MCPServer:
    """An MCP server whose tools search the service's pipelines and read its documents."""
    server = MCPServer("rankstack", instructions="Search a rankstack collection with `search`; read a whole "
                       "document with `fetch_document`. `search` without a pipeline uses the server's first one.")

    async def run(fn, *args) -> Any:
        try:
            return await service.read(fn, *args)
        except Exception as e:  # noqa: BLE001 - answered as a tool error with a safe message
            raise ToolError(from_exception(e).body()["message"]) from None

    @server.tool()
    async def search(query: str, pipeline: str | None = None, k: Count = 10) -> SearchResult:
        """Search the collection. Returns the top k hits best first: id, score, title and a snippet of the text
        around the query's terms. `pipeline`: one of the server's pipelines (default: the first)."""
        result = await run(service.search, pipeline, query, k, None, None, False, True)
        hits = [FoundDocument(id=h["id"], score=h["score"], title=_plain(h.get("title", [])),
                              snippet=_plain(h.get("snippet", []))) for h in result["hits"]]
        return SearchResult(pipeline=result["pipeline"], query=query, hits=hits)

    @server.tool()
    async def fetch_document(id: str) -> FullDocument:
        """The whole document with this id: id, title and text."""
        return FullDocument(**await run(service.document, id))

    return server

