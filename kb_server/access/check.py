"""The access check every KB operation passes through (KnowledgeBaseService calls it).

A key that cannot read a KB gets the very error a missing KB gives (KbNotFoundError, 404,
same message), raised at the point where the existence check would raise it, so no answer
tells an unauthorized KB from an unknown one. A reader asking to write gets 403
``kb_read_only``: it may know the KB exists, its grant names it. Creating a KB needs an admin
or a writer grant on that name (grants may name KBs that do not exist yet); anyone else gets
403 ``access_denied`` whether or not the KB exists.
"""

from __future__ import annotations

from collections.abc import Iterable

from kb_server.access.principal import current_principal
from kb_server.errors import KbError
from kb_server.knowledge.types import KbNotFoundError


class KbReadOnlyError(KbError):
    code = "kb_read_only"
    http_status = 403

    def __init__(self, kb_name: str) -> None:
        super().__init__(f"this API key may read knowledge base {kb_name!r} but not change it")
        self.kb_name = kb_name


class AccessDeniedError(KbError):
    code = "access_denied"
    http_status = 403


def require(kb_name: str, *, write: bool = False) -> None:
    """Pass when the current caller may read (``write``: change) KB ``kb_name`` (a valid,
    normalized name); KbNotFoundError when it may not read it, KbReadOnlyError when it may
    only read it."""
    principal = current_principal.get()
    if principal is None:
        return
    if not principal.can_read(kb_name):
        raise KbNotFoundError(kb_name)
    if write and not principal.can_write(kb_name):
        raise KbReadOnlyError(kb_name)


def require_create(kb_name: str) -> None:
    principal = current_principal.get()
    if principal is None or principal.can_write(kb_name):
        return
    raise AccessDeniedError(
        f"this API key may not create knowledge base {kb_name!r}: an admin key, or a writer "
        "grant on that name, is needed"
    )


def require_admin(action: str) -> None:
    principal = current_principal.get()
    if principal is None or principal.is_admin:
        return
    raise AccessDeniedError(f"only an admin API key may {action}")


def visible(kb_names: Iterable[str]) -> list[str]:
    """The names the current caller may read, in the given order."""
    principal = current_principal.get()
    if principal is None:
        return list(kb_names)
    return [name for name in kb_names if principal.can_read(name)]
