"""The PostgreSQL connection pool shared by the ``pg`` vector stores and keyword indexes.

One SQLAlchemy engine per database URL and process: every knowledge base's store and index
borrow connections from it, so a process keeps ``vector_store.pg.pool_size`` connections per
database however many knowledge bases it has open. The engines live in an explicit,
lock-protected cache (:data:`ENGINES`) because the registry opens stores from settings alone;
:func:`dispose_engine` closes one (tests, shutdown).

Each new connection gets pgvector's psycopg adapters, so numpy arrays bind as ``vector``
parameters and ``vector`` columns load as :class:`pgvector.Vector`.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Final

from pgvector.psycopg import register_vector
from psycopg.types import TypeInfo
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from kb_server.db.engine import database_url
from kb_server.errors import KbError
from kb_server.settings import Settings

logger = logging.getLogger(__name__)

# The one driver the stores speak (pgvector's adapters are registered on psycopg 3 connections).
DRIVER: Final = "postgresql+psycopg"


class PgStoreConfigError(KbError, ValueError):
    """The ``pg`` store was chosen but no PostgreSQL database is configured for it."""

    code = "pg_store_not_configured"
    http_status = 503


class PgVectorUnavailableError(KbError, RuntimeError):
    """The PostgreSQL server has no pgvector extension, or it cannot be created."""

    code = "pgvector_unavailable"
    http_status = 503


def pg_store_url(settings: Settings) -> str:
    """The database of the ``pg`` store: ``vector_store.pg.url``, else the metadata database."""
    url = settings.vector_store.pg.url or database_url(settings)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise PgStoreConfigError(f"vector_store.pg.url is not a database URL: {exc}") from exc
    if parsed.get_backend_name() != "postgresql":
        raise PgStoreConfigError(
            "vs_type 'pg' needs a PostgreSQL database with pgvector, but the configured "
            f"database is {parsed.get_backend_name()!r}. Set vector_store.pg.url "
            "(KB_VECTOR_STORE__PG__URL) or database_url (KB_DATABASE_URL) to a URL like "
            "postgresql+psycopg://user:password@host:5432/dbname"
        )
    return url


def _normalized(url: str) -> str:
    """``url`` with the psycopg 3 driver (``postgresql://`` would pick psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername=DRIVER)
    elif parsed.drivername != DRIVER:
        raise PgStoreConfigError(
            f"the pg store connects with psycopg 3; use {DRIVER}://... instead of "
            f"{parsed.drivername}://..."
        )
    return parsed.render_as_string(hide_password=False)


def _register_vector_type(dbapi_connection: Any, _record: Any) -> None:
    # Before the extension exists (the first connection of a fresh database) there is no type
    # to register; _ensure_pgvector registers it on that connection once it is created.
    if TypeInfo.fetch(dbapi_connection, "vector") is not None:
        register_vector(dbapi_connection)
    dbapi_connection.commit()  # the lookup opened a transaction; leave the connection idle


def _ensure_pgvector(engine: Engine) -> None:
    """``CREATE EXTENSION vector`` where it is missing, with errors that say what to do."""
    with engine.connect() as conn:
        installed = conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'vector'"))
        if installed.first() is not None:
            return
        available = conn.execute(
            text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        ).first()
        if available is None:
            raise PgVectorUnavailableError(
                "the PostgreSQL server has no pgvector extension; install pgvector on the "
                "server: https://github.com/pgvector/pgvector#installation (e.g. the "
                "postgresql-16-pgvector package), then restart"
            )
        try:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
            conn.commit()
        except DBAPIError as exc:
            raise PgVectorUnavailableError(
                "pgvector is installed on the server but the extension is not enabled in this "
                "database and this user may not create it; run CREATE EXTENSION vector as a "
                f"database owner or superuser ({exc.orig})"
            ) from exc
        logger.info("Created the pgvector extension in %s", engine.url.database)
        register_vector(conn.connection.driver_connection)  # type: ignore[arg-type]


class EngineCache:
    """One engine per (normalized) URL; the first caller's ``pool_size`` sizes its pool."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engines: dict[str, Engine] = {}

    def get(self, url: str, pool_size: int) -> Engine:
        key = _normalized(url)
        with self._lock:
            engine = self._engines.get(key)
            if engine is not None:
                return engine
            engine = create_engine(key, pool_pre_ping=True, pool_size=pool_size)
            event.listen(engine, "connect", _register_vector_type)
            try:
                _ensure_pgvector(engine)
            except BaseException:
                engine.dispose()
                raise
            self._engines[key] = engine
            return engine

    def dispose(self, url: str) -> None:
        with self._lock:
            engine = self._engines.pop(_normalized(url), None)
        if engine is not None:
            engine.dispose()


ENGINES: Final = EngineCache()


def engine_for(url: str, pool_size: int) -> Engine:
    """The process's engine for ``url``, created (with pgvector enabled) on first use."""
    return ENGINES.get(url, pool_size)


def dispose_engine(url: str) -> None:
    """Close the pooled connections to ``url``; a later :func:`engine_for` opens new ones."""
    ENGINES.dispose(url)
