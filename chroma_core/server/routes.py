"""The ``/v1`` routes: each turns its wire model into a request object of ``chroma_core.types`` for the engine.

What a route needs comes through ``Depends``: the :class:`Service` (limits, tenants, where uploads spool) and the
engine of the application the caller authenticated as. Plain ``def`` routes run on FastAPI's thread pool, so the
engine's work never blocks the event loop; the upload route is ``async`` only to stream its body to disk.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import IO, Annotated, Literal

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from chroma_core.batch_format import BatchReader, open_stream, write_batch_to
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.engine import Engine
from chroma_core.errors import InvalidEmbeddingError, UnknownEmbeddingSetError
from chroma_core.server.auth import Keys, Tenants
from chroma_core.server.body import BoundedLines, check_batch_headers, spooled_body
from chroma_core.server.gate import GuardedRoute, application_of
from chroma_core.server.schema import (
    ERROR_RESPONSES,
    CreateSetIn,
    DeletedSetOut,
    DeleteIn,
    DeleteOut,
    HealthOut,
    QueryIn,
    QueryOut,
    SelectIn,
    SelectionOut,
    SetOut,
    SetsOut,
    UploadOut,
)
from chroma_core.server.settings import Limits
from chroma_core.server.wire import API_PREFIX, BATCH_CONTENT_TYPES, ApiError
from chroma_core.types import QueryRequest, SelectRequest, SetInfo, Thresholds, UploadReport
from chroma_core.vectors import Matrix, decode_base64, to_matrix
from chroma_core.version import __version__

__all__ = ["Service", "router"]


@dataclasses.dataclass(frozen=True)
class Service:
    """What the routes share: who may ask (``keys``; None: loopback only), their engines, limits, the spool."""

    tenants: Tenants
    keys: Keys | None
    limits: Limits
    spool_dir: Path


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(_service)]


def _tenant(request: Request, service: ServiceDep) -> Engine:
    return service.tenants.engine(application_of(request))


TenantEngine = Annotated[Engine, Depends(_tenant)]

# Every route checks the key before reading a body (GuardedRoute), whatever FastAPI would read first.
router = APIRouter(prefix=API_PREFIX, responses=ERROR_RESPONSES, route_class=GuardedRoute)


def _set_out(info: SetInfo) -> SetOut:
    return SetOut(**info.to_dict())


@router.get("/health", response_model=HealthOut)
def health() -> HealthOut:
    return HealthOut(status="ok", version=__version__)


@router.get("/sets", response_model=SetsOut)
def list_sets(engine: TenantEngine) -> SetsOut:
    return SetsOut(sets=[_set_out(s) for s in engine.list_sets()])


@router.post("/sets", response_model=SetOut)
def create_set(body: CreateSetIn, engine: TenantEngine, service: ServiceDep) -> SetOut:
    limit = service.limits.max_dimension
    if body.dimension > limit:
        raise ApiError("invalid_request", f"dimension {body.dimension} is over this server's limit of {limit}.")
    return _set_out(engine.create_set(EmbeddingSet.from_dict(body.embedding_set), body.dimension))


@router.get("/sets/{set_id}", response_model=SetOut)
def get_set(set_id: str, engine: TenantEngine) -> SetOut:
    info = engine.get_set(set_id)
    if info is None:
        raise UnknownEmbeddingSetError(set_id)
    return _set_out(info)


def _query_vectors(body: QueryIn, limits: Limits) -> Matrix:
    """The body's embeddings as one float32 matrix, within the server's limits."""
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
    return np.stack(rows)


@router.delete("/sets/{set_id}", response_model=DeletedSetOut)
def delete_set(set_id: str, engine: TenantEngine) -> DeletedSetOut:
    return DeletedSetOut(deleted=engine.delete_set(set_id))


@router.post("/records/delete", response_model=DeleteOut)
def delete_records(body: DeleteIn, engine: TenantEngine) -> DeleteOut:
    """Erase inputs: every training and production record with these ``input_uri`` values, and their vectors."""
    return DeleteOut(**engine.delete_records(body.input_uris, body.set_id).to_dict())


@router.post("/sets/{set_id}/query", response_model=QueryOut)
def query(set_id: str, body: QueryIn, engine: TenantEngine, service: ServiceDep) -> QueryOut:
    vectors = _query_vectors(body, service.limits)
    uris = body.input_uris if body.input_uris is not None else [f"query-{i}" for i in range(len(vectors))]
    inferences = None if body.inferences is None else tuple(body.inferences)
    results = engine.query(QueryRequest(set_id, vectors, tuple(uris), inferences, Thresholds.coerce(body.thresholds)))
    # Returned as-is: the results are built by our own code in the documented shape, and re-validating
    # them through the response model would cost more than the search itself on small sets.
    return JSONResponse({"results": [r.to_dict() for r in results]})  # type: ignore[return-value]


@router.post("/sets/{set_id}/select", response_model=SelectionOut)
def select(set_id: str, body: SelectIn, engine: TenantEngine) -> SelectionOut:
    request = SelectRequest(
        set_id,
        body.n,
        body.diversity,
        body.since,
        body.rescore,
        Thresholds.coerce(body.thresholds),
        body.typicality,
        body.balance,
    )
    return JSONResponse(engine.select(request).to_dict())  # type: ignore[return-value]


@router.get(
    "/sets/{set_id}/records",
    response_class=Response,
    responses={200: {"description": "a batch file (docs/batch-format.md)", "content": {BATCH_CONTENT_TYPES[0]: {}}}},
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


@router.post(
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
async def upload_batch(request: Request, engine: TenantEngine, service: ServiceDep) -> UploadOut:
    check_batch_headers(request.headers, service.limits)
    async with spooled_body(request, service.limits, service.spool_dir) as spool:
        report = await run_in_threadpool(_ingest, engine, spool, service.limits)
    return UploadOut(**report.to_dict())


def _ingest(engine: Engine, spool: IO[bytes], limits: Limits) -> UploadReport:
    lines = BoundedLines(open_stream(spool), limits)
    with BatchReader(
        lines,  # type: ignore[arg-type]
        name="the uploaded batch",
        max_problems=limits.problems_reported,
        max_bad_lines=limits.max_bad_lines,
    ) as reader:
        return engine.ingest(reader)
