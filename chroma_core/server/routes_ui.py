"""The page (``/ui``) and the data it reads (``/v1/sets/{id}/map``, ``.../points/...``).

The page itself is static and holds no data, so it is served to anyone who can reach the service; everything it
shows comes from the ``/v1`` routes below, behind the same API keys as the rest (the page asks for a key and
sends it as ``Authorization: Bearer``). A key of another application sees none of this application's sets.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from chroma_core.server.gate import GuardedRoute
from chroma_core.server.routes import TenantEngine
from chroma_core.server.schema import ERROR_RESPONSES
from chroma_core.server.wire import API_PREFIX, ApiError
from chroma_core.ui.jobs import Maps, Progress
from chroma_core.ui.picks import lasso_selection
from chroma_core.ui.points import MAX_EXPORT, describe, export_rows

__all__ = ["MAP_CONTENT_TYPE", "page_router", "router"]

MAP_CONTENT_TYPE = "application/x-chroma-map"
_STATIC = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "regl-scatterplot.bundle.js": "text/javascript; charset=utf-8",
    "THIRD_PARTY.md": "text/markdown; charset=utf-8",
}
# A projection of a million points takes seconds (minutes with UMAP): computed in the background, the last few kept.
_MAPS = Maps()

page_router = APIRouter(include_in_schema=False)
router = APIRouter(responses=ERROR_RESPONSES, route_class=GuardedRoute)


def _static(name: str) -> Response:
    if name not in _STATIC:
        raise ApiError("not_found", f"no page file {name!r}; open /ui.")
    body = resources.files("chroma_core.ui").joinpath("static", name).read_bytes()
    return Response(body, media_type=_STATIC[name], headers={"Cache-Control": "no-cache"})


@page_router.get("/ui")
def page() -> Response:
    """The page (static: it reads everything through the keyed /v1 routes)."""
    return _static("index.html")


@page_router.get("/ui/{name}")
def page_file(name: str) -> Response:
    return _static(name)


@router.get(
    API_PREFIX + "/sets/{set_id}/map",
    response_class=Response,
    responses={
        200: {"description": "the points (docs/ui.md: binary layout)", "content": {MAP_CONTENT_TYPE: {}}},
        202: {"description": "being computed: progress (done, total points) as JSON; ask again"},
    },
)
def set_map(
    set_id: str,
    engine: TenantEngine,
    method: Annotated[
        Literal["auto", "pca", "umap"], Query(description="projection (umap: the [umap] extra)")
    ] = "auto",
) -> Response:
    """Every training and production point of the set on the plane, as one binary body; or, while a large set's
    map (or any UMAP map) is being computed in the background, ``202`` with the progress as JSON: ask again."""
    result = _MAPS.get(engine, set_id, method)
    if isinstance(result, Progress):
        return JSONResponse(result.to_dict(), status_code=202, headers={"Retry-After": "1"})
    return Response(result.to_bytes(), media_type=MAP_CONTENT_TYPE)


@router.get(API_PREFIX + "/sets/{set_id}/points/{index}")
def point(set_id: str, index: int, engine: TenantEngine) -> JSONResponse:
    """One point of the map: its input, Chroma's answer and its nearest training inputs."""
    return JSONResponse(describe(engine.store, set_id, index))


class ExportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    indices: list[int] = Field(..., max_length=MAX_EXPORT, description="map point indices")


@router.post(API_PREFIX + "/sets/{set_id}/points/export")
def export(set_id: str, body: ExportIn, engine: TenantEngine) -> JSONResponse:
    """The selected points as rows (index, mode, id, input_uri, preview, label, answer)."""
    return JSONResponse({"rows": export_rows(engine.store, set_id, body.indices)})


@router.post(API_PREFIX + "/sets/{set_id}/points/select")
def select_points(set_id: str, body: ExportIn, engine: TenantEngine) -> JSONResponse:
    """The selected production inputs as a selection: what ``POST .../select`` and ``chroma select --json`` answer
    (training points are left out), highest priority first; ``indices`` gives each pick's map point."""
    selection, indices = lasso_selection(engine.store, engine.query, set_id, body.indices)
    return JSONResponse({**selection.to_dict(), "indices": indices})
