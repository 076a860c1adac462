"""Metadata tables: knowledge bases, their files, and the chunks whose ids are vector ids.

Chunk text and metadata live here, never in a pickled docstore next to the index.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# SQLite only aliases rowid (and so only autoincrements) for the exact type INTEGER.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class KnowledgeBase(Base):
    __tablename__ = "knowledge_base"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    vs_type: Mapped[str] = mapped_column(String(32))
    embed_model: Mapped[str] = mapped_column(String(256))
    # Known without loading the model, so work that embeds nothing never pays for loading it.
    embed_dimension: Mapped[int] = mapped_column(Integer)
    chunk_size: Mapped[int] = mapped_column(Integer)
    chunk_overlap: Mapped[int] = mapped_column(Integer)
    zh_title_enhance: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utc_now, onupdate=utc_now
    )

    files: Mapped[list[KnowledgeFile]] = relationship(
        back_populates="knowledge_base", cascade="all, delete-orphan", passive_deletes=True
    )
    # Per-KB chat defaults (strict mode); the KB-level "strict" flag lives there, not in a
    # column of this table. None: the server's defaults.
    chat_policy: Mapped[KbChatPolicyRow | None] = relationship(
        cascade="all, delete-orphan", passive_deletes=True
    )


class FileStatus:
    INDEXED = "indexed"
    FAILED = "failed"


class KnowledgeFile(Base):
    __tablename__ = "knowledge_file"
    __table_args__ = (UniqueConstraint("kb_id", "file_name", name="uq_file_per_kb"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    kb_id: Mapped[int] = mapped_column(ForeignKey("knowledge_base.id", ondelete="CASCADE"))
    # Relative to the KB's content/ folder, forward slashes.
    file_name: Mapped[str] = mapped_column(String(512))
    ext: Mapped[str] = mapped_column(String(16))
    loader: Mapped[str] = mapped_column(String(32), default="")
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    mtime: Mapped[float] = mapped_column(Float, default=0.0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    chunk_size: Mapped[int] = mapped_column(Integer)
    chunk_overlap: Mapped[int] = mapped_column(Integer)
    zh_title_enhance: Mapped[bool] = mapped_column(Boolean)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default=FileStatus.INDEXED)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utc_now, onupdate=utc_now
    )

    knowledge_base: Mapped[KnowledgeBase] = relationship(back_populates="files")
    chunks: Mapped[list[ChunkRow]] = relationship(
        back_populates="file",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ChunkRow.seq",
    )


class ChunkRow(Base):
    __tablename__ = "chunk"
    # AUTOINCREMENT on SQLite: a deleted chunk's id (= its vector id) is never handed out again,
    # so a stale vector can never point at a newer chunk.
    __table_args__ = (
        Index("ix_chunk_kb", "kb_id"),
        Index("ix_chunk_file", "file_id", "seq"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    kb_id: Mapped[int] = mapped_column(ForeignKey("knowledge_base.id", ondelete="CASCADE"))
    file_id: Mapped[int] = mapped_column(ForeignKey("knowledge_file.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)

    file: Mapped[KnowledgeFile] = relationship(back_populates="chunks")


class KbChatPolicyRow(Base):
    """How chats over one KB answer, when a request does not say (no row: the server's
    defaults)."""

    __tablename__ = "kb_chat_policy"

    kb_id: Mapped[int] = mapped_column(
        ForeignKey("knowledge_base.id", ondelete="CASCADE"), primary_key=True
    )
    # Strict mode: answer only from retrieved text, refuse when nothing passes the threshold.
    strict: Mapped[bool] = mapped_column(Boolean, default=False)
    # The minimum score in strict mode; None: the server's setting.
    strict_min_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The refusal sentence in strict mode; None: the prompt template's.
    refusal: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utc_now, onupdate=utc_now
    )
