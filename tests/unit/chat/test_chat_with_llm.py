"""Chat through a real LLM: the tiny Qwen2 served by our worker, and an LLM that is down."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest

from kb_server.chat.prompts import (
    ExtractivePrompt,
    KbChatPrompt,
    LlmChatPrompt,
    PromptTemplates,
    QueryRewritePrompt,
)
from kb_server.chat.service import (
    AnswerDelta,
    ChatService,
    DocsEvent,
    ErrorEvent,
    KbChatRequest,
    LlmChatRequest,
)
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.llm.registry import build_llm_clients
from kb_server.settings import load_settings
from tests.conftest import TINY_QWEN_MODEL_NAME

# Short prompts: the tiny model's window is 1024 tokens of a 1,187-token vocabulary.
TEMPLATES = PromptTemplates(
    llm_chat={"default": LlmChatPrompt(system="你是助手。")},
    kb_chat={
        "default": KbChatPrompt(
            system="根据参考资料回答。",
            user="{context}\n问题：{question}",
            no_docs="没有找到。",
            strict_system="只根据参考资料回答。",
            strict_refusal="无法回答。",
        )
    },
    query_rewrite=QueryRewritePrompt(system="改写问题。", user="{history}\n问题：{question}"),
    extractive=ExtractivePrompt(header="摘录："),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def chat(service: KnowledgeBaseService, llm_worker: str, tiny_qwen_dir: Path) -> ChatService:
    service.create_kb("shop")
    service.save_file("shop", "refunds.txt", b"Refunds are paid within 14 days.", override=False)
    service.add_files("shop", ["refunds.txt"])
    settings = load_settings(
        kb_root=service.settings.kb_root,
        local_models={
            TINY_QWEN_MODEL_NAME: {"path": tiny_qwen_dir, "port": urlparse(llm_worker).port}
        },
        llm_models={"down": {"base_url": f"http://127.0.0.1:{free_port()}/v1"}},
        llm={"max_retries": 0},
    )
    return ChatService(
        settings, service, llm_clients=build_llm_clients(settings), templates=TEMPLATES
    )


def test_kb_chat_streams_the_model_answer_then_the_sources(chat: ChatService) -> None:
    request = KbChatRequest(
        query="How long do refunds take?",
        kb_names=["shop"],
        model_name=TINY_QWEN_MODEL_NAME,
        temperature=0.0,
        max_tokens=8,
        seed=1,
    )
    events = list(chat.kb_chat(request).events)
    deltas = [e for e in events if isinstance(e, AnswerDelta)]
    assert deltas
    assert not [e for e in events if isinstance(e, ErrorEvent)]
    assert isinstance(events[-1], DocsEvent)
    assert events[-1].docs[0].file_name == "refunds.txt"


def test_plain_chat_streams_from_the_model(chat: ChatService) -> None:
    request = LlmChatRequest(
        query="你好", model_name=TINY_QWEN_MODEL_NAME, temperature=0.0, max_tokens=5
    )
    events = list(chat.llm_chat(request).events)
    assert any(isinstance(e, AnswerDelta) for e in events)
    assert events[-1] == DocsEvent([])


def test_an_unreachable_llm_gives_an_error_event_and_still_the_sources(chat: ChatService) -> None:
    events = list(
        chat.kb_chat(KbChatRequest(query="refunds?", kb_names=["shop"], model_name="down")).events
    )
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert len(errors) == 1
    assert errors[0].code == "llm_unavailable"
    assert errors[0].http_status == 503
    assert isinstance(events[-1], DocsEvent)
    assert events[-1].docs[0].file_name == "refunds.txt"
