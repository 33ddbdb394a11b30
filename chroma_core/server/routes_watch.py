"""The watching routes: drift per window and a set's clusters (``/v1/sets/{id}/drift``, ``.../clusters``).

Each builds the request of :mod:`chroma_core.types.drift` from its body and runs the computation of
:mod:`chroma_core.drift.compute` over the caller's own engine (a key of another application sees only its own
sets: an unknown set there is a 404).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from chroma_core.drift.compute import cluster_report, drift_report
from chroma_core.server import metrics
from chroma_core.server.gate import GuardedRoute
from chroma_core.server.routes import TenantEngine
from chroma_core.server.schema import ERROR_RESPONSES
from chroma_core.server.schema_watch import ClusterReportOut, DriftOut
from chroma_core.server.wire import API_PREFIX
from chroma_core.types.drift import DriftRequest

__all__ = ["router"]

# Every route checks the key before reading a body, as the /v1 routes do.
router = APIRouter(responses=ERROR_RESPONSES, route_class=GuardedRoute)
_DEFAULT = DriftRequest("0" * 40)


class DriftIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    window: float | str = Field(_DEFAULT.window, description="window length: '1h', '1d', '1w' or seconds")
    since: float | None = Field(
        None, description="first window's start (seconds since the epoch); default: first input"
    )
    until: float | None = Field(None, description="end of the last window; default: now")
    alpha: float = Field(_DEFAULT.alpha, description="false-alarm rate promised per window", gt=0, lt=0.5)
    clusters: int = Field(_DEFAULT.clusters, ge=2, le=200)
    permutations: int = Field(_DEFAULT.permutations, ge=20, le=10_000)
    examples: int = Field(_DEFAULT.examples, ge=0, le=50)
    seed: int = Field(_DEFAULT.seed, ge=0, le=2**32 - 1)


class ClustersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    k: int = Field(20, ge=2, le=200, description="clusters at most")
    since: float | None = Field(None, description="production inputs logged from then on (seconds since the epoch)")
    examples: int = Field(3, ge=0, le=50)


@router.post(API_PREFIX + "/sets/{set_id}/drift", response_model=DriftOut)
def drift(set_id: str, body: DriftIn, engine: TenantEngine) -> JSONResponse:
    """Drift of the set's production inputs per window against a held-out training reference (docs/drift.md)."""
    request = DriftRequest.from_wire(set_id, body.model_dump())
    return JSONResponse(drift_report(engine.store, request).to_dict())


@router.post(API_PREFIX + "/sets/{set_id}/clusters", response_model=ClusterReportOut)
def clusters(set_id: str, body: ClustersIn, engine: TenantEngine) -> JSONResponse:
    """The set's training and production inputs in clusters: counts, drift ratio, share recommended, examples."""
    report = cluster_report(engine.store, set_id, k=body.k, since=body.since, examples=body.examples)
    return JSONResponse(report.to_dict())


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"description": "Prometheus exposition text", "content": {metrics.CONTENT_TYPE_LATEST: {}}}},
)
def prometheus_metrics(engine: TenantEngine) -> Response:
    """Per-set record counts and the newest drift figures of the caller's application (Prometheus text)."""
    return Response(metrics.render(engine), media_type=metrics.CONTENT_TYPE_LATEST)
