"""Tables of stored chat conversations and their messages (with the user's feedback).

They share ``Base`` with the knowledge-base tables, so ``Database.create_tables()`` makes them
once this module has been imported.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kb_server.db.models import Base, BigIntId, utc_now


def as_utc(value: datetime) -> datetime:
    """A timestamp read back from the database, in UTC (SQLite drops the zone it was written
    with)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


class ConversationRow(Base):
    __tablename__ = "conversation"

    # A uuid4 hex string: ids handed to browsers should not be guessable counters.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    messages: Mapped[list[MessageRow]] = relationship(
        back_populates="conversation",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="MessageRow.id",
    )


class MessageRow(Base):
    __tablename__ = "message"
    __table_args__ = (Index("ix_message_conversation", "conversation_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversation.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    # The structured sources shown under an answer, as the chat routes returned them.
    docs: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    model: Mapped[str | None] = mapped_column(String(256), nullable=True)
    # 1 (helpful), -1 (not helpful) or None (no feedback).
    feedback: Mapped[int | None] = mapped_column(Integer, nullable=True)
    feedback_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    conversation: Mapped[ConversationRow] = relationship(back_populates="messages")
