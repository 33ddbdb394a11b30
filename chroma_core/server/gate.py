"""What runs before a route's handler: the key check, then the body, read within the limits and parsed off the loop.

FastAPI reads and parses a JSON body before it solves a route's dependencies, so a key checked in a dependency
comes after the whole body has been held in memory. :class:`GuardedRoute` checks the key from the headers first
(nothing of the body is read for a caller without one), then reads a JSON body with ``read_json_body`` (bounded,
gzip undone) and parses it on the thread pool, leaving FastAPI only the cached result to validate.

A route marked :func:`direct` (the hot ones: queries, uploads) reads its own body and returns its own
``Response``; it is called with the request and its path parameters, past FastAPI's request handler (dependency
solving, response validation), which it would not use and which cost a small query a tenth of its server time.
FastAPI still documents it from its signature.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from chroma_core.server.auth import authenticate
from chroma_core.server.body import read_json_body
from chroma_core.server.wire import ApiError

__all__ = ["PUBLIC_ROUTES", "GuardedRoute", "application_of", "direct"]

#: Route names served to anyone (they read no body and show no data).
PUBLIC_ROUTES = frozenset({"health"})


def _parse(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ApiError("invalid_request", f"the body is not valid JSON ({exc}).") from None
    except RecursionError:
        raise ApiError("invalid_request", "the body nests JSON too deeply to be a Chroma request.") from None


_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Awaitable[Response]])


def direct(endpoint: _Endpoint) -> _Endpoint:
    """Mark an ``async`` endpoint that takes ``request`` (and path parameters as ``str``) and returns a Response:
    :class:`GuardedRoute` calls it as it is, without FastAPI's request handler."""
    endpoint._chroma_direct = True  # type: ignore[attr-defined]
    return endpoint


def application_of(request: Request) -> str:
    """The application the request authenticated as (set by :class:`GuardedRoute` before anything else)."""
    application: str = request.state.application
    return application


def _direct_handler(endpoint: Callable[..., Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request) -> Response:
        return await endpoint(request=request, **request.path_params)

    return handler


class GuardedRoute(APIRoute):
    """An ``APIRoute`` that authenticates from the headers before any of the body is read."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        public = self.name in PUBLIC_ROUTES
        handler: Callable[[Request], Awaitable[Response]]
        if getattr(self.endpoint, "_chroma_direct", False):
            handler, reads_json = _direct_handler(self.endpoint), False
        else:
            handler, reads_json = super().get_route_handler(), self.body_field is not None

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
