"""``POST /v1/sets/{set_id}/duplicates``: near duplicates in a set's training data, production and another set.

Its own small router (registered in ``app.py``) so that the route, its body and its answer stay in one place.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from chroma_core.server.routes import TenantEngine
from chroma_core.server.schema import ERROR_RESPONSES
from chroma_core.server.wire import API_PREFIX
from chroma_core.types import DuplicatesRequest

__all__ = ["DuplicatesIn", "router"]

router = APIRouter(prefix=API_PREFIX, responses=ERROR_RESPONSES)


class DuplicatesIn(BaseModel):
    against: str | None = Field(None, description="another set whose training records may copy this set's (leakage)")
    threshold: float | None = Field(
        None,
        description="cosine distance under which two inputs are near duplicates; default: the set's calibrated one",
        json_schema_extra={"minimum": 0.0, "maximum": 2.0},
    )
    production: bool = Field(True, description="also list production inputs that copy a training input")


class DuplicatesOut(BaseModel):
    set_id: str
    threshold: float
    against: str | None
    groups: list[dict[str, object]]
    production: list[dict[str, object]]
    leaks: list[dict[str, object]]


@router.post("/sets/{set_id}/duplicates", response_model=DuplicatesOut)
def duplicates(set_id: str, body: DuplicatesIn, engine: TenantEngine) -> DuplicatesOut:
    """Groups of near-duplicate training records, production copies of training records, and leaks from ``against``."""
    report = engine.duplicates(DuplicatesRequest(set_id, body.against, body.threshold, body.production))
    return JSONResponse(report.to_dict())  # type: ignore[return-value]
