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

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from chroma_core.batch_format import BatchReader, open_stream, write_batch_to
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.engine import Engine
from chroma_core.errors import UnknownEmbeddingSetError
from chroma_core.json_text import json_text
from chroma_core.server.auth import Keys, Tenants
from chroma_core.server.batch_binary import BinaryBatchReader
from chroma_core.server.body import BoundedLines, check_batch_headers, spooled_body
from chroma_core.server.gate import GuardedRoute, application_of, direct
from chroma_core.server.query_body import QUERY_REQUEST_BODY, query_kind, query_request, read_query_body
from chroma_core.server.schema import (
    ERROR_RESPONSES,
    CreateSetIn,
    DeletedSetOut,
    DeleteIn,
    DeleteOut,
    HealthOut,
    QueryOut,
    SelectIn,
    SelectionOut,
    SetOut,
    SetsOut,
    UploadOut,
)
from chroma_core.server.settings import Limits
from chroma_core.server.wire import API_PREFIX, BATCH_BINARY_TYPE, BATCH_CONTENT_TYPES, ApiError
from chroma_core.types import SelectRequest, SetInfo, Thresholds, UploadReport
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


@router.get("/health", response_model=HealthOut)
def health() -> HealthOut:
    return HealthOut(status="ok", version=__version__)


def _set_out(info: SetInfo) -> SetOut:
    return SetOut(**info.to_dict())


# The two hot routes next: a request is matched against the routes in order (FastAPI tries each in turn).


@router.post("/sets/{set_id}/query", response_model=QueryOut, openapi_extra=QUERY_REQUEST_BODY)
@direct
async def query(set_id: str, request: Request) -> Response:
    """Answer each embedding of the body (JSON or the binary form: see ``server/query_body.py``)."""
    # No Depends: FastAPI runs each plain-def dependency on the thread pool, a hop apiece on the hottest route;
    # and `direct`: FastAPI's request handler is skipped.
    service: Service = request.app.state.service
    kind = query_kind(request.headers)
    body = await read_query_body(request, service.limits)
    # One trip to the thread pool for the engine lookup, the parsing, the search and the answer's encoding.
    return await run_in_threadpool(_answer, service, application_of(request), set_id, kind, body)


def _answer(service: Service, application: str, set_id: str, kind: str, body: bytes) -> Response:
    engine = service.tenants.engine(application)
    results = engine.query(query_request(set_id, kind, body, service.limits))
    # Returned as-is: the results are built by our own code in the documented shape, and re-validating
    # them through the response model would cost more than the search itself on small sets.
    text = json_text({"results": [r.to_dict() for r in results]})
    return Response(text.encode("utf-8"), media_type="application/json")


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
@direct
async def upload_batch(request: Request) -> Response:
    """Store a batch (JSONL or the binary form, by Content-Type); its report is the answer."""
    # No Depends, as on the query route: each plain-def dependency is a trip to the thread pool.
    service: Service = request.app.state.service
    check_batch_headers(request.headers, service.limits)
    binary = request.headers.get("content-type", "").split(";")[0].strip().lower() == BATCH_BINARY_TYPE
    application = application_of(request)
    async with spooled_body(request, service.limits, service.spool_dir) as spool:
        answer = await run_in_threadpool(_ingest_for, service, application, spool, binary)
    return Response(answer, media_type="application/json")


def _ingest_for(service: Service, application: str, spool: IO[bytes], binary: bool) -> bytes:
    # The report is encoded on the same trip to the thread pool as the store write, not on the event loop.
    report = _ingest(service.tenants.engine(application), spool, service.limits, binary)
    return json_text(report.to_dict()).encode("utf-8")


def _ingest(engine: Engine, spool: IO[bytes], limits: Limits, binary: bool = False) -> UploadReport:
    if binary:
        # The reader bounds what gzip may expand to: it checks each size against the limits before reading it.
        with BinaryBatchReader(open_stream(spool), limits) as binary_reader:
            return engine.ingest(binary_reader)
    lines = BoundedLines(open_stream(spool), limits)
    with BatchReader(
        lines,  # type: ignore[arg-type]
        name="the uploaded batch",
        max_problems=limits.problems_reported,
        max_bad_lines=limits.max_bad_lines,
    ) as reader:
        return engine.ingest(reader)


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


@router.delete("/sets/{set_id}", response_model=DeletedSetOut)
def delete_set(set_id: str, engine: TenantEngine) -> DeletedSetOut:
    return DeletedSetOut(deleted=engine.delete_set(set_id))


@router.post("/records/delete", response_model=DeleteOut)
def delete_records(body: DeleteIn, engine: TenantEngine) -> DeleteOut:
    """Erase inputs: every training and production record with these ``input_uri`` values, and their vectors."""
    return DeleteOut(**engine.delete_records(body.input_uris, body.set_id).to_dict())


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
