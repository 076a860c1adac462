"""Errors as JSON with real status codes: ``{"detail": {"code", "message"}}``.

On Chatchat-compatible routes the same body also carries Chatchat's envelope fields, with
``code`` equal to the HTTP status, so its clients read failures where they expect them.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kb_server.api.envelope import CHATCHAT_TAG
from kb_server.errors import KbError

logger = logging.getLogger(__name__)


def _is_chatchat_route(request: Request) -> bool:
    route = request.scope.get("route")
    return CHATCHAT_TAG in (getattr(route, "tags", None) or [])


class ErrorJSONResponse(JSONResponse):
    """JSON that survives lone surrogates: a request's JSON may carry "\\ud800", which
    validation errors echo back and UTF-8 cannot encode; it goes out escaped instead."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8", errors="backslashreplace")


def error_response(request: Request, status: int, detail: Any, message: str) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail}
    if _is_chatchat_route(request):
        body = {"code": status, "msg": message, "data": None, **body}
    return ErrorJSONResponse(status_code=status, content=jsonable_encoder(body))


async def handle_kb_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KbError)
    detail = {"code": exc.code, "message": exc.message}
    return error_response(request, exc.http_status, detail, exc.message)


async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(request, 422, exc.errors(), "invalid request parameters")


async def handle_unencodable_text(request: Request, exc: Exception) -> JSONResponse:
    """Text that cannot be stored (lone surrogates from JSON escapes) is the client's error."""
    assert isinstance(exc, UnicodeEncodeError)
    message = f"text that cannot be encoded as {exc.encoding}: {exc.reason}"
    return error_response(request, 422, {"code": "invalid_text", "message": message}, message)


async def handle_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(request, exc.status_code, exc.detail, str(exc.detail))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(KbError, handle_kb_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_error)
    app.add_exception_handler(UnicodeEncodeError, handle_unencodable_text)
