"""The HTTP service over the engine (FastAPI). One engine per application: tenants share nothing on disk."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import IO, Annotated, Any, Literal, TypeAlias

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from chroma_core.batch_format import BatchReader, open_stream, write_batch_to
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.engine.engine import Engine
from chroma_core.engine.store import SQLiteStore
from chroma_core.errors import ChromaError, InvalidEmbeddingError, UnknownEmbeddingSetError
from chroma_core.server.auth import Keys, is_loopback
from chroma_core.server.wire import API_PREFIX, APPLICATION_HEADER, BATCH_CONTENT_TYPES, ERRORS, KEY_HEADER, code_for
from chroma_core.types import QueryRequest, SelectRequest, SetInfo, Thresholds
from chroma_core.vectors import decode_base64, to_matrix
from chroma_core.version import __version__

__all__ = ["Limits", "create_app"]

logger = logging.getLogger("chroma.server")

Scalar = str | int | float | bool | None


@dataclasses.dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 256 * 1024 * 1024
    max_embeddings_per_request: int = 1024
    max_dimension: int = 16384


class ApiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = ERRORS[code][0]


# ---- wire models -------------------------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


class SetOut(BaseModel):
    id: str
    embedding_set: dict[str, Scalar]
    dimension: int
    training: int
    production: int


class SetsOut(BaseModel):
    sets: list[SetOut]


class CreateSetIn(BaseModel):
    embedding_set: dict[str, Scalar] = Field(min_length=1)
    dimension: int = Field(ge=1)


class QueryIn(BaseModel):
    embeddings: list[str | list[float]] = Field(
        min_length=1, description="base64 of little-endian float32, or lists of numbers"
    )
    input_uris: list[str] | None = None
    inferences: list[Any] | None = None
    thresholds: dict[str, Any] | None = None


class NeighborOut(BaseModel):
    input_uri: str
    similarity: float
    label: Any = None


class QueryResultOut(BaseModel):
    recommendation: str
    input_uri: str
    recommendations: list[str]
    training_recommended: bool
    not_useful: bool
    scores: dict[str, float | None]
    thresholds: dict[str, float | None]
    nearest: list[NeighborOut]
    set_id: str


class QueryOut(BaseModel):
    results: list[QueryResultOut]


class UploadOut(BaseModel):
    batch_id: str
    set_id: str
    mode: str
    read: int
    stored: int
    duplicates: int
    problems: list[str]
    ok: bool


class SelectIn(BaseModel):
    n: int = Field(100, ge=1, le=10_000, description="how many inputs to pick")
    diversity: float = Field(0.5, ge=0.0, le=1.0, description="0: priority order; 1: spread only")
    since: float | None = Field(None, description="only inputs logged from then on (seconds since the epoch)")
    rescore: bool = Field(False, description="score every input again against the current training data")
    thresholds: dict[str, Any] | None = None


class PickOut(BaseModel):
    rank: int
    id: str
    input_uri: str
    priority: float
    recommendations: list[str]
    similarity_to_picked: float | None
    inferences: Any = None
    time: float
    result: QueryResultOut


class SelectionOut(BaseModel):
    set_id: str
    considered: int
    recommended: int
    near_duplicates_dropped: int
    rescored: int
    picks: list[PickOut]


class HealthOut(BaseModel):
    status: str
    version: str


def _set_out(info: SetInfo) -> SetOut:
    return SetOut(**info.to_dict())


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in sorted({s for s, _ in ERRORS.values()})
}


def _tenant(request: Request) -> Engine:
    engine: Engine = request.app.state.resolve_tenant(request)
    return engine


TenantEngine: TypeAlias = Annotated[Engine, Depends(_tenant)]

# ---- tenants -----------------------------------------------------------------------------------------------------


class Tenants:
    """One engine (its own SQLite store and vector files) per application."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def engine(self, application_id: str) -> Engine:
        with self._lock:
            engine = self._engines.get(application_id)
            if engine is None:
                name = hashlib.sha256(application_id.encode("utf-8")).hexdigest()[:32]
                engine = self._engines[application_id] = Engine(SQLiteStore(self.root / "applications" / name))
            return engine


