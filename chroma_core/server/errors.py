"""How failures become responses: every error is ``{"error": {"code", "message"}}`` with the code's status.

Our own :class:`ChromaError` (raised by the request objects and the engine) and the server's :class:`ApiError` map
to their wire codes (``wire.code_for``); malformed requests are 422 ``invalid_request`` naming the field; anything
unexpected is a 500 whose details go to the server log, never to the client.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chroma_core.errors import ChromaError
from chroma_core.server.wire import ERRORS, ApiError, code_for

__all__ = ["error_response", "install_error_handlers"]

logger = logging.getLogger("chroma.server")

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def error_response(code: str, message: str, status: int | None = None) -> JSONResponse:
    """The JSON error body for ``code`` (at the code's own status unless ``status`` says otherwise)."""
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=ERRORS[code][0] if status is None else status
    )


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.code, str(exc))


async def _chroma_error(request: Request, exc: ChromaError) -> JSONResponse:
    return error_response(code_for(exc), str(exc))


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return error_response("invalid_request", f"invalid request: {where}: {first.get('msg', 'malformed')}")


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, "invalid_request")
    return error_response(code, str(exc.detail), exc.status_code)


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("internal error on %s %s", request.method, request.url.path)
    return error_response("internal", "internal error; see the server log")


def install_error_handlers(app: FastAPI) -> None:
    """Answer every failure of ``app`` in the wire's error shape (the most specific handler wins)."""
    app.exception_handler(ApiError)(_api_error)
    app.exception_handler(ChromaError)(_chroma_error)
    app.exception_handler(RequestValidationError)(_validation)
    app.exception_handler(StarletteHTTPException)(_http)
    app.exception_handler(Exception)(_internal)
