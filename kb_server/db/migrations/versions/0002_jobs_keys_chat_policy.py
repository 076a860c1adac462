"""Ingestion jobs (with their files and events), API keys with per-KB grants, and each KB's
chat policy (strict mode).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite only aliases rowid (and so only autoincrements) for the exact type INTEGER.
BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _foreign_id(name: str, target: str, type_: sa.types.TypeEngine[Any]) -> sa.Column[Any]:
    return sa.Column(name, type_, sa.ForeignKey(target, ondelete="CASCADE"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "ingest_job",
        sa.Column("id", sa.String(32), primary_key=True),
        _foreign_id("kb_id", "knowledge_base.id", BigIntId),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("worker", sa.String(128), nullable=False),
        _timestamp("heartbeat_at", nullable=True),
        _timestamp("created_at"),
        _timestamp("started_at", nullable=True),
        _timestamp("finished_at", nullable=True),
    )
    op.create_index("ix_ingest_job_status", "ingest_job", ["status"])
    op.create_table(
        "ingest_job_file",
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        _foreign_id("job_id", "ingest_job.id", sa.String(32)),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.String(512), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        _timestamp("updated_at"),
    )
    op.create_index("ix_ingest_job_file_job", "ingest_job_file", ["job_id", "seq"])
    op.create_table(
        "ingest_job_event",
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        _foreign_id("job_id", "ingest_job.id", sa.String(32)),
        sa.Column("file_name", sa.String(512), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        _timestamp("created_at"),
    )
    op.create_index("ix_ingest_job_event_job", "ingest_job_event", ["job_id", "id"])
    op.create_table(
        "api_key",
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("key_prefix", sa.String(16), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        _timestamp("created_at"),
        _timestamp("revoked_at", nullable=True),
    )
    op.create_table(
        "api_key_grant",
        sa.Column(
            "key_id",
            BigIntId,
            sa.ForeignKey("api_key.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("kb_name", sa.String(64), primary_key=True),
        sa.Column("access", sa.String(16), nullable=False),
    )
    op.create_table(
        "kb_chat_policy",
        sa.Column(
            "kb_id",
            BigIntId,
            sa.ForeignKey("knowledge_base.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("strict", sa.Boolean(), nullable=False),
        sa.Column("strict_min_score", sa.Float(), nullable=True),
        sa.Column("refusal", sa.Text(), nullable=True),
        _timestamp("updated_at"),
    )


def downgrade() -> None:
    for table_name in (
        "kb_chat_policy",
        "api_key_grant",
        "api_key",
        "ingest_job_event",
        "ingest_job_file",
        "ingest_job",
    ):
        op.drop_table(table_name)
