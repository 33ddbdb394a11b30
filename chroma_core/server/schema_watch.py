"""The response bodies of the watching routes (``/drift``, ``/clusters``), for the OpenAPI schema and clients.

They mirror ``to_dict()`` of :mod:`chroma_core.types.drift`; the routes send those dicts as they are (validating
a report through pydantic would cost more than it checks), and tests validate real answers against these models.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ClusterOut", "ClusterReportOut", "DriftOut", "ExampleOut", "WindowOut"]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExampleOut(_Out):
    input_uri: str
    preview: str | None = None


class ClusterOut(_Out):
    cluster: int = Field(..., ge=0)
    training: int = Field(..., ge=0, description="training inputs in the cluster (of the fitted sample)")
    production: int = Field(..., ge=0)
    drift_ratio: float = Field(..., ge=0, description="share of production over share of training, smoothed")
    recommended_share: float | None = Field(None, ge=0, le=1)
    examples: list[ExampleOut]


class WindowOut(_Out):
    start: float
    end: float
    count: int = Field(..., ge=0)
    answered: int = Field(..., ge=0)
    recommended_share: float | None = Field(None, ge=0, le=1)
    ood_share: float | None = Field(None, ge=0, le=1)
    reference_share: float | None = Field(None, ge=0, le=1)
    share_p_value: float | None = Field(None, ge=0, le=1)
    mmd: float | None = None
    mmd_p_value: float | None = Field(None, ge=0, le=1)
    verdict: Literal["drift", "no_drift", "too_few_inputs", "empty"]
    drifted: bool | None
    message: str
    clusters: list[ClusterOut]


class DriftOut(_Out):
    set_id: str
    window: float = Field(..., gt=0, description="window length in seconds")
    alpha: float
    reference: int = Field(..., ge=0, description="training inputs held out as the reference")
    message: str
    windows: list[WindowOut]


class ClusterReportOut(_Out):
    set_id: str
    method: str
    training: int = Field(..., ge=0)
    production: int = Field(..., ge=0)
    sample: int = Field(..., ge=0)
    clusters: list[ClusterOut]
