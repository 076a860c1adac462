"""Optional API keys: ``Authorization: Bearer <key>`` on every route but ``GET /health``.

A pure ASGI middleware, so streamed answers (SSE) pass through untouched. It answers 401
before routing, the same for real and unknown paths, so it reveals no route to a caller
without a key. CORS preflights never reach it: ``CORSMiddleware`` is installed outside it
and answers them itself, and it adds its headers to the 401s too.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from kb_server.api.routers.openai_compat import openai_error_body

logger = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/health"})
OPEN_METHODS = frozenset({"GET", "HEAD"})
OPENAI_PREFIX = "/v1/"
UNAUTHORIZED_CODE = "unauthorized"
UNAUTHORIZED_MESSAGE = "a valid API key is required: send 'Authorization: Bearer <key>'"
# RFC 6455's "policy violation", for a websocket opened without a key.
WS_POLICY_VIOLATION = 1008


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def bearer_token(headers: Headers) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme in any case)."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class ApiKeyMiddleware:
    """Lets a request through when it carries one of ``keys``, or asks for ``GET /health``."""

    def __init__(self, app: ASGIApp, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("ApiKeyMiddleware needs at least one key")
        self.app = app
        # Digests have one length, so comparing them takes the same time whatever was sent.
        self._key_digests = tuple(_digest(key) for key in keys)

    def is_valid(self, token: str | None) -> bool:
        if token is None:
            return False
        sent = _digest(token)
        matched = False
        for key in self._key_digests:  # every key, no early exit
            matched |= hmac.compare_digest(sent, key)
        return matched

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        is_open = scope["path"] in OPEN_PATHS and scope.get("method") in OPEN_METHODS
        if is_open or self.is_valid(bearer_token(Headers(scope=scope))):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": WS_POLICY_VIOLATION})
            return
        await unauthorized(scope["path"])(scope, receive, send)


def unauthorized(path: str) -> JSONResponse:
    """A 401 in the shape the path's clients read: OpenAI's under /v1, the app's elsewhere."""
    if path.startswith(OPENAI_PREFIX):
        body = openai_error_body(401, UNAUTHORIZED_MESSAGE, UNAUTHORIZED_CODE)
    else:
        body = {"detail": {"code": UNAUTHORIZED_CODE, "message": UNAUTHORIZED_MESSAGE}}
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1; host names other than localhost count as not."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def warn_if_exposed(host: str, api_keys: Sequence[str]) -> None:
    """Log a warning when the API listens beyond this machine with no key."""
    if api_keys:
        logger.info("API keys are on (%d configured); /health stays open", len(api_keys))
    elif not is_loopback(host):
        logger.warning(
            "the API listens on %s with no API key: anyone who can reach this address can "
            "read, change and delete the knowledge bases. Set api.api_keys (env "
            "KB_API__API_KEYS) or bind api.host to 127.0.0.1",
            host,
        )
