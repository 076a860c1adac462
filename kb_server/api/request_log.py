"""One log line per HTTP request: method, route, knowledge base, status, duration.

The line names the route template (``/knowledge_base/search_docs``), never the query string,
the body or a header, so no document text, question or API key reaches the log. The knowledge
base is the one the service resolved while handling the request
(kb_server.request_context.note_kb): routes that take it from a JSON body are covered too.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kb_server.request_context import RequestRecord, current_request

logger = logging.getLogger("kb_server.api.requests")


def _route_template(app: Any, scope: Scope) -> str:
    # The router records the route it dispatched to; only a request refused before routing
    # (a 401 of the key check) is matched here.
    routed = scope.get("route")
    if routed is not None:
        return str(getattr(routed, "path", scope["path"]))
    for route in getattr(app, "routes", ()):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(getattr(route, "path", scope["path"]))
    return "(no route)"


class RequestLogMiddleware:
    def __init__(self, app: ASGIApp, *, routes_of: Any) -> None:
        self.app = app
        # The FastAPI app, whose routes name the template of a request's path.
        self.routes_of = routes_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        record = RequestRecord()
        token = current_request.set(record)

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            current_request.reset(token)
            logger.info(
                "method=%s route=%s kb=%s status=%d duration_ms=%.1f",
                scope["method"],
                _route_template(self.routes_of, scope),
                ",".join(record.kb_names) or "-",
                status,
                (time.perf_counter() - started) * 1000,
            )
