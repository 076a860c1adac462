"""ConversationService: stored conversations, their messages and feedback on answers.

They live in the metadata database next to the knowledge bases, so they survive a restart.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kb_server.db.conversations import ConversationRow, MessageRow, as_utc
from kb_server.db.engine import Database
from kb_server.db.models import utc_now
from kb_server.errors import InvalidInputError, KbError

DEFAULT_CONVERSATION_NAME = "新对话"
CONVERSATION_NAME_MAX_CHARS = 256

Role = Literal["user", "assistant"]
ROLES: tuple[Role, ...] = ("user", "assistant")


class ConversationNotFoundError(KbError):
    code = "conversation_not_found"
    http_status = 404

    def __init__(self, conversation_id: str) -> None:
        super().__init__(f"conversation {conversation_id!r} does not exist")
        self.conversation_id = conversation_id


class MessageNotFoundError(KbError):
    code = "message_not_found"
    http_status = 404

    def __init__(self, conversation_id: str, message_id: int) -> None:
        super().__init__(f"message {message_id} is not in conversation {conversation_id!r}")
        self.message_id = message_id


@dataclass(frozen=True)
class ConversationInfo:
    id: str
    name: str
    created_at: datetime
    updated_at: datetime
    message_count: int


@dataclass(frozen=True)
class MessageInfo:
    id: int
    conversation_id: str
    role: Role
    content: str
    docs: list[dict[str, Any]]
    model: str | None
    feedback: int | None
    feedback_reason: str | None
    created_at: datetime


def _message_info(row: MessageRow) -> MessageInfo:
    role: Role = "assistant" if row.role == "assistant" else "user"
    return MessageInfo(
        id=row.id,
        conversation_id=row.conversation_id,
        role=role,
        content=row.content,
        docs=list(row.docs or []),
        model=row.model,
        feedback=row.feedback,
        feedback_reason=row.feedback_reason,
        created_at=as_utc(row.created_at),
    )


def _checked_name(name: str) -> str:
    stripped = name.strip()
    if not stripped:
        raise InvalidInputError("a conversation's name cannot be empty")
    if len(stripped) > CONVERSATION_NAME_MAX_CHARS:
        raise InvalidInputError(
            f"a conversation's name is longer than {CONVERSATION_NAME_MAX_CHARS} characters"
        )
    return stripped


class ConversationService:
    def __init__(self, db: Database, *, now: Callable[[], datetime] = utc_now) -> None:
        self.db = db
        self.now = now
        # Idempotent; the tables of kb_server.db.conversations are registered by the import.
        db.create_tables()

    def _row(self, session: Session, conversation_id: str) -> ConversationRow:
        row = session.get(ConversationRow, conversation_id)
        if row is None:
            raise ConversationNotFoundError(conversation_id)
        return row

    def _infos(self, session: Session, rows: Sequence[ConversationRow]) -> list[ConversationInfo]:
        ids = [row.id for row in rows]
        counts: dict[str, int] = {
            conversation_id: count
            for conversation_id, count in session.execute(
                select(MessageRow.conversation_id, func.count())
                .where(MessageRow.conversation_id.in_(ids))
                .group_by(MessageRow.conversation_id)
            )
        }
        return [
            ConversationInfo(
                id=row.id,
                name=row.name,
                created_at=as_utc(row.created_at),
                updated_at=as_utc(row.updated_at),
                message_count=counts.get(row.id, 0),
            )
            for row in rows
        ]

    # -- conversations -----------------------------------------------------------------------

    def create(self, name: str | None = None) -> ConversationInfo:
        checked = DEFAULT_CONVERSATION_NAME if name is None else _checked_name(name)
        now = self.now()
        row = ConversationRow(id=uuid.uuid4().hex, name=checked, created_at=now, updated_at=now)
        with self.db.transaction() as session:
            session.add(row)
        return self.get(row.id)

    def get(self, conversation_id: str) -> ConversationInfo:
        with self.db.session() as session:
            return self._infos(session, [self._row(session, conversation_id)])[0]

    def list_all(self) -> list[ConversationInfo]:
        """Most recently updated first."""
        with self.db.session() as session:
            rows = session.scalars(
                select(ConversationRow).order_by(
                    ConversationRow.updated_at.desc(), ConversationRow.created_at.desc()
                )
            ).all()
            return self._infos(session, rows)

    def rename(self, conversation_id: str, name: str) -> ConversationInfo:
        checked = _checked_name(name)
        with self.db.transaction() as session:
            row = self._row(session, conversation_id)
            row.name = checked
            row.updated_at = self.now()
        return self.get(conversation_id)

    def delete(self, conversation_id: str) -> None:
        with self.db.transaction() as session:
            session.delete(self._row(session, conversation_id))

    # -- messages ----------------------------------------------------------------------------

    def messages(self, conversation_id: str) -> list[MessageInfo]:
        with self.db.session() as session:
            self._row(session, conversation_id)
            rows = session.scalars(
                select(MessageRow)
                .where(MessageRow.conversation_id == conversation_id)
                .order_by(MessageRow.id)
            ).all()
            return [_message_info(row) for row in rows]

    def add_message(
        self,
        conversation_id: str,
        role: Role,
        content: str,
        *,
        docs: Sequence[dict[str, Any]] = (),
        model: str | None = None,
    ) -> MessageInfo:
        if role not in ROLES:
            raise InvalidInputError(f"a message's role is one of {list(ROLES)}, not {role!r}")
        now = self.now()
        with self.db.transaction() as session:
            conversation = self._row(session, conversation_id)
            row = MessageRow(
                conversation_id=conversation_id,
                role=role,
                content=content,
                docs=list(docs),
                model=model,
                created_at=now,
            )
            session.add(row)
            conversation.updated_at = now
            session.flush()
            return _message_info(row)

    def set_feedback(
        self, conversation_id: str, message_id: int, score: int, reason: str | None = None
    ) -> MessageInfo:
        """Score 1 or -1 records feedback on an answer; 0 clears it (and its reason)."""
        if score not in (1, -1, 0):
            raise InvalidInputError(f"feedback is 1, -1 or 0 (to clear it), not {score}")
        with self.db.transaction() as session:
            self._row(session, conversation_id)
            row = session.get(MessageRow, message_id)
            if row is None or row.conversation_id != conversation_id:
                raise MessageNotFoundError(conversation_id, message_id)
            if row.role != "assistant":
                raise InvalidInputError("feedback is given on assistant messages only")
            row.feedback = score or None
            row.feedback_reason = (reason or None) if score else None
            session.flush()
            return _message_info(row)
