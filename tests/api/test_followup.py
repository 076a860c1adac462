"""Follow-up questions over HTTP: the rewritten query is what is searched and is returned
with the answer (KB chat, its stream, /v1 chat completions, file chat)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from kb_server.api.app import create_app
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.settings import Settings
from tests.api.test_chat_routes import sse_events
from tests.conftest import TINY_QWEN_MODEL_NAME

# Every product has a price: "它的价格呢？" alone matches all of them equally.
FILES = {
    "phone.txt": "星辰X1手机的价格是两千九百九十九元，屏幕为六点七英寸。",
    "router.txt": "青云路由器的价格是三百九十九元，支持双频无线网络。",
    "purifier.txt": "青松空气净化器的价格是一千二百元，滤网每六个月更换一次。",
}
HISTORY = [
    {"role": "user", "content": "星辰X1手机的屏幕多大？"},
    {"role": "assistant", "content": "六点七英寸 [1]"},
]
FOLLOW_UP = "它的价格呢？"
STANDALONE = "星辰X1手机的价格是多少？"
# The heuristic's rewrite: the nouns of the last user turn in place of the pronoun.
REWRITTEN = "星辰X1手机 屏幕的价格呢？"
CHAT: dict[str, Any] = {
    "knowledge_base_name": "shop",
    "model_name": "extractive",
    "top_k": 3,
    "rerank": False,
}


def add_shop(service: KnowledgeBaseService) -> None:
    service.create_kb("shop")
    for name, text in FILES.items():
        service.save_file("shop", name, text.encode(), override=False)
    service.add_files("shop", list(FILES))


@pytest.fixture
def shop(app: FastAPI, client: TestClient) -> TestClient:
    add_shop(app.state.container.kb_service)
    return client


def chat(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/knowledge_base/chat", json={**CHAT, **body})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


@pytest.mark.parametrize("search_mode", ["bm25", "hybrid"])
def test_a_followup_that_names_nothing_retrieves_what_its_standalone_form_does(
    shop: TestClient, search_mode: str
) -> None:
    standalone = chat(shop, query=STANDALONE, search_mode=search_mode)
    follow_up = chat(shop, query=FOLLOW_UP, history=HISTORY, search_mode=search_mode)
    assert standalone["docs"][0]["source"] == "phone.txt"
    assert follow_up["docs"][0]["chunk_id"] == standalone["docs"][0]["chunk_id"]
    assert follow_up["search_query"] == REWRITTEN
    assert follow_up["query_rewrite"] == "heuristic"
    assert "两千九百九十九元" in follow_up["answer"]


def test_without_history_the_question_is_searched_as_asked(shop: TestClient) -> None:
    alone = chat(shop, query=FOLLOW_UP, search_mode="bm25")
    assert (alone["search_query"], alone["query_rewrite"]) == (FOLLOW_UP, "none")
    # It names nothing: every product's price matches it.
    assert {doc["source"] for doc in alone["docs"]} == set(FILES)


def test_with_rewriting_off_a_followup_is_searched_as_asked(api_settings: Settings) -> None:
    settings = api_settings.model_copy(
        update={"chat": api_settings.chat.model_copy(update={"query_rewrite": "off"})}
    )
    app = create_app(settings)
    add_shop(app.state.container.kb_service)
    with TestClient(app) as client:
        answer = chat(client, query=FOLLOW_UP, history=HISTORY)
    assert (answer["search_query"], answer["query_rewrite"]) == (FOLLOW_UP, "none")


def test_the_stream_reports_the_search_query_with_the_docs(shop: TestClient) -> None:
    body = {**CHAT, "query": FOLLOW_UP, "history": HISTORY, "stream": True}
    with shop.stream("POST", "/knowledge_base/chat", json=body) as response:
        assert response.status_code == 200
        events = sse_events(response.read().decode())
    last = events[-1]
    assert last["search_query"] == REWRITTEN
    assert last["query_rewrite"] == "heuristic"
    assert last["docs"][0]["source"] == "phone.txt"
    assert all("answer" in event for event in events[:-1])


def test_openai_completions_return_the_search_query_beside_the_docs(shop: TestClient) -> None:
    messages = [*HISTORY, {"role": "user", "content": FOLLOW_UP}]
    body = {"model": "kb/shop", "llm_model": "extractive", "messages": messages, "rerank": False}
    completion = shop.post("/v1/chat/completions", json=body).json()
    assert completion["search_query"] == REWRITTEN
    assert completion["docs"][0]["source"] == "phone.txt"
    with shop.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as response:
        events = sse_events(response.read().decode().replace("data: [DONE]", ""))
    assert events[-1]["search_query"] == REWRITTEN
    assert events[-1]["docs"][0]["source"] == "phone.txt"


def test_file_chat_rewrites_followups_too(client: TestClient) -> None:
    files = [("files", (name, text.encode(), "text/plain")) for name, text in FILES.items()]
    uploaded = client.post("/knowledge_base/upload_temp_docs", files=files).json()["data"]
    body = {
        "knowledge_id": uploaded["id"],
        "query": FOLLOW_UP,
        "history": HISTORY,
        "model_name": "extractive",
        "rerank": False,
    }
    answer = client.post("/chat/file_chat", json=body).json()
    assert answer["search_query"] == REWRITTEN
    assert answer["docs"][0]["source"] == "phone.txt"


def test_an_llm_rewrite_is_what_is_searched(api_settings: Settings) -> None:
    # Sampled at this seed the tiny model writes one line, which is searched as it is.
    chat_settings = api_settings.chat.model_copy(
        update={"rewrite_temperature": 0.7, "rewrite_max_tokens": 8}
    )
    app = create_app(api_settings.model_copy(update={"chat": chat_settings}))
    service = app.state.container.kb_service
    add_shop(service)
    service.save_file(
        "shop", "notes.txt", "检索会找出最接近问题的纯文本段落。".encode(), override=False
    )
    service.add_files("shop", ["notes.txt"])
    tiny = {"model_name": TINY_QWEN_MODEL_NAME, "max_tokens": 4, "seed": 2}
    with TestClient(app) as client:
        answer = chat(client, query=FOLLOW_UP, history=HISTORY, search_mode="bm25", **tiny)
        assert answer["query_rewrite"] == "llm"
        searched = client.post(
            "/knowledge_base/search_docs",
            json={
                "knowledge_base_name": "shop",
                "query": answer["search_query"],
                "top_k": 3,
                "search_mode": "bm25",
                "rerank": False,
            },
        ).json()
    assert answer["search_query"] not in (FOLLOW_UP, REWRITTEN)
    assert [doc["chunk_id"] for doc in answer["docs"]] == [hit["id"] for hit in searched]
    # The words it wrote match the note, which no rewrite naming the phone would find first.
    assert answer["docs"][0]["source"] == "notes.txt"


def test_unusable_llm_output_falls_back_to_the_heuristic(shop: TestClient) -> None:
    # Greedy (the default), the tiny model writes only newlines.
    tiny = {"model_name": TINY_QWEN_MODEL_NAME, "max_tokens": 4, "seed": 2}
    answer = chat(shop, query=FOLLOW_UP, history=HISTORY, search_mode="bm25", **tiny)
    assert (answer["search_query"], answer["query_rewrite"]) == (
        REWRITTEN,
        "heuristic",
    )
    assert answer["docs"][0]["source"] == "phone.txt"
