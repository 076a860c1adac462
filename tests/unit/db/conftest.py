"""A database URL per backend (a SQLite file, a fresh PostgreSQL database) and helpers to look
at the schema that ended up in it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text

from kb_server.db.engine import make_engine
from kb_server.db.schema import target_metadata

# The catalog rows that make up a PostgreSQL schema: columns (types, defaults, nullability),
# constraints (primary, unique, foreign keys with their ON DELETE) and indexes.
PG_CATALOG_QUERIES = (
    "SELECT table_name, column_name, ordinal_position, data_type, is_nullable,"
    " column_default, character_maximum_length FROM information_schema.columns"
    " WHERE table_schema = current_schema()",
    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
    " WHERE connamespace = current_schema()::regnamespace",
    "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()",
)


@pytest.fixture(params=["sqlite", "pg"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file in tmp_path, or a fresh PostgreSQL 16 database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'info.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def schema_differences(engine: Engine) -> list[Any]:
    """What Alembic's autogenerate would change to make the database match the models."""
    with engine.connect() as connection:
        return list(compare_metadata(MigrationContext.configure(connection), target_metadata))


def ddl_snapshot(engine: Engine) -> list[tuple[Any, ...]]:
    """The schema as the database itself reports it, sorted, for comparing two builds."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            rows = connection.execute(
                text("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL")
            )
            return sorted(tuple(row) for row in rows)
        snapshot: list[tuple[Any, ...]] = []
        for query in PG_CATALOG_QUERIES:
            snapshot.extend(tuple(row) for row in connection.execute(text(query)))
        return sorted(snapshot, key=repr)
