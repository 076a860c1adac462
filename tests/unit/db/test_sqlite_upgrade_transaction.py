"""SQLite migrations run with foreign keys off (batch mode copies tables), checked at commit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from kb_server.db.engine import make_engine
from kb_server.db.models import KnowledgeBase, KnowledgeFile
from kb_server.db.schema import ForeignKeyViolationError, upgrade_schema, upgrade_transaction


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'info.db'}")
    upgrade_schema(engine)
    yield engine
    engine.dispose()


def _add_kb_with_file(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        kb = KnowledgeBase(
            name="kb",
            vs_type="faiss",
            embed_model="m",
            embed_dimension=384,
            chunk_size=250,
            chunk_overlap=50,
            zh_title_enhance=False,
        )
        session.add(kb)
        session.flush()
        session.add(
            KnowledgeFile(
                kb_id=kb.id,
                file_name="a.txt",
                ext=".txt",
                chunk_size=250,
                chunk_overlap=50,
                zh_title_enhance=False,
            )
        )


def _scalar(engine: Engine, sql: str) -> object:
    with engine.connect() as connection:
        return connection.exec_driver_sql(sql).scalar()


def test_batch_rebuild_of_a_parent_table_keeps_its_children(sqlite_engine: Engine) -> None:
    _add_kb_with_file(sqlite_engine)

    with upgrade_transaction(sqlite_engine) as connection:
        context = MigrationContext.configure(connection, opts={"render_as_batch": True})
        with Operations(context).batch_alter_table("knowledge_base", recreate="always") as batch:
            batch.add_column(sa.Column("extra", sa.Integer(), nullable=True))

    assert _scalar(sqlite_engine, "SELECT count(*) FROM knowledge_file") == 1
    assert _scalar(sqlite_engine, "PRAGMA foreign_keys") == 1


def test_upgrade_leaving_orphan_rows_is_rolled_back(sqlite_engine: Engine) -> None:
    _add_kb_with_file(sqlite_engine)

    with pytest.raises(ForeignKeyViolationError), upgrade_transaction(sqlite_engine) as connection:
        connection.exec_driver_sql("DELETE FROM knowledge_base")

    assert _scalar(sqlite_engine, "SELECT count(*) FROM knowledge_base") == 1
    assert _scalar(sqlite_engine, "PRAGMA foreign_keys") == 1
