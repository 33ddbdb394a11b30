"""The service's JSON bodies as pydantic models: what the OpenAPI document shows, and what FastAPI parses.

Request models check the shape and types of a body only; the ranges are checked once, by the request objects of
``chroma_core.types`` the routes build from them (the embedded engine checks the same), and are shown in the
document from the same constants. Each response model mirrors the ``to_dict()`` of a public value type
(``SetOut``: ``SetInfo``, ``UploadOut``: ``UploadReport``, ``QueryResultOut``: ``QueryResult``, ``SelectionOut``
and ``PickOut``: ``Selection``); a test holds the two together.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from chroma_core.server.wire import DELETE_PAGE, ERRORS
from chroma_core.types import MAX_PICKS, SelectRequest

__all__ = [
    "ERROR_RESPONSES",
    "CreateSetIn",
    "DeleteIn",
    "DeleteOut",
    "DeletedSetOut",
    "ErrorBody",
    "ErrorOut",
    "HealthOut",
    "NeighborOut",
    "PickOut",
    "QueryIn",
    "QueryOut",
    "QueryResultOut",
    "SelectIn",
    "SelectionOut",
    "SetOut",
    "SetsOut",
    "UploadOut",
]

Scalar = str | int | float | bool | None


# ---- errors --------------------------------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    code: str = Field(description="a stable code from docs/service.md")
    message: str = Field(description="what was wrong and what to do")


class ErrorOut(BaseModel):
    error: ErrorBody


#: Every error status a route may answer, documented with the error body.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in sorted({s for s, _ in ERRORS.values()})
}


# ---- requests ------------------------------------------------------------------------------------------------------


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


class SelectIn(BaseModel):
    # The defaults are the request object's own.
    n: int = Field(
        SelectRequest.n,
        description="how many inputs to pick",
        json_schema_extra={"minimum": 1, "maximum": MAX_PICKS},
    )
    diversity: float = Field(
        SelectRequest.diversity,
        description="0: priority order; 1: spread only",
        json_schema_extra={"minimum": 0.0, "maximum": 1.0},
    )
    since: float | None = Field(
        SelectRequest.since, description="only inputs logged from then on (seconds since the epoch)"
    )
    rescore: bool = Field(
        SelectRequest.rescore, description="score every input again against the current training data"
    )
    thresholds: dict[str, Any] | None = None
    typicality: float = Field(
        SelectRequest.typicality,
        description="weight of local density: dense regions of novelty before lone outliers (0 = off)",
        json_schema_extra={"minimum": 0.0, "maximum": 1.0},
    )
    balance: float = Field(
        SelectRequest.balance,
        description="weight of class balance over predicted labels (0 = off, 1 = every class before a repeat)",
        json_schema_extra={"minimum": 0.0, "maximum": 1.0},
    )


# ---- responses -----------------------------------------------------------------------------------------------------


class HealthOut(BaseModel):
    status: str
    version: str


class SetOut(BaseModel):
    id: str
    embedding_set: dict[str, Scalar]
    dimension: int
    training: int
    production: int


class SetsOut(BaseModel):
    sets: list[SetOut]


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


class DeleteIn(BaseModel):
    input_uris: list[str] = Field(max_length=DELETE_PAGE, description="the inputs to erase (their records)")
    set_id: str | None = Field(None, description="only in this set (default: in every set of the application)")


class DeleteOut(BaseModel):
    training: int
    production: int
    sets: list[str]
    files: int
    deleted: int


class DeletedSetOut(BaseModel):
    deleted: bool


class UploadOut(BaseModel):
    batch_id: str
    set_id: str
    mode: str
    read: int
    stored: int
    duplicates: int
    problems: list[str]
    conflicts: int = Field(0, description="records not stored: their id is stored with another vector or input_uri")
    conflicting_ids: list[str] = Field([], description="the first 100 of those records' ids")
    ok: bool


class PickOut(BaseModel):
    rank: int
    id: str
    input_uri: str
    preview: str | None = Field(None, description="the short text stored with the input, shown instead of its uri")
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
