"""KeyStore: API keys in the metadata database, stored as SHA-256 digests, with their grants.

A key is ``kb-`` and 43 URL-safe characters (256 random bits), shown once when it is made;
only its SHA-256 (hex) and its first characters (to tell keys apart in listings) are kept.
256 random bits cannot be found from the digest by guessing, so a plain hash is enough and
lets a request's key be looked up by one indexed read.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from kb_server.access.principal import ACCESS_LEVELS, Access, Principal, Role
from kb_server.db.api_keys import ApiKeyGrantRow, ApiKeyRow
from kb_server.db.engine import Database
from kb_server.db.models import utc_now
from kb_server.errors import InvalidInputError, KbError
from kb_server.knowledge.paths import validate_kb_name

KEY_PREFIX = "kb-"
KEY_RANDOM_BYTES = 32
# "kb-" and 7 random characters: enough to tell keys apart, far too few to guess the rest.
SHOWN_PREFIX_CHARS = 10
_KEY_NAME = re.compile(r"^[\w.\-]{1,64}$")


class ApiKeyExistsError(KbError):
    code = "api_key_exists"
    http_status = 409

    def __init__(self, name: str) -> None:
        super().__init__(f"an API key named {name!r} already exists")


class ApiKeyNotFoundError(KbError):
    code = "api_key_not_found"
    http_status = 404

    def __init__(self, name: str) -> None:
        super().__init__(f"no API key is named {name!r}")


@dataclass(frozen=True)
class KeyInfo:
    """A stored key as listings show it: never the key itself."""

    name: str
    prefix: str
    role: Role
    grants: dict[str, Access]
    created_at: datetime
    revoked_at: datetime | None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)


def _checked_name(name: str) -> str:
    if not _KEY_NAME.match(name):
        raise InvalidInputError(
            f"invalid key name {name!r}: use 1-64 letters, digits, '-', '_' or '.'"
        )
    return name


def _checked_grants(grants: Mapping[str, str]) -> dict[str, Access]:
    checked: dict[str, Access] = {}
    for kb_name, access in grants.items():
        if access not in ACCESS_LEVELS:
            raise InvalidInputError(f"access must be reader or writer, not {access!r}")
        checked[validate_kb_name(kb_name)] = access
    return checked


def _info(row: ApiKeyRow) -> KeyInfo:
    return KeyInfo(
        name=row.name,
        prefix=row.key_prefix,
        role=cast(Role, row.role),
        grants={grant.kb_name: cast(Access, grant.access) for grant in row.grants},
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


class KeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self, name: str, *, admin: bool, grants: Mapping[str, str] | None = None
    ) -> tuple[str, KeyInfo]:
        """A new key (returned once, in clear) and its stored info. An admin key reaches every
        KB, so it takes no grants; a member key reaches only its grants' KBs."""
        _checked_name(name)
        checked = _checked_grants(grants or {})
        if admin and checked:
            raise InvalidInputError("an admin key reaches every knowledge base: give no grants")
        key = new_key()
        with self.db.transaction() as session:
            if session.scalar(select(ApiKeyRow.id).where(ApiKeyRow.name == name)) is not None:
                raise ApiKeyExistsError(name)
            row = ApiKeyRow(
                name=name,
                key_hash=hash_key(key),
                key_prefix=key[:SHOWN_PREFIX_CHARS],
                role="admin" if admin else "member",
            )
            row.grants = [
                ApiKeyGrantRow(kb_name=kb_name, access=access)
                for kb_name, access in checked.items()
            ]
            session.add(row)
            session.flush()
            return key, _info(row)

    def list_keys(self) -> list[KeyInfo]:
        with self.db.session() as session:
            rows = session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.name)).all()
            return [_info(row) for row in rows]

    def grant(self, name: str, grants: Mapping[str, str]) -> KeyInfo:
        """Add or change grants of member key ``name`` (writer replaces reader and back)."""
        checked = _checked_grants(grants)
        with self.db.transaction() as session:
            row = self._row(session, name)
            if row.role == "admin":
                raise InvalidInputError(f"{name!r} is an admin key: it reaches every KB already")
            current = {grant.kb_name: grant for grant in row.grants}
            for kb_name, access in checked.items():
                if kb_name in current:
                    current[kb_name].access = access
                else:
                    row.grants.append(ApiKeyGrantRow(kb_name=kb_name, access=access))
            session.flush()
            return _info(row)

    def ungrant(self, name: str, kb_names: list[str]) -> KeyInfo:
        dropped = {validate_kb_name(kb_name) for kb_name in kb_names}
        with self.db.transaction() as session:
            row = self._row(session, name)
            row.grants = [grant for grant in row.grants if grant.kb_name not in dropped]
            session.flush()
            return _info(row)

    def revoke(self, name: str) -> KeyInfo:
        """Refuse key ``name`` from now on; its row stays, to be listed (a second revoke keeps
        the first time)."""
        with self.db.transaction() as session:
            row = self._row(session, name)
            if row.revoked_at is None:
                row.revoked_at = utc_now()
            return _info(row)

    def delete(self, name: str) -> None:
        with self.db.transaction() as session:
            session.delete(self._row(session, name))

    def has_keys(self) -> bool:
        """True once any key row exists, revoked or not: revoking the last key must not open
        the API to everyone. Deleting every key row does."""
        with self.db.session() as session:
            return session.scalar(select(ApiKeyRow.id).limit(1)) is not None

    def principal_for(self, key: str) -> Principal | None:
        """The caller a sent key stands for; None when it is unknown or revoked."""
        with self.db.session() as session:
            row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == hash_key(key)))
            if row is None or row.revoked_at is not None:
                return None
            info = _info(row)
        return Principal(name=info.name, is_admin=info.role == "admin", grants=info.grants)

    def _row(self, session: Session, name: str) -> ApiKeyRow:
        row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.name == name))
        if row is None:
            raise ApiKeyNotFoundError(name)
        return row
