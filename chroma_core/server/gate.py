"""What runs before a route's handler: the key check, then the body, read within the limits and parsed off the loop.

FastAPI reads and parses a JSON body before it solves a route's dependencies, so a key checked in a dependency
comes after the whole body has been held in memory. :class:`GuardedRoute` checks the key from the headers first
(nothing of the body is read for a caller without one), then reads a JSON body with ``read_json_body`` (bounded,
gzip undone) and parses it on the thread pool, leaving FastAPI only the cached result to validate.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from chroma_core.server.auth import authenticate
from chroma_core.server.body import read_json_body
from chroma_core.server.wire import ApiError

__all__ = ["PUBLIC_ROUTES", "GuardedRoute", "application_of"]

#: Route names served to anyone (they read no body and show no data).
PUBLIC_ROUTES = frozenset({"health"})


def _parse(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ApiError("invalid_request", f"the body is not valid JSON ({exc}).") from None
    except RecursionError:
        raise ApiError("invalid_request", "the body nests JSON too deeply to be a Chroma request.") from None


def application_of(request: Request) -> str:
    """The application the request authenticated as (set by :class:`GuardedRoute` before anything else)."""
    application: str = request.state.application
    return application


class GuardedRoute(APIRoute):
    """An ``APIRoute`` that authenticates from the headers before any of the body is read."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        public = self.name in PUBLIC_ROUTES
        reads_json = self.body_field is not None

        async def guarded(request: Request) -> Response:
            service = request.app.state.service
            if not public:
                client = request.client.host if request.client else None
                request.state.application = authenticate(service.keys, request.headers, client)
            if reads_json:
                body = await read_json_body(request, service.limits)
                # FastAPI takes what Starlette's Request has cached, so the parsing done here is the only one.
                request._body = body
                if body:
                    request._json = await run_in_threadpool(_parse, body)
            return await handler(request)

        return guarded
