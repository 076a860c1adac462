"""Initial schema: knowledge bases, files, chunks, conversations and messages.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Databases made before migrations existed already hold some of these tables (the conversation
tables came later than the others). This revision creates only the tables that are missing, so
upgrading such a database from base adopts it; kb_server.db.schema relies on that.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import context, op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite only aliases rowid (and so only autoincrements) for the exact type INTEGER.
BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _missing(table_name: str) -> bool:
    if context.is_offline_mode():
        return True
    return not sa.inspect(op.get_bind()).has_table(table_name)


def _timestamp(name: str) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def _create_knowledge_base() -> None:
    op.create_table(
        "knowledge_base",
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("vs_type", sa.String(32), nullable=False),
        sa.Column("embed_model", sa.String(256), nullable=False),
        sa.Column("embed_dimension", sa.Integer(), nullable=False),
        sa.Column("chunk_size", sa.Integer(), nullable=False),
        sa.Column("chunk_overlap", sa.Integer(), nullable=False),
        sa.Column("zh_title_enhance", sa.Boolean(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
    )


def _create_knowledge_file() -> None:
    op.create_table(
        "knowledge_file",
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        sa.Column(
            "kb_id",
            BigIntId,
            sa.ForeignKey("knowledge_base.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("file_name", sa.String(512), nullable=False),
        sa.Column("ext", sa.String(16), nullable=False),
        sa.Column("loader", sa.String(32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime", sa.Float(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("chunk_size", sa.Integer(), nullable=False),
        sa.Column("chunk_overlap", sa.Integer(), nullable=False),
        sa.Column("zh_title_enhance", sa.Boolean(), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.UniqueConstraint("kb_id", "file_name", name="uq_file_per_kb"),
    )


def _create_chunk() -> None:
    op.create_table(
        "chunk",
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        sa.Column(
            "kb_id",
            BigIntId,
            sa.ForeignKey("knowledge_base.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "file_id",
            BigIntId,
            sa.ForeignKey("knowledge_file.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        # A deleted chunk's id (= its vector id) is never handed out again on SQLite.
        sqlite_autoincrement=True,
    )
    op.create_index("ix_chunk_kb", "chunk", ["kb_id"])
    op.create_index("ix_chunk_file", "chunk", ["file_id", "seq"])


def _create_conversation() -> None:
    op.create_table(
        "conversation",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
    )


def _create_message() -> None:
    op.create_table(
        "message",
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        sa.Column(
            "conversation_id",
            sa.String(32),
            sa.ForeignKey("conversation.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("docs", sa.JSON(), nullable=False),
        sa.Column("model", sa.String(256), nullable=True),
        sa.Column("feedback", sa.Integer(), nullable=True),
        sa.Column("feedback_reason", sa.Text(), nullable=True),
        _timestamp("created_at"),
    )
    op.create_index("ix_message_conversation", "message", ["conversation_id", "id"])


# In dependency order: a table comes after the tables its foreign keys point at.
TABLES = (
    ("knowledge_base", _create_knowledge_base),
    ("knowledge_file", _create_knowledge_file),
    ("chunk", _create_chunk),
    ("conversation", _create_conversation),
    ("message", _create_message),
)


def upgrade() -> None:
    for table_name, create in TABLES:
        if _missing(table_name):
            create()


def downgrade() -> None:
    for table_name, _create in reversed(TABLES):
        op.drop_table(table_name)
