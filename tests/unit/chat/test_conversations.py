"""ConversationService on a real SQLite file: ordering, messages, feedback, deletion."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from kb_server.chat.conversations import (
    DEFAULT_CONVERSATION_NAME,
    ConversationNotFoundError,
    ConversationService,
    MessageNotFoundError,
)
from kb_server.db.engine import Database
from kb_server.errors import InvalidInputError

START = datetime(2026, 1, 1, 8, 0, tzinfo=timezone.utc)


class StepClock:
    """A clock one second later on every reading."""

    def __init__(self) -> None:
        self.current = START

    def __call__(self) -> datetime:
        self.current += timedelta(seconds=1)
        return self.current


@pytest.fixture
def database(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'info.db'}")


@pytest.fixture
def service(database: Database) -> ConversationService:
    return ConversationService(database, now=StepClock())


def test_a_new_conversation_has_the_default_name_and_no_messages(
    service: ConversationService,
) -> None:
    info = service.create()
    assert info.name == DEFAULT_CONVERSATION_NAME
    assert info.message_count == 0
    assert len(info.id) == 32
    assert info.created_at == info.updated_at
    assert info.created_at.tzinfo is not None


def test_listing_puts_the_latest_updated_first(service: ConversationService) -> None:
    first = service.create("first")
    second = service.create("second")
    assert [info.id for info in service.list_all()] == [second.id, first.id]
    service.add_message(first.id, "user", "hello")
    listed = service.list_all()
    assert [info.id for info in listed] == [first.id, second.id]
    assert [info.message_count for info in listed] == [1, 0]


def test_messages_keep_their_order_docs_and_model(service: ConversationService) -> None:
    conversation = service.create()
    docs = [{"number": 1, "source": "退款.txt", "text": "十四天内退款"}]
    question = service.add_message(conversation.id, "user", "多久退款？")
    answer = service.add_message(
        conversation.id, "assistant", "十四天 [1]", docs=docs, model="extractive"
    )
    messages = service.messages(conversation.id)
    assert [m.id for m in messages] == [question.id, answer.id]
    assert messages[1].docs == docs
    assert messages[1].model == "extractive"
    assert messages[0].docs == []
    assert messages[0].model is None


def test_feedback_is_set_replaced_and_cleared(service: ConversationService) -> None:
    conversation = service.create()
    answer = service.add_message(conversation.id, "assistant", "answer")
    assert service.set_feedback(conversation.id, answer.id, 1, "clear").feedback == 1
    changed = service.set_feedback(conversation.id, answer.id, -1, "wrong source")
    assert (changed.feedback, changed.feedback_reason) == (-1, "wrong source")
    cleared = service.set_feedback(conversation.id, answer.id, 0, "ignored")
    assert (cleared.feedback, cleared.feedback_reason) == (None, None)
    assert service.messages(conversation.id)[0].feedback is None


def test_feedback_on_a_user_message_is_refused(service: ConversationService) -> None:
    conversation = service.create()
    question = service.add_message(conversation.id, "user", "question")
    with pytest.raises(InvalidInputError):
        service.set_feedback(conversation.id, question.id, 1)


def test_a_message_of_another_conversation_is_not_found(service: ConversationService) -> None:
    one, other = service.create(), service.create()
    answer = service.add_message(one.id, "assistant", "answer")
    with pytest.raises(MessageNotFoundError):
        service.set_feedback(other.id, answer.id, 1)


def test_a_blank_name_is_refused(service: ConversationService) -> None:
    conversation = service.create()
    with pytest.raises(InvalidInputError):
        service.rename(conversation.id, "   ")
    assert service.rename(conversation.id, " 退货问题 ").name == "退货问题"


def test_deleting_removes_the_conversation_and_its_messages(
    service: ConversationService, database: Database
) -> None:
    conversation = service.create()
    service.add_message(conversation.id, "user", "question")
    service.delete(conversation.id)
    with pytest.raises(ConversationNotFoundError):
        service.messages(conversation.id)
    with pytest.raises(ConversationNotFoundError):
        service.delete(conversation.id)
    reopened = ConversationService(database)
    assert reopened.list_all() == []


def test_conversations_survive_a_new_service_over_the_same_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'info.db'}"
    conversation = ConversationService(Database(url)).create("kept")
    ConversationService(Database(url)).add_message(conversation.id, "user", "still here")
    reopened = ConversationService(Database(url))
    assert [info.name for info in reopened.list_all()] == ["kept"]
    assert [m.content for m in reopened.messages(conversation.id)] == ["still here"]
