"""Knowledge-base chat with the extractive answerer: retrieval, events, sources, errors."""

from __future__ import annotations

import pytest

from kb_server.chat.service import (
    AnswerDelta,
    ChatService,
    DocsEvent,
    KbChatRequest,
    LlmChatRequest,
    collect,
)
from kb_server.errors import InvalidInputError, UnknownModelError
from kb_server.knowledge.service import KnowledgeBaseService

pytestmark = pytest.mark.both_backends

REFUNDS = "Refunds are paid within fourteen days of the return. Returns need the receipt."
HOURS = "The warehouse opens at nine in the morning. Deliveries arrive by truck."
ORBIT = "A rocket reaches orbit by burning fuel in stages."


@pytest.fixture
def chat(service: KnowledgeBaseService) -> ChatService:
    for kb, files in {
        "shop": {"refunds.txt": REFUNDS, "hours.txt": HOURS},
        "space": {"orbit.txt": ORBIT},
    }.items():
        service.create_kb(kb)
        for name, text in files.items():
            service.save_file(kb, name, text.encode(), override=False)
        service.add_files(kb, list(files))
    return ChatService(service.settings, service, llm_clients={})


def test_extractive_answer_streams_then_sources_last(chat: ChatService) -> None:
    stream = chat.kb_chat(
        KbChatRequest(query="How long do refunds take?", kb_names=["shop"], top_k=2)
    )
    events = list(stream.events)
    assert isinstance(events[-1], DocsEvent)
    assert all(isinstance(event, AnswerDelta) for event in events[:-1])
    answer = "".join(e.text for e in events if isinstance(e, AnswerDelta))
    assert "Refunds are paid within fourteen days of the return. [1]" in answer
    docs = events[-1].docs
    assert docs[0].file_name == "refunds.txt"
    assert docs[0].number == 1
    assert docs[0].chunk_id > 0


def test_nothing_above_the_threshold_says_so_instead_of_answering(chat: ChatService) -> None:
    result = collect(
        chat.kb_chat(KbChatRequest(query="refunds", kb_names=["shop"], score_threshold=0.999))
    )
    assert result.docs == []
    assert result.answer == chat.templates.kb(None).no_docs
    assert result.error is None


def test_several_kbs_are_merged_by_score(chat: ChatService) -> None:
    docs = chat.retrieve(["shop", "space"], "How does a rocket reach orbit?", 3, None)
    assert docs[0].kb_name == "space"
    assert [d.score for d in docs] == sorted((d.score for d in docs), reverse=True)
    assert [d.number for d in docs] == [1, 2, 3]


def test_unknown_model_and_empty_question_fail_before_streaming(chat: ChatService) -> None:
    with pytest.raises(UnknownModelError):
        chat.kb_chat(
            KbChatRequest(query="refunds", kb_names=["shop"], model_name="gpt-nonexistent")
        )
    with pytest.raises(InvalidInputError):
        chat.kb_chat(KbChatRequest(query="   ", kb_names=["shop"]))


def test_extractive_cannot_do_plain_llm_chat(chat: ChatService) -> None:
    with pytest.raises(InvalidInputError):
        chat.llm_chat(LlmChatRequest(query="hello", model_name="extractive"))
