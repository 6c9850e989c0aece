"""The FastAPI application: routes, auth, limits. The work happens in the service's batcher and writers.

Responses on the hot paths (/search, /v1/embeddings) are built as ``JSONResponse`` directly: the
declared ``response_model`` documents them in the OpenAPI schema, and FastAPI does not validate a
returned ``Response`` again, which would cost more than the search itself.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import time
from contextlib import asynccontextmanager
from importlib.resources import files

import numpy as np
from fastapi import Depends, FastAPI, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from embedkit.data import Document, full_text
from embedkit.encoding.bucketing import token_lengths
from embedkit.serve import errors
from embedkit.serve.body_limit import BodyLimit
from embedkit.serve.errors import ApiError
from embedkit.serve.metrics import CONTENT_TYPE, RequestMetrics
from embedkit.serve.schemas import (DeleteResponse, DocumentOut, DocumentsRequest, DocumentsResponse,
                                    EmbeddingsRequest, EmbeddingsResponse, ErrorOut, Health, ModelList,
                                    SearchRequest, SearchResponse)
from embedkit.serve.service import Service
from embedkit.serve.state import CHUNK_ID, Delete, Row, ServedIndex, Upsert

_ERRORS = {status: {"model": ErrorOut} for status in (400, 404, 413, 422)}
_WRITE_ERRORS = {**_ERRORS, **{status: {"model": ErrorOut} for status in (401, 403, 409, 503)}}
_PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
                                            "style-src 'unsafe-inline'; connect-src 'self'",
                 "X-Content-Type-Options": "nosniff"}


def create_app(service: Service) -> FastAPI:
    config = service.config
    page = files("embedkit.serve").joinpath("static/index.html").read_text(encoding="utf-8")
    token_digest = hashlib.sha256(config.token.encode()).digest() if config.token else None
    bearer = HTTPBearer(auto_error=False, description="the token in the server's --token-file")
    started = int(time.time())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(title="embedkit", summary="Search and embedding service over embedkit indexes",
                  version="1", lifespan=lifespan)
    errors.install(app, config.max_body_bytes)
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=service.metrics)

    def require_token(credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> None:
        """Writes need ``Authorization: Bearer <token>``; the comparison is of SHA-256 digests with
        ``hmac.compare_digest``, so it takes the same time whatever the token sent (length included)."""
        if token_digest is None:
            raise ApiError(403, "writes are disabled: the server was started without --token-file")
        if credentials is None:
            raise ApiError(401, "this endpoint needs an 'Authorization: Bearer <token>' header",
                           headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(hashlib.sha256(credentials.credentials.encode()).digest(), token_digest):
            raise ApiError(403, "wrong token")

    def check_texts(texts: list[str], param: str) -> None:
        if len(texts) > config.max_texts:
            raise ApiError(413, f"{len(texts)} texts in one request; the limit is {config.max_texts}", param)
        for i, text in enumerate(texts):
            if len(text) > config.max_text_chars:
                raise ApiError(413, f"{param}[{i}] has {len(text)} characters; the limit is {config.max_text_chars}",
                               f"{param}[{i}]")

    # ------------------------------------------------------------------ reading

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def search_page() -> HTMLResponse:
        return HTMLResponse(page, headers=_PAGE_HEADERS)

    @app.get("/health", response_model=Health)
    async def health() -> dict:
        return {"status": "ok", "writes": config.writes_enabled,
                "indexes": {name: {"rows": s.count(), "version": s.version, "bm25": s.bm25 is not None,
                                   "model": s.dense.model_name, "chunked": s.chunker is not None,
                                   "generation": s.generation, "unsaved_writes": service.writers[name].holding}
                            for name, s in service.indexes.items()}}

    @app.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}})
    async def metrics() -> Response:
        for name, s in service.indexes.items():
            service.metrics.documents.labels(name).set(s.count())
            service.metrics.version.labels(name).set(s.version)
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE)

    @app.post("/search", response_model=SearchResponse, responses=_ERRORS)
    async def search(request: SearchRequest) -> JSONResponse:
        t0 = time.perf_counter()
        served = service.index(request.index)
        if request.k > config.max_k:
            raise ApiError(422, f"k: must be at most {config.max_k}", "k")
        if len(request.query) > config.max_text_chars:
            raise ApiError(413, f"query has {len(request.query)} characters; the limit is {config.max_text_chars}",
                           "query")
        if request.mode != "dense" and served.bm25 is None:
            raise ApiError(422, f"index {served.name!r} has no BM25 index (built with --no-bm25 or from "
                                "embeddings); use mode 'dense'", "mode")
        if request.mode == "bm25":
            hits, version = await run_in_threadpool(served.search, "bm25", request.query, None, request.k)
        else:
            hits, version = await service.batcher.run(
                served.model, [request.query], served.query_prompt, served.backend,
                then=lambda vectors, _: served.search(request.mode, request.query, vectors, request.k))
        return JSONResponse({"index": served.name, "mode": request.mode, "k": request.k, "version": version,
                             "took_ms": round((time.perf_counter() - t0) * 1000, 3),
                             "hits": [h.as_dict() for h in hits]})

    @app.post("/v1/embeddings", response_model=EmbeddingsResponse, responses=_ERRORS)
    async def embeddings(request: EmbeddingsRequest) -> JSONResponse:
        served = service.by_model(request.model)
        texts = [request.input] if isinstance(request.input, str) else request.input
        if not texts:
            raise ApiError(422, "input: give at least one text", "input")
        check_texts(texts, "input")
        dim = served.dense.dim
        if request.dimensions is not None and request.dimensions != dim:
            raise ApiError(422, f"dimensions: this model gives {dim}; it cannot shorten its vectors", "dimensions")
        vectors, tokens = await service.batcher.run(
            served.model, texts, "", served.backend, then=lambda v, model: (v, int(token_lengths(model, texts).sum())))
        if request.encoding_format == "base64":
            encoded = [base64.b64encode(np.ascontiguousarray(v, dtype="<f4").tobytes()).decode() for v in vectors]
        else:
            encoded = vectors.tolist()
        return JSONResponse({"object": "list", "model": request.model,
                             "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(encoded)],
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    @app.get("/v1/models", response_model=ModelList)
    async def models() -> dict:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": started, "owned_by": "embedkit"}
                                           for name in service.indexes]}

    @app.get("/documents/{doc_id:path}", response_model=DocumentOut, responses=_ERRORS)
    async def get_document(doc_id: str, index: str | None = None) -> dict:
        served = service.index(index)
        rows = served.rows_of(doc_id)
        if not rows:
            raise ApiError(404, f"no document {doc_id!r} in index {served.name!r}")
        return {"index": served.name, "id": doc_id, "rows": [r.as_dict() for r in rows]}

    # ------------------------------------------------------------------ writing

    @app.post("/documents", response_model=DocumentsResponse, responses=_WRITE_ERRORS,
              dependencies=[Depends(require_token)])
    async def post_documents(request: DocumentsRequest) -> dict:
        served = service.index(request.index)
        writer = service.writer(served)
        docs = [Document(d.id, d.title, d.text) for d in request.documents]
        check_texts([d.text for d in docs], "documents.text")
        check_texts([d.title for d in docs], "documents.title")
        ids = [d.id for d in docs]
        if len(set(ids)) != len(ids):
            raise ApiError(422, f"documents: an id appears twice ({next(i for i in ids if ids.count(i) > 1)!r})",
                           "documents")
        if served.chunker is not None and (named_like_chunks := [i for i in ids if CHUNK_ID.search(i)]):
            raise ApiError(422, f"documents: in a chunked index, ids ending in '#<number>' name chunks "
                                f"({named_like_chunks[0]!r})", "documents")
        if request.mode == "add" and (present := [i for i in ids if served.has(i)]):
            raise ApiError(409, f"documents already in index {served.name!r}: {', '.join(map(repr, present[:5]))} "
                                "(use mode 'upsert' to replace them)", "documents")
        encoded, rows = await run_in_threadpool(_rows_for, served, docs)
        vectors = await service.batcher.run(served.model, encoded, served.document_prompt, served.backend)
        return await writer.submit(request.mode, Upsert(docs, rows, vectors))

    @app.delete("/documents/{doc_id:path}", response_model=DeleteResponse, responses=_WRITE_ERRORS,
                dependencies=[Depends(require_token)])
    async def delete_document(doc_id: str, index: str | None = None) -> dict:
        served = service.index(index)
        return await service.writer(served).submit("delete", Delete([doc_id]))

    return app


def _rows_for(served: ServedIndex, docs: list[Document]) -> tuple[list[str], list[Row]]:
    """What the model encodes and what the index stores for each document: the document itself, or its
    chunks when the index was built with ``--chunk-tokens`` (the same split ``embedkit index add`` makes)."""
    if served.chunker is None:
        return [full_text(d.title, d.text) for d in docs], [Row(d.id, d.text, d.title, None) for d in docs]
    with served.chunker_lock:  # the chunker's tokenizer is its own copy, shared by this index's requests
        passages = [p for d in docs for p in served.chunker.passages(d.id, d.title, d.text)]
    return [p.encoded for p in passages], [Row(p.id, p.text, p.title, p.parent_id) for p in passages]
