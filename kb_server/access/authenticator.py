"""Authenticator: which caller a request's bearer token stands for, or None (refuse: 401).

Two kinds of keys: the static ``api.api_keys`` (each an admin) and the keys in the database
(KeyStore, made by ``python -m kb_server.cli keys``). Keys are required once either kind
exists; with none at all every request is an admin (the open local mode).

Database answers are cached for ``api.key_cache_ttl_s`` seconds (a bounded cache keyed by the
token's digest), so a request usually costs no query. Hence a revoke, a grant change or a
first key made while the API runs takes effect within that many seconds, with no restart.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final

from kb_server.access.keys import KeyStore
from kb_server.access.principal import ANONYMOUS_ADMIN, STATIC_KEY_ADMIN, Principal

# Distinct digests remembered at most: random tokens sent by a scanner cannot grow it further.
MAX_CACHED_TOKENS = 1024


class _Missing:
    pass


MISSING: Final = _Missing()


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


class Authenticator:
    def __init__(
        self,
        static_keys: Sequence[str],
        store: KeyStore,
        *,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Digests have one length, so comparing them takes the same time whatever was sent.
        self._static_digests = tuple(_digest(key) for key in static_keys)
        self.store = store
        self.ttl_s = ttl_s
        self.clock = clock
        self._guard = threading.Lock()
        self._principals: dict[bytes, tuple[float, Principal | None]] = {}
        self._keys_exist: tuple[float, bool] | None = None

    def cached(self, token: str | None) -> Principal | _Missing | None:
        """The answer without touching the database, or MISSING when it needs a query."""
        if token is not None and self._is_static(token):
            return STATIC_KEY_ADMIN
        principal = MISSING if token is None else self._cached_principal(token)
        if isinstance(principal, Principal):
            return principal
        required = self._cached_keys_required()
        if isinstance(required, _Missing) or (
            token is not None and isinstance(principal, _Missing)
        ):
            return MISSING
        return None if required else ANONYMOUS_ADMIN

    def authenticate(self, token: str | None) -> Principal | None:
        """The caller ``token`` stands for; may query the database (call it off the event loop)."""
        answer = self.cached(token)
        if not isinstance(answer, _Missing):
            return answer
        if token is not None:
            principal = self._cached_principal(token)
            if isinstance(principal, _Missing):
                principal = self._lookup(token)
            if principal is not None:
                return principal
        required = self._cached_keys_required()
        if isinstance(required, _Missing):
            required = self._query_keys_exist()
        return None if required else ANONYMOUS_ADMIN

    def _cached_principal(self, token: str) -> Principal | _Missing | None:
        with self._guard:
            entry = self._principals.get(_digest(token))
        return MISSING if entry is None or entry[0] <= self.clock() else entry[1]

    def _cached_keys_required(self) -> bool | _Missing:
        if self._static_digests:
            return True
        with self._guard:
            entry = self._keys_exist
        return MISSING if entry is None or entry[0] <= self.clock() else entry[1]

    def _is_static(self, token: str) -> bool:
        sent = _digest(token)
        matched = False
        for key in self._static_digests:  # every key, no early exit
            matched |= hmac.compare_digest(sent, key)
        return matched

    def _lookup(self, token: str) -> Principal | None:
        principal = self.store.principal_for(token)
        expires = self.clock() + self.ttl_s
        with self._guard:
            if len(self._principals) >= MAX_CACHED_TOKENS:
                self._principals.clear()
            self._principals[_digest(token)] = (expires, principal)
        return principal

    def _query_keys_exist(self) -> bool:
        exist = self.store.has_keys()
        with self._guard:
            self._keys_exist = (self.clock() + self.ttl_s, exist)
        return exist
