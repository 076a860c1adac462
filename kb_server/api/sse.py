"""Server-Sent Events: ``data: <json>`` lines, and a response that closes its source.

A route hands over a blocking iterator of ready-made lines. It is advanced in a worker thread,
and closed however the response ends (finished, failed, or the client gone), so a generator
holding an upstream LLM request can close that request in its ``finally``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

EVENT_STREAM_MEDIA_TYPE = "text/event-stream"
# The terminator OpenAI's streams end with.
SSE_DONE = "data: [DONE]\n\n"


def sse_data(payload: Any) -> str:
    """One SSE event carrying ``payload`` as JSON; Chinese stays readable (no \\u escapes)."""
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


async def iterate_closing(lines: Iterator[str]) -> AsyncGenerator[str, None]:
    """``lines`` advanced in a worker thread and closed when iteration stops for any reason."""
    try:
        while True:
            # Not abandoned on cancellation: anyio waits for the thread, so the generator is
            # never closed while it is still running.
            line = await anyio.to_thread.run_sync(_next_or_none, lines)
            if line is None:
                return
            yield line
    finally:
        # Shielded: on a client disconnect this scope is already cancelled.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(close_iterator, lines)


def close_iterator(iterator: Iterator[Any]) -> None:
    """Close a generator early (a ChatStream's events: that closes the upstream request)."""
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


def _next_or_none(lines: Iterator[str]) -> str | None:
    return next(lines, None)


class EventStreamResponse(StreamingResponse):
    """A ``text/event-stream`` response over blocking lines, closing them when it ends."""

    media_type = EVENT_STREAM_MEDIA_TYPE

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = iterate_closing(lines)
        # Proxies such as nginx would otherwise buffer the events.
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        super().__init__(self._lines, headers=headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # A failed send (client gone) leaves the generator suspended; close it now rather
            # than whenever it is garbage-collected.
            await self._lines.aclose()