def create_app(
    persist_directory: str | os.PathLike[str], *, keys: Keys | None = None, limits: Limits | None = None
) -> FastAPI:
    """The Chroma service. Without ``keys``, only loopback clients are served (as application ``default``)."""
    limits = limits or Limits()
    root = Path(persist_directory)
    spool_dir = root / "incoming"
    spool_dir.mkdir(parents=True, exist_ok=True)
    tenants = Tenants(root)

    def tenant(request: Request) -> Engine:
        if keys is None:
            host = request.client.host if request.client else None
            if not is_loopback(host):
                raise ApiError(
                    "forbidden",
                    "this server has no API keys configured and serves only loopback "
                    "clients; start it with --keys-file to accept others.",
                )
            return tenants.engine("default")
        auth = request.headers.get("authorization", "")
        presented = auth[7:].strip() if auth[:7].lower() == "bearer " else request.headers.get(KEY_HEADER, "")
        if not presented:
            raise ApiError("unauthorized", f"missing API key: send 'Authorization: Bearer <key>' or '{KEY_HEADER}'.")
        application = keys.application_for(presented)
        if application is None:
            raise ApiError("unauthorized", "invalid API key; check api_key in chroma.json or CHROMA_API_KEY.")
        claimed = request.headers.get(APPLICATION_HEADER)
        if claimed and claimed != application:
            raise ApiError(
                "forbidden",
                "this API key belongs to another application than application_id "
                f"{claimed!r}; fix application_id or the key.",
            )
        return tenants.engine(application)

    app = FastAPI(
        title="Chroma",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        description="Which production inputs is my model struggling with, and what should I label next?",
    )
    app.state.resolve_tenant = tenant
    v1 = APIRouter(prefix=API_PREFIX, responses=_ERROR_RESPONSES)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": {"code": exc.code, "message": str(exc)}}, status_code=exc.status)

    @app.exception_handler(ChromaError)
    async def _chroma_error(request: Request, exc: ChromaError) -> JSONResponse:
        code = code_for(exc)
        return JSONResponse({"error": {"code": code, "message": str(exc)}}, status_code=ERRORS[code][0])

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = f"invalid request: {where}: {first.get('msg', 'malformed')}"
        return JSONResponse({"error": {"code": "invalid_request", "message": message}}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
        return JSONResponse({"error": {"code": code, "message": str(exc.detail)}}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"error": {"code": "internal", "message": "internal error; see the server log"}}, status_code=500
        )

    @v1.get("/health", response_model=HealthOut)
    def health() -> HealthOut:
        return HealthOut(status="ok", version=__version__)

    @v1.get("/sets", response_model=SetsOut)
    def list_sets(engine: TenantEngine) -> SetsOut:
        return SetsOut(sets=[_set_out(s) for s in engine.list_sets()])

    @v1.post("/sets", response_model=SetOut)
    def create_set(body: CreateSetIn, engine: TenantEngine) -> SetOut:
        if body.dimension > limits.max_dimension:
            raise ApiError(
                "invalid_request", f"dimension {body.dimension} is over this server's limit of {limits.max_dimension}."
            )
        return _set_out(engine.create_set(EmbeddingSet.from_dict(body.embedding_set), body.dimension))

    @v1.get("/sets/{set_id}", response_model=SetOut)
    def get_set(set_id: str, engine: TenantEngine) -> SetOut:
        info = engine.get_set(set_id)
        if info is None:
            raise UnknownEmbeddingSetError(set_id)
        return _set_out(info)

    @v1.post("/sets/{set_id}/query", response_model=QueryOut)
    def query(set_id: str, body: QueryIn, engine: TenantEngine) -> QueryOut:
        n = len(body.embeddings)
        if n > limits.max_embeddings_per_request:
            raise ApiError(
                "too_many_embeddings",
                f"{n} embeddings in one request; the limit is {limits.max_embeddings_per_request}. Split the batch.",
            )
        rows = []
        for e in body.embeddings:
            v = decode_base64(e) if isinstance(e, str) else to_matrix(e, batch=False)[0]
            if len(v) > limits.max_dimension:
                raise ApiError("invalid_request", f"dimension {len(v)} is over the limit of {limits.max_dimension}.")
            rows.append(v)
        if len({len(r) for r in rows}) > 1:
            raise InvalidEmbeddingError("the embeddings in one request must all have the same dimension.")
        uris = body.input_uris if body.input_uris is not None else [f"query-{i}" for i in range(n)]
        request = QueryRequest(
            set_id,
            np.stack(rows),
            tuple(uris),
            None if body.inferences is None else tuple(body.inferences),
            Thresholds.coerce(body.thresholds),
        )
        results = engine.query(request)
        # Returned as-is: the results are built by our own code in the documented shape, and re-validating
        # them through the response model would cost more than the search itself on small sets.
        return JSONResponse({"results": [r.to_dict() for r in results]})  # type: ignore[return-value]

    @v1.post("/sets/{set_id}/select", response_model=SelectionOut)
    def select(set_id: str, body: SelectIn, engine: TenantEngine) -> SelectionOut:
        request = SelectRequest(
            set_id, body.n, body.diversity, body.since, body.rescore, Thresholds.coerce(body.thresholds)
        )
        selection = engine.select(request)
        return JSONResponse(selection.to_dict())  # type: ignore[return-value]

    @v1.get(
        "/sets/{set_id}/records",
        response_class=Response,
        responses={
            200: {"description": "a batch file (docs/batch-format.md)", "content": {BATCH_CONTENT_TYPES[0]: {}}}
        },
    )
    def records(
        set_id: str,
        engine: TenantEngine,
        mode: Literal["training", "production"] = "training",
        start: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> Response:
        header, page = engine.records(set_id, mode, start, limit)
        buffer = io.BytesIO()
        write_batch_to(buffer, header, page)
        return Response(buffer.getvalue(), media_type=BATCH_CONTENT_TYPES[0])

    @v1.post(
        "/batches",
        response_model=UploadOut,
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "a batch file (docs/batch-format.md), optionally gzipped (Content-Encoding: gzip)",
                "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in BATCH_CONTENT_TYPES},
            }
        },
    )
    async def upload_batch(request: Request, engine: TenantEngine) -> UploadOut:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in BATCH_CONTENT_TYPES:
            raise ApiError(
                "unsupported_media_type",
                f"a batch upload must be sent as {BATCH_CONTENT_TYPES[0]} (got {ctype or 'no content type'!r}).",
            )
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip", ""):
            raise ApiError("unsupported_media_type", f"Content-Encoding {encoding!r} is not supported; use gzip.")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limits.max_body_bytes:
            raise ApiError(
                "payload_too_large",
                f"the body is {declared} bytes; the limit is {limits.max_body_bytes}. Split the batch.",
            )
        # Spool to disk while counting, so a large batch never sits in memory and an over-size or broken
        # request is rejected before anything is stored.
        spool: IO[bytes] = tempfile.TemporaryFile(dir=spool_dir)  # noqa: SIM115 - closed below
        try:
            total = 0
            async for chunk in request.stream():
                total += len(chunk)
                if total > limits.max_body_bytes:
                    raise ApiError(
                        "payload_too_large",
                        f"the body exceeds the limit of {limits.max_body_bytes} bytes. Split the batch.",
                    )
                spool.write(chunk)
            spool.seek(0)
            report = await run_in_threadpool(_ingest, engine, spool)
        finally:
            spool.close()
        return UploadOut(**report)

    app.include_router(v1)
    return app


def _ingest(engine: Engine, spool: IO[bytes]) -> dict[str, Any]:
    with BatchReader(open_stream(spool), name="the uploaded batch") as reader:
        return engine.ingest(reader).to_dict()
