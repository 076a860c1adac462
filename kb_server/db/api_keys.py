"""Tables of API keys: only a key's SHA-256 is stored, with its role and the knowledge bases
it may read or write."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kb_server.db.models import Base, BigIntId, utc_now


class ApiKeyRow(Base):
    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    # A label for people ("team-a-bot"); the key itself is shown once, when made.
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # Keys are long random strings, so a plain SHA-256 (hex) cannot be reversed by guessing.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the key, to tell keys apart in listings.
    key_prefix: Mapped[str] = mapped_column(String(16))
    # admin (every KB and route) or member (the KBs of its grants).
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    grants: Mapped[list[ApiKeyGrantRow]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="ApiKeyGrantRow.kb_name"
    )


class ApiKeyGrantRow(Base):
    __tablename__ = "api_key_grant"

    key_id: Mapped[int] = mapped_column(
        ForeignKey("api_key.id", ondelete="CASCADE"), primary_key=True
    )
    # By name, so a grant can be made before its KB exists and outlives a recreated KB.
    kb_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # reader or writer (a writer also reads).
    access: Mapped[str] = mapped_column(String(16))
