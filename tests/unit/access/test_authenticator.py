"""Authenticator over a real SQLite key store, with a clock the test moves: static keys,
database keys, the open mode, and how long a cached answer lasts."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb_server.access.authenticator import MISSING, Authenticator
from kb_server.access.keys import KeyStore
from kb_server.access.principal import ANONYMOUS_ADMIN, STATIC_KEY_ADMIN
from kb_server.db.engine import Database

TTL_S = 5.0
STATIC = "static-key-9c1e"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    db = Database(f"sqlite:///{tmp_path / 'keys.db'}")
    db.create_tables()
    return KeyStore(db)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def authenticator(store: KeyStore, clock: Clock, static: list[str] | None = None) -> Authenticator:
    return Authenticator(static or [], store, ttl_s=TTL_S, clock=clock)


def test_no_key_of_either_kind_is_the_open_mode(store: KeyStore, clock: Clock) -> None:
    auth = authenticator(store, clock)
    assert auth.authenticate(None) is ANONYMOUS_ADMIN
    assert auth.authenticate("anything") is ANONYMOUS_ADMIN


def test_static_keys_are_admins_and_others_are_refused(store: KeyStore, clock: Clock) -> None:
    auth = authenticator(store, clock, [STATIC])
    assert auth.cached(STATIC) is STATIC_KEY_ADMIN
    assert auth.authenticate(None) is None
    assert auth.authenticate("wrong") is None
    member_key, _ = store.create("reader", admin=False, grants={"docs": "reader"})
    principal = auth.authenticate(member_key)
    assert principal is not None
    assert principal.can_read("docs")
    assert not principal.can_write("docs")
    assert not principal.can_read("other")


def test_first_database_key_closes_the_api_within_the_ttl(store: KeyStore, clock: Clock) -> None:
    auth = authenticator(store, clock)
    assert auth.authenticate(None) is ANONYMOUS_ADMIN
    key, _ = store.create("first", admin=True)
    clock.now += TTL_S - 0.1
    assert auth.cached(None) is ANONYMOUS_ADMIN
    clock.now += 0.2
    assert auth.cached(None) is MISSING
    assert auth.authenticate(None) is None
    principal = auth.authenticate(key)
    assert principal is not None
    assert principal.is_admin


def test_revoke_takes_effect_once_the_cached_answer_expires(store: KeyStore, clock: Clock) -> None:
    auth = authenticator(store, clock)
    key, _ = store.create("bot", admin=False, grants={"docs": "writer"})
    assert auth.cached(key) is MISSING
    assert auth.authenticate(key) is not None
    store.revoke("bot")
    # Served from the cache, without a query, until the TTL passes.
    assert auth.cached(key) is not None
    clock.now += TTL_S
    assert auth.authenticate(key) is None


def test_grant_changes_show_after_the_ttl(store: KeyStore, clock: Clock) -> None:
    auth = authenticator(store, clock)
    key, _ = store.create("bot", admin=False, grants={"docs": "reader"})
    before = auth.authenticate(key)
    assert before is not None
    assert not before.can_write("docs")
    store.grant("bot", {"docs": "writer"})
    clock.now += TTL_S
    after = auth.authenticate(key)
    assert after is not None
    assert after.can_write("docs")


def test_zero_ttl_asks_the_database_every_time(store: KeyStore, clock: Clock) -> None:
    auth = Authenticator([], store, ttl_s=0, clock=clock)
    key, _ = store.create("bot", admin=True)
    assert auth.authenticate(key) is not None
    assert auth.cached(key) is MISSING
    store.revoke("bot")
    assert auth.authenticate(key) is None
