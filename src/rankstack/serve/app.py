"""The FastAPI app: the HTTP API under /api, health and readiness, Prometheus metrics, the MCP endpoint and the
page, over one Service.

    app = create_app(read_config("serve.json"), token="...")   # uvicorn runs it (rankstack serve)
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from importlib import resources
from typing import Any, Callable

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from rankstack.data.corpus import Document
from rankstack.errors import RankstackError
from rankstack.serve import mcp_tools
from rankstack.serve.access import Access, BodyLimit, RequireToken
from rankstack.serve.config import ServeConfig
from rankstack.serve.errors import NotFound, ServiceError, from_exception, public_message
from rankstack.serve.metrics import CONTENT_TYPE, Metrics
from rankstack.serve.schemas import (BatchSearchRequest, DocumentBody, DocumentsRequest, FuseRequest,
                                     RerankRequest, SearchRequest)
from rankstack.serve.service import Service

log = logging.getLogger("rankstack.serve")

SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                                 b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
STATIC = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "style.css": "text/css; charset=utf-8"}


def create_app(config: ServeConfig, token: str | None = None, host: str = "127.0.0.1",
               on_failure: Callable[[str], None] | None = None) -> FastAPI:
    """The app serving `config`. Its pipelines are built in a background thread at start-up (GET /ready says when
    they are); `on_failure(message)` is called if that fails (the command stops the server then)."""
    settings = config.settings
    metrics = Metrics()
    service = Service(config, metrics)
    access = Access(token, settings.reads)
    mcp = mcp_tools.build(service)
    mcp_app = mcp.streamable_http_app(streamable_http_path=mcp_tools.PATH, stateless_http=True, json_response=True,
                                      host=host, max_request_body_size=settings.limits.body_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        def load() -> None:
            try:
                service.load()
            except Exception as e:  # noqa: BLE001 - reported, then the server stops
                log.error("cannot load the pipelines: %s", e)
                log.debug("loading failed", exc_info=True)
                if on_failure is not None:
                    on_failure(str(e))

        threading.Thread(target=load, name="rankstack-load", daemon=True).start()
        async with mcp.session_manager.run():
            yield
        service.close()

    app = FastAPI(title="rankstack", version=_version(), lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Multi-stage search over HTTP: search, batch search, rerank, fuse, documents. Errors "
                              "are JSON: {error, message[, limit]}.")
    app.state.service, app.state.metrics = service, metrics

    def reader(request: Request) -> None:
        access.check(request.headers.get("authorization"), write=False)

    def writer(request: Request) -> None:
        access.check(request.headers.get("authorization"), write=True)

    # --- errors ---------------------------------------------------------------------------------------------

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, e: ServiceError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
        return JSONResponse(e.body(), e.status, headers=headers)

    @app.exception_handler(RankstackError)
    async def _rankstack_error(request: Request, e: RankstackError) -> JSONResponse:
        error = from_exception(e)
        return JSONResponse(error.body(), error.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        problems = []
        for err in e.errors()[:5]:
            where = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
        return JSONResponse({"error": "invalid_request", "message": public_message("; ".join(problems))}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code, "bad_request")
        message = ("no such endpoint (the API is under /api; its schema is /openapi.json)" if e.status_code == 404
                   else str(e.detail))
        return JSONResponse({"error": kind, "message": public_message(message)}, e.status_code,
                            headers=getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(request: Request, e: Exception) -> JSONResponse:
        log.error("error answering %s %s", request.method, request.url.path, exc_info=e)
        error = from_exception(e)
        return JSONResponse(error.body(), error.status)

    # --- health, metrics, schema ------------------------------------------------------------------------------

    @app.get("/health", tags=["operations"], summary="Liveness: the process answers")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready", tags=["operations"], summary="Readiness: the pipelines are built (503 until then)",
             responses={503: {"description": "loading, or loading failed"}})
    async def ready() -> JSONResponse:
        if service.state == "ready":
            return JSONResponse({"status": "ready", "pipelines": list(service.collection.pipelines)})
        message = "loading" if service.state == "loading" else public_message(service.failure or "failed")
        return JSONResponse({"status": service.state, "message": message}, 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=Response)
    async def prometheus() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    # --- API: reads -----------------------------------------------------------------------------------------

    @app.get("/api/pipelines", tags=["search"], summary="The served pipelines and their expressions",
             dependencies=[Depends(reader)])
    async def pipelines() -> dict:
        collection = service.require_ready()
        return {"pipelines": [{"name": s.name, "expression": s.expression, "repr": repr(s.stage),
                               "first_stage": s.first_stage, "stages": [x for x in s.labels if x]}
                              for s in collection.pipelines.values()]}

    @app.get("/api/collection", tags=["search"], summary="What is served: size, judgments, writes, limits",
             dependencies=[Depends(reader)])
    async def collection_info() -> dict:
        collection = service.require_ready()
        return {"documents": collection.size(), "stores_documents": collection.reader is not None,
                "judged_queries": len(collection.queries) if collection.queries is not None else 0,
                "has_qrels": collection.qrels is not None, "writes": bool(collection.writers),
                "writes_enabled": access.writes_enabled and bool(collection.writers),
                "reads_need_token": access.reads_need_token, "limits": settings.limits.to_dict(),
                "batching": settings.batching}

    @app.get("/api/queries", tags=["search"], summary="The collection's (judged) queries, for the page",
             dependencies=[Depends(reader)])
    async def queries() -> dict:
        collection = service.require_ready()
        items = collection.queries.items() if collection.queries is not None else []
        return {"queries": [{"id": q, "query": text} for q, text in items]}

    @app.post("/api/search", tags=["search"], summary="Search with one query", dependencies=[Depends(reader)])
    async def search(body: SearchRequest) -> dict:
        return await service.read(service.search, body.pipeline, body.query, body.k, body.ids, body.qid,
                                  body.explain, body.text)

    @app.post("/api/search/batch", tags=["search"], summary="Search with many queries in one batch",
              dependencies=[Depends(reader)])
    async def search_batch(body: BatchSearchRequest) -> dict:
        queries: dict[str, str] = {}
        for i, q in enumerate(body.queries):
            qid, text = (str(i), q) if isinstance(q, str) else (q.id, q.query)
            if qid in queries:
                raise ServiceError(f"query id {qid!r} is listed twice")
            queries[qid] = text
        return await service.read(service.search_batch, body.pipeline, queries, body.k)

    @app.post("/api/rerank", tags=["search"], summary="Rerank candidates (texts or ids) with a second stage",
              dependencies=[Depends(reader)])
    async def rerank(body: RerankRequest) -> dict:
        candidates = [(c, None) if isinstance(c, str) else (c.id or f"#{i}", c.text)
                      for i, c in enumerate(body.candidates)]
        return await service.read(service.rerank, body.pipeline, body.query, candidates, body.k)

    @app.post("/api/fuse", tags=["search"], summary="Fuse ranked lists, or the results of pipelines for a query",
              dependencies=[Depends(reader)])
    async def fuse(body: FuseRequest) -> dict:
        if body.runs is not None:
            runs = [[(h.id, h.score) for h in run] for run in body.runs]
            return await service.read(service.fuse_runs, runs, body.method, body.k, body.rrf_k, body.weights,
                                      body.norm)
        return await service.read(service.fuse_pipelines, body.pipelines, body.query, body.method, body.k,
                                  body.rrf_k, body.weights, body.norm)

    @app.get("/api/documents/{doc_id:path}", tags=["documents"], summary="A document by id",
             dependencies=[Depends(reader)], responses={404: {"description": "no such document"}})
    async def get_document(doc_id: str, query: str | None = None) -> dict:
        return await service.read(service.document, doc_id, query)

    # --- API: writes ----------------------------------------------------------------------------------------

    @app.post("/api/documents", tags=["documents"], summary="Add documents (an existing id is replaced)",
              dependencies=[Depends(writer)], responses={401: {"description": "no or wrong bearer token"}})
    async def add_documents(body: DocumentsRequest) -> dict:
        documents = [Document(d.id, d.text, d.title) for d in body.documents]
        return await service.write(service.add, documents)

    @app.put("/api/documents/{doc_id:path}", tags=["documents"], summary="Add or replace one document",
             dependencies=[Depends(writer)], responses={401: {"description": "no or wrong bearer token"}})
    async def put_document(doc_id: str, body: DocumentBody) -> dict:
        _check_path_id(doc_id)
        return await service.write(service.replace, Document(doc_id, body.text, body.title))

    @app.delete("/api/documents/{doc_id:path}", tags=["documents"], summary="Delete a document",
                dependencies=[Depends(writer)],
                responses={401: {"description": "no or wrong bearer token"}, 404: {"description": "no such document"}})
    async def delete_document(doc_id: str) -> dict:
        return await service.write(service.delete, doc_id)

    # --- MCP and the page -----------------------------------------------------------------------------------

    for route in mcp_app.routes:
        route.app = RequireToken(route.app, access)
        app.router.routes.append(route)

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return _static("index.html")

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        return _static(name)

    app.add_middleware(_Observe, metrics=metrics)
    if settings.cors:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors), allow_methods=["GET", "POST", "PUT",
                           "DELETE"], allow_headers=["Authorization", "Content-Type"], max_age=600)
    app.add_middleware(BodyLimit, max_bytes=settings.limits.body_bytes)
    return app


def _check_path_id(doc_id: str) -> None:
    if not doc_id or len(doc_id) > 512 or any(ord(c) < 32 or ord(c) == 127 for c in doc_id):
        raise ServiceError("a document id has 1 to 512 characters and no control characters")


def _static(name: str) -> Response:
    if name not in STATIC:
        raise NotFound(f"no such file {name!r}")
    data = resources.files("rankstack.serve").joinpath("static").joinpath(name).read_bytes()
    return Response(data, media_type=STATIC[name], headers={"Cache-Control": "no-cache"})


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("rankstack")
    except Exception:  # noqa: BLE001 - running from a source tree
        return "0"


class _Observe:
    """ASGI middleware: counts and times requests by route template and status; adds the security headers."""

    def __init__(self, app: Any, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def observe(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, observe)
        finally:
            self.metrics.in_flight.dec()
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.request_seconds.labels(route, scope["method"]).observe(time.perf_counter() - start)


