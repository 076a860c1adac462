"""Stored conversations: create, list, rename, delete; their messages and answer feedback."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from kb_server.api.container import Container
from kb_server.api.schemas.conversations import (
    AddMessageBody,
    ConversationOut,
    CreateConversationBody,
    DeletedConversation,
    FeedbackBody,
    MessageOut,
    RenameConversationBody,
)
from kb_server.chat.conversations import ConversationService

router = APIRouter(prefix="/conversations", tags=["conversations"])


def get_conversations(request: Request) -> ConversationService:
    """The app's ConversationService, made on first use over the metadata database."""
    state = request.app.state
    service: ConversationService | None = getattr(state, "conversations", None)
    if service is None:
        # Two requests racing here each make one over the same Database: harmless.
        container: Container = state.container
        service = ConversationService(container.kb_service.db)
        state.conversations = service
    return service


ConversationsDep = Annotated[ConversationService, Depends(get_conversations)]
# Message ids are 64-bit database rows: a larger number would overflow the driver, not miss.
MessageId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.post("")
def create_conversation(
    service: ConversationsDep, body: CreateConversationBody | None = None
) -> ConversationOut:
    name = body.name if body is not None else None
    return ConversationOut.of(service.create(name))


@router.get("")
def list_conversations(service: ConversationsDep) -> list[ConversationOut]:
    return [ConversationOut.of(info) for info in service.list_all()]


@router.patch("/{conversation_id}")
def rename_conversation(
    conversation_id: str, body: RenameConversationBody, service: ConversationsDep
) -> ConversationOut:
    return ConversationOut.of(service.rename(conversation_id, body.name))


@router.delete("/{conversation_id}")
def delete_conversation(conversation_id: str, service: ConversationsDep) -> DeletedConversation:
    service.delete(conversation_id)
    return DeletedConversation(deleted=conversation_id)


@router.get("/{conversation_id}/messages")
def list_messages(conversation_id: str, service: ConversationsDep) -> list[MessageOut]:
    return [MessageOut.of(info) for info in service.messages(conversation_id)]


@router.post("/{conversation_id}/messages")
def add_message(
    conversation_id: str, body: AddMessageBody, service: ConversationsDep
) -> MessageOut:
    message = service.add_message(
        conversation_id, body.role, body.content, docs=body.docs, model=body.model
    )
    return MessageOut.of(message)


@router.post("/{conversation_id}/messages/{message_id}/feedback")
def give_feedback(
    conversation_id: str, message_id: MessageId, body: FeedbackBody, service: ConversationsDep
) -> MessageOut:
    message = service.set_feedback(conversation_id, message_id, body.score, body.reason)
    return MessageOut.of(message)
