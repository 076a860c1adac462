"""What the request being served touched, for its log line (kb_server.api.request_log).

The API sets a fresh record per request; the service notes each knowledge base it resolves.
Routes run in worker threads that get a copy of the context, so they write into the shared
record rather than set the variable. Outside a request nothing is recorded.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field


@dataclass
class RequestRecord:
    kb_names: list[str] = field(default_factory=list)


current_request: contextvars.ContextVar[RequestRecord | None] = contextvars.ContextVar(
    "kb_current_request", default=None
)


def note_kb(name: str) -> None:
    """Record that the current request works on knowledge base ``name``."""
    record = current_request.get()
    if record is not None and name not in record.kb_names:
        record.kb_names.append(name)
