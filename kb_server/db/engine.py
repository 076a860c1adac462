"""Engine and sessions from a SQLAlchemy URL (default: SQLite under the KB root, WAL mode)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from kb_server.db.schema import VERSION_TABLE, target_metadata, upgrade_schema
from kb_server.settings import Settings

# How long a SQLite connection waits for another one's lock before "database is locked".
SQLITE_BUSY_TIMEOUT_S = 30.0
_WAL_RETRY_PAUSE_S = 0.02


def database_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    return f"sqlite:///{settings.kb_root / 'info.db'}"


def _json_dumps(value: Any) -> str:
    # Chinese metadata stays readable in the database instead of \uXXXX escapes.
    return json.dumps(value, ensure_ascii=False)


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer and never see a half-written transaction.
    _switch_to_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Writers from other processes wait instead of failing at once with "database is locked".
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """Put the database in WAL mode, waiting for other connections doing the same.

    Processes that open a new database at once (API workers starting together) all switch
    it to WAL; SQLite answers all but one "database is locked" at once, without its busy
    wait (waiting there could deadlock), so the others try again until it is done.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(_WAL_RETRY_PAUSE_S)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
            json_serializer=_json_dumps,
        )
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    return create_engine(url, pool_pre_ping=True, json_serializer=_json_dumps)


class Database:
    """Owns one engine and hands out sessions; ``transaction()`` commits or rolls back."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(database_url(settings))

    def create_tables(self) -> None:
        """Create the tables, or migrate them to this code's schema (kb_server.db.schema)."""
        upgrade_schema(self.engine)

    def drop_tables(self) -> None:
        """Drop every table, the migration version too, so that create_tables() starts over."""
        with self.engine.begin() as connection:
            target_metadata.drop_all(connection)
            connection.execute(text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
