"""Schema revisions on SQLite and PostgreSQL: fresh, adopted, upgraded and refused databases."""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, event, inspect, select, text
from sqlalchemy.orm import Session

from kb_server.db.conversations import ConversationRow, MessageRow
from kb_server.db.engine import Database
from kb_server.db.models import KnowledgeBase
from kb_server.db.schema import (
    VERSION_TABLE,
    SchemaTooNewError,
    alembic_config,
    current_revision,
    head_revision,
    target_metadata,
    upgrade_schema,
)
from tests.unit.db.conftest import ddl_snapshot, schema_differences


def _add_kb(engine: Engine, name: str) -> None:
    with Session(engine) as session, session.begin():
        session.add(
            KnowledgeBase(
                name=name,
                vs_type="faiss",
                embed_model="m",
                embed_dimension=384,
                chunk_size=250,
                chunk_overlap=50,
                zh_title_enhance=False,
            )
        )


def _kb_names(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.scalars(select(KnowledgeBase.name)))


def _run_migration_scripts(engine: Engine, target: str = "head") -> None:
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), target)


def test_fresh_database_is_created_at_head_matching_the_models(engine: Engine) -> None:
    upgrade_schema(engine)

    assert current_revision(engine) == head_revision()
    assert schema_differences(engine) == []


def test_migration_scripts_from_empty_build_the_models_schema(engine: Engine) -> None:
    _run_migration_scripts(engine)

    assert current_revision(engine) == head_revision()
    assert schema_differences(engine) == []


def test_migration_scripts_and_the_fast_path_write_the_same_ddl(db_url: str) -> None:
    # Finer than compare_metadata, which does not see SQLite's AUTOINCREMENT or ON DELETE.
    database = Database(db_url)
    try:
        database.create_tables()
        from_models = ddl_snapshot(database.engine)
        database.drop_tables()
        _run_migration_scripts(database.engine)
        from_scripts = ddl_snapshot(database.engine)
    finally:
        database.dispose()

    assert from_scripts == from_models
    if database.engine.dialect.name == "sqlite":
        assert any("AUTOINCREMENT" in str(row[2]) for row in from_models if row[1] == "chunk")


def test_at_head_check_is_one_query(engine: Engine) -> None:
    upgrade_schema(engine)
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    upgrade_schema(engine)
    event.remove(engine, "before_cursor_execute", record)

    assert len(statements) == 1


# The tables databases held before migrations existed (revision 0001 adopts them).
PRE_MIGRATION_TABLES = ("knowledge_base", "knowledge_file", "chunk", "conversation", "message")


def test_pre_migration_database_is_adopted_and_keeps_its_rows(engine: Engine) -> None:
    # What create_tables() did before migrations.
    target_metadata.create_all(
        engine, tables=[target_metadata.tables[name] for name in PRE_MIGRATION_TABLES]
    )
    _add_kb(engine, "旧知识库")

    upgrade_schema(engine)

    assert current_revision(engine) == head_revision()
    assert _kb_names(engine) == ["旧知识库"]
    assert schema_differences(engine) == []


def test_pre_migration_database_gets_the_tables_it_lacks(engine: Engine) -> None:
    conversation_tables = {ConversationRow.__tablename__, MessageRow.__tablename__}
    older_tables = [
        target_metadata.tables[name]
        for name in PRE_MIGRATION_TABLES
        if name not in conversation_tables
    ]
    target_metadata.create_all(engine, tables=older_tables)
    _add_kb(engine, "kb")

    upgrade_schema(engine)

    assert conversation_tables <= set(inspect(engine).get_table_names())
    assert _kb_names(engine) == ["kb"]
    assert schema_differences(engine) == []


def test_database_downgraded_to_base_is_upgraded_again(engine: Engine) -> None:
    upgrade_schema(engine)
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert current_revision(engine) is None

    upgrade_schema(engine)

    assert current_revision(engine) == head_revision()
    assert schema_differences(engine) == []


def test_database_from_a_newer_release_is_refused(engine: Engine) -> None:
    upgrade_schema(engine)
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = 'f00dfeed'"))

    with pytest.raises(SchemaTooNewError) as raised:
        upgrade_schema(engine)

    assert raised.value.revision == "f00dfeed"
    assert "f00dfeed" in str(raised.value)
    assert isinstance(raised.value, RuntimeError)


def test_drop_tables_also_forgets_the_revision(db_url: str) -> None:
    database = Database(db_url)
    try:
        database.create_tables()
        _add_kb(database.engine, "kb")
        database.drop_tables()
        assert inspect(database.engine).get_table_names() == []

        database.create_tables()

        assert current_revision(database.engine) == head_revision()
        assert _kb_names(database.engine) == []
    finally:
        database.dispose()
