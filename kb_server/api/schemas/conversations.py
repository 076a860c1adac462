"""Bodies and answers of the conversation routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kb_server.chat.conversations import (
    CONVERSATION_NAME_MAX_CHARS,
    ConversationInfo,
    MessageInfo,
    Role,
)


class CreateConversationBody(BaseModel):
    name: str | None = Field(
        None, max_length=CONVERSATION_NAME_MAX_CHARS, description="Default: 新对话"
    )


class RenameConversationBody(BaseModel):
    name: str = Field(min_length=1, max_length=CONVERSATION_NAME_MAX_CHARS)


class ConversationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    created_at: datetime
    updated_at: datetime
    message_count: int

    @classmethod
    def of(cls, info: ConversationInfo) -> ConversationOut:
        return cls.model_validate(info)


class DeletedConversation(BaseModel):
    deleted: str


class AddMessageBody(BaseModel):
    role: Role
    content: str
    docs: list[dict[str, Any]] = Field(
        default_factory=list, description="The sources shown under an answer (the chat docs)."
    )
    model: str | None = Field(None, description="The model that answered.")


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    role: Role
    content: str
    docs: list[dict[str, Any]]
    model: str | None
    feedback: int | None = Field(description="1, -1, or null when none was given.")
    feedback_reason: str | None
    created_at: datetime

    @classmethod
    def of(cls, info: MessageInfo) -> MessageOut:
        return cls.model_validate(info)


class FeedbackBody(BaseModel):
    score: Literal[1, -1, 0] = Field(description="1 helpful, -1 not helpful, 0 clears it.")
    reason: str | None = Field(None, description="Why; cleared with the score.")
