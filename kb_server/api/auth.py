"""API keys: ``Authorization: Bearer <key>`` on every route but ``GET /health``.

Keys are the static ``api.api_keys`` (admins) and the database keys made by
``python -m kb_server.cli keys`` (admins, or members with grants: kb_server.access). With no
key of either kind the API is open, as before keys existed. The middleware finds who the key
stands for (kb_server.access.authenticator) and runs the request as that principal; the
knowledge-base service then checks each KB the request touches (kb_server.access.check).

A pure ASGI middleware, so streamed answers (SSE) pass through untouched. It answers 401
before routing, the same for real and unknown paths, so it reveals no route to a caller
without a key. CORS preflights never reach it: ``CORSMiddleware`` is installed outside it
and answers them itself, and it adds its headers to the 401s too.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from kb_server.access.authenticator import Authenticator
from kb_server.access.principal import Principal, acting_as
from kb_server.api.routers.openai_compat import openai_error_body

logger = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/health"})
OPEN_METHODS = frozenset({"GET", "HEAD"})
OPENAI_PREFIX = "/v1/"
UNAUTHORIZED_CODE = "unauthorized"
UNAUTHORIZED_MESSAGE = "a valid API key is required: send 'Authorization: Bearer <key>'"
# RFC 6455's "policy violation", for a websocket opened without a key.
WS_POLICY_VIOLATION = 1008


def bearer_token(headers: Headers) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme in any case)."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class ApiKeyMiddleware:
    """Runs a request as the principal of its key; 401 without a valid key once keys exist."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def principal_of(self, token: str | None) -> Principal | None:
        answer = self.authenticator.cached(token)
        if isinstance(answer, Principal) or answer is None:
            return answer
        # A database read: off the event loop, so other requests and streams go on.
        return await run_in_threadpool(self.authenticator.authenticate, token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if scope["path"] in OPEN_PATHS and scope.get("method") in OPEN_METHODS:
            await self.app(scope, receive, send)
            return
        principal = await self.principal_of(bearer_token(Headers(scope=scope)))
        if principal is not None:
            with acting_as(principal):
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


def warn_if_exposed(host: str, api_keys: Sequence[str], *, stored_keys: bool = False) -> None:
    """Log a warning when the API listens beyond this machine with no key of either kind."""
    if api_keys or stored_keys:
        logger.info(
            "API keys are on (%d in api.api_keys, database keys: %s); /health stays open",
            len(api_keys),
            "yes" if stored_keys else "none",
        )
    elif not is_loopback(host):
        logger.warning(
            "the API listens on %s with no API key: anyone who can reach this address can "
            "read, change and delete the knowledge bases. Set api.api_keys (env "
            "KB_API__API_KEYS), make keys with python -m kb_server.cli keys create, or bind "
            "api.host to 127.0.0.1",
            host,
        )
