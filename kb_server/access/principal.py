"""Who is calling: an admin, or a member key with its grants; set per request by the API.

The API's key check (kb_server.api.auth) sets ``current_principal`` for the request it lets
through. Routes run in worker threads that get a copy of the context, so the service sees it.
Nothing sets it outside a request (the CLI, the startup check, a rebuild's own thread), and
no principal means no restriction: whoever runs the process owns the files anyway.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

Access = Literal["reader", "writer"]
Role = Literal["admin", "member"]
ACCESS_LEVELS: tuple[Access, ...] = ("reader", "writer")
ROLES: tuple[Role, ...] = ("admin", "member")


@dataclass(frozen=True)
class Principal:
    """``name`` labels the key (never the key itself); ``grants`` maps KB names to access."""

    name: str
    is_admin: bool
    grants: Mapping[str, Access] = field(default_factory=dict)

    def can_read(self, kb_name: str) -> bool:
        return self.is_admin or kb_name in self.grants

    def can_write(self, kb_name: str) -> bool:
        return self.is_admin or self.grants.get(kb_name) == "writer"


# A request when no key exists at all (open local mode), and one with a static api.api_keys key.
ANONYMOUS_ADMIN = Principal(name="(no keys configured)", is_admin=True)
STATIC_KEY_ADMIN = Principal(name="(api.api_keys)", is_admin=True)

current_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "kb_current_principal", default=None
)


@contextmanager
def acting_as(principal: Principal) -> Iterator[None]:
    """Run the block as ``principal`` (the key check wraps each request in this)."""
    token = current_principal.set(principal)
    try:
        yield
    finally:
        current_principal.reset(token)
