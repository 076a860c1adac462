"""Bring the metadata database to the schema this code expects (Alembic revisions).

``upgrade_schema`` runs on every ``Database.create_tables()``:

- already at head: one SELECT on ``alembic_version`` and nothing else;
- fresh (none of our tables): ``create_all`` and stamp head, which builds what running every
  revision would (tests/unit/db/test_migrations.py compares the two);
- at an older revision: ``alembic upgrade head``;
- tables made before migrations existed (no version row): upgrade from base, whose first
  revision creates only the missing tables and so adopts the database, keeping its rows;
- at a revision this code does not know, written by a newer kb_server: SchemaTooNewError.

Several processes may start at once (API workers): all but the fast path run in one
transaction that holds a lock (``upgrade_transaction``; PostgreSQL: a transaction-level
advisory lock; SQLite: ``BEGIN IMMEDIATE``, the others waiting out the busy timeout) and read
the revision again once they hold it, so the first one upgrades and the rest find head.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from kb_server.db.api_keys import ApiKeyGrantRow, ApiKeyRow
from kb_server.db.conversations import ConversationRow, MessageRow
from kb_server.db.jobs import IngestJobEventRow, IngestJobFileRow, IngestJobRow
from kb_server.db.models import Base, ChunkRow, KbChatPolicyRow, KnowledgeBase, KnowledgeFile

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"
# Any fixed 64-bit key ("kbschema"): it only has to be the same in every kb_server process.
PG_UPGRADE_LOCK_KEY = 0x6B62736368656D61

# Every mapped table. A new model module is imported here, so that the migrations see it.
MODELS = (
    KnowledgeBase,
    KnowledgeFile,
    ChunkRow,
    ConversationRow,
    MessageRow,
    IngestJobRow,
    IngestJobFileRow,
    IngestJobEventRow,
    ApiKeyRow,
    ApiKeyGrantRow,
    KbChatPolicyRow,
)
target_metadata = Base.metadata


class SchemaTooNewError(RuntimeError):
    """The database was migrated by a newer kb_server than this one."""

    def __init__(self, revision: str, head: str) -> None:
        super().__init__(
            f"the database schema is at revision {revision!r}, which this kb_server does not "
            f"know (its newest is {head!r}): a newer kb_server has upgraded it; upgrade "
            "kb_server to use this database"
        )
        self.revision = revision
        self.head = head


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for our migrations; with ``connection`` env.py runs on it."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


# An explicit cache: the revision files cannot change while the process runs, and reading
# them would dominate the at-head check.
@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


@functools.cache
def _known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in _scripts().walk_revisions())


def head_revision() -> str:
    """The newest revision this code knows."""
    head = _scripts().get_current_head()
    if head is None:
        raise RuntimeError(f"no migration revisions found in {MIGRATIONS_DIR}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's revision; None for a database that was never stamped."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_schema(engine: Engine) -> None:
    """Create or upgrade the tables to head; safe to call from several processes at once."""
    head = head_revision()
    if _stamped_revisions(engine) == [head]:
        return
    with upgrade_transaction(engine) as connection:
        _upgrade_locked(connection, head)


def _stamped_revisions(engine: Engine) -> list[str] | None:
    try:
        with engine.connect() as connection:
            rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
            return list(rows.scalars())
    except DBAPIError:
        # No version table yet, most likely; the locked path reports any other failure.
        return None


class ForeignKeyViolationError(RuntimeError):
    """A migration left rows whose parent row is gone (SQLite checks after the fact)."""


@contextmanager
def upgrade_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction no other kb_server upgrader holds; commits on exit.

    Migrations run in it. On SQLite foreign keys are off meanwhile: batch mode rebuilds a
    table by copying it and dropping the original, and with them on, dropping
    knowledge_base would cascade-delete every file and chunk. They are checked before commit.
    """
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            with _sqlite_foreign_keys_off(connection):
                # pysqlite would only BEGIN at the first write; IMMEDIATE takes the lock now.
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                yield connection
                violations = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if violations:
                    raise ForeignKeyViolationError(
                        f"schema upgrade left rows without their parent: {violations[:5]}"
                    )
                connection.commit()
            return
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_UPGRADE_LOCK_KEY}
            )
        yield connection
        connection.commit()


@contextmanager
def _sqlite_foreign_keys_off(connection: Connection) -> Iterator[None]:
    # The pragma is a no-op inside a transaction, so it is set before BEGIN and restored
    # after the transaction ends, before the connection goes back to the pool.
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        try:
            connection.rollback()
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()
        except DBAPIError:
            # A connection whose pragma cannot be restored must not go back to the pool.
            connection.invalidate()


def _upgrade_locked(connection: Connection, head: str) -> None:
    revisions = MigrationContext.configure(connection).get_current_heads()
    for revision in revisions:
        if revision not in _known_revisions():
            raise SchemaTooNewError(revision, head)
    if list(revisions) == [head]:
        return
    if not revisions and not _has_model_tables(connection):
        target_metadata.create_all(connection)
        MigrationContext.configure(connection).stamp(_scripts(), head)
        return
    command.upgrade(alembic_config(connection), "head")


def _has_model_tables(connection: Connection) -> bool:
    return bool(set(inspect(connection).get_table_names()) & set(target_metadata.tables))
