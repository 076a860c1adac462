"""Tables of ingestion jobs: a job, each of its files with its current stage, and the events
that led there (what a job's event stream replays).

State lives here, not in the API process, so a job survives a restart: a job left ``running``
by a process that is gone is picked up again from its files that are not stored yet.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kb_server.db.models import Base, BigIntId, utc_now


class IngestJobRow(Base):
    __tablename__ = "ingest_job"
    __table_args__ = (Index("ix_ingest_job_status", "status"),)

    # A uuid4 hex string, as conversation ids: not a guessable counter.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kb_id: Mapped[int] = mapped_column(ForeignKey("knowledge_base.id", ondelete="CASCADE"))
    # upload, update or rebuild.
    kind: Mapped[str] = mapped_column(String(16))
    # queued, running, succeeded, failed, cancelled.
    status: Mapped[str] = mapped_column(String(16))
    # What the job was asked (splitter settings, force, ...), to run it again after a restart.
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # The process running the job ("host:pid") and when it last showed it is alive.
    worker: Mapped[str] = mapped_column(String(128), default="")
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    files: Mapped[list[IngestJobFileRow]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="IngestJobFileRow.seq"
    )


class IngestJobFileRow(Base):
    __tablename__ = "ingest_job_file"
    __table_args__ = (Index("ix_ingest_job_file_job", "job_id", "seq"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("ingest_job.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    file_name: Mapped[str] = mapped_column(String(512))
    # queued, loading, ocr, splitting, embedding, stored, unchanged, failed, cancelled.
    stage: Mapped[str] = mapped_column(String(16))
    # For people: "OCR page 2/5", the failure's reason, ...
    detail: Mapped[str] = mapped_column(Text, default="")
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class IngestJobEventRow(Base):
    __tablename__ = "ingest_job_event"
    __table_args__ = (Index("ix_ingest_job_event_job", "job_id", "id"),)

    # Increasing: an event stream resumes after the last id it sent (SSE's Last-Event-ID).
    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("ingest_job.id", ondelete="CASCADE"))
    file_name: Mapped[str] = mapped_column(String(512), default="")
    stage: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
