"""The chat routes through HTTP: SSE as a client reads it, sources, thresholds, failures."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import anyio
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.requests import ClientDisconnect
from starlette.types import Message

from kb_server.api.app import create_app
from kb_server.api.sse import EventStreamResponse, sse_data
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.settings import LlmEndpointSettings, Settings
from tests.conftest import TINY_QWEN_MODEL_NAME

pytestmark = pytest.mark.both_backends

REFUNDS = "Refunds are paid within fourteen days of the return. Returns need the receipt."
HOURS = "The warehouse opens at nine in the morning. Deliveries arrive by truck."
ORBIT = "A rocket reaches orbit by burning fuel in stages."
REFUNDS_FILE = "退款 政策.txt"
KB_CHAT = "/knowledge_base/chat"
CHATCHAT_KB_CHAT = "/chat/knowledge_base_chat"
TINY: dict[str, Any] = {
    "model_name": TINY_QWEN_MODEL_NAME,
    "temperature": 0.0,
    "seed": 1,
    "max_tokens": 8,
}


def add_kbs(service: KnowledgeBaseService) -> None:
    """ "shop" (refunds, opening hours) and "space" (orbits)."""
    for kb, files in {
        "shop": {REFUNDS_FILE: REFUNDS, "hours.txt": HOURS},
        "space": {"orbit.txt": ORBIT},
    }.items():
        service.create_kb(kb)
        for name, text in files.items():
            service.save_file(kb, name, text.encode(), override=False)
        service.add_files(kb, list(files))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def app_with_llm_down(api_settings: Settings) -> FastAPI:
    """An app with KBs and an LLM "down" configured on a port nothing listens on."""
    endpoint = LlmEndpointSettings(base_url=f"http://127.0.0.1:{free_port()}/v1")
    settings = api_settings.model_copy(update={"llm_models": {"down": endpoint}})
    app = create_app(settings)
    add_kbs(app.state.container.kb_service)
    return app


def sse_events(body: str) -> list[Any]:
    """The JSON of each ``data:`` event, as a client splits the stream."""
    events = []
    for block in body.split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data:"):
                events.append(json.loads(line.removeprefix("data:").strip()))
    return events


def stream_events(client: TestClient, path: str, body: dict[str, Any]) -> list[Any]:
    with client.stream("POST", path, json={**body, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return sse_events(response.read().decode("utf-8"))


@pytest.fixture
def kb_client(app: FastAPI, client: TestClient) -> TestClient:
    add_kbs(app.state.container.kb_service)
    return client


def test_streamed_deltas_add_up_to_the_answer_and_docs_come_last(kb_client: TestClient) -> None:
    body = {"query": "How long do refunds take?", "knowledge_base_name": "shop", **TINY}
    events = stream_events(kb_client, KB_CHAT, body)
    assert [list(event) for event in events[:-1]] == [["answer"]] * (len(events) - 1)
    assert len(events) >= 2
    assert [event for event in events if "docs" in event] == [events[-1]]

    response = kb_client.post(KB_CHAT, json=body)
    assert response.status_code == 200
    answer = response.json()
    assert "".join(event["answer"] for event in events[:-1]) == answer["answer"]
    assert answer["model"] == TINY_QWEN_MODEL_NAME
    assert answer["docs"] == events[-1]["docs"]
    doc = answer["docs"][0]
    pinpoint = {"start_index", "end_index", "heading_path", "page_url"}
    assert set(doc) == {
        *("number", "source", "kb_name", "page", "chunk_id", "text", "score", "scores", "url"),
        *pinpoint,
    }
    assert (doc["number"], doc["source"], doc["kb_name"]) == (1, REFUNDS_FILE, "shop")
    assert doc["chunk_id"] > 0
    assert 0 < doc["score"] <= 1
    assert doc["url"] == (
        f"/knowledge_base/download_doc?knowledge_base_name=shop&file_name={quote(REFUNDS_FILE)}"
    )


def test_extractive_answer_cites_the_best_file_first(kb_client: TestClient) -> None:
    body = {"query": "How long do refunds take?", "knowledge_base_name": "shop"}
    answer = kb_client.post(KB_CHAT, json={**body, "model_name": "extractive"}).json()
    assert "[1]" in answer["answer"]
    assert answer["docs"][0]["source"] == REFUNDS_FILE
    assert answer["model"] == "extractive"
    events = stream_events(kb_client, KB_CHAT, body)  # extractive is the default model
    assert "".join(event.get("answer", "") for event in events) == answer["answer"]


def test_a_list_of_knowledge_bases_is_merged_by_score(kb_client: TestClient) -> None:
    body = {"query": "How does a rocket reach orbit?", "knowledge_base_name": ["shop", "space"]}
    docs = kb_client.post(KB_CHAT, json=body).json()["docs"]
    assert docs[0]["kb_name"] == "space"
    assert {doc["kb_name"] for doc in docs} == {"shop", "space"}
    assert [doc["score"] for doc in docs] == sorted((doc["score"] for doc in docs), reverse=True)


def test_nothing_above_the_threshold_answers_no_docs(app: FastAPI, kb_client: TestClient) -> None:
    body = {"query": "refunds", "knowledge_base_name": "shop", "score_threshold": 0.999}
    answer = kb_client.post(KB_CHAT, json=body).json()
    assert answer["docs"] == []
    assert answer["answer"] == app.state.container.chat.templates.kb(None).no_docs
    assert stream_events(kb_client, KB_CHAT, body)[-1] == {
        "docs": [],
        "search_query": "refunds",
        "query_rewrite": "none",
        "strict": False,
    }


def test_the_chatchat_alias_reads_its_threshold_as_an_l2_distance(kb_client: TestClient) -> None:
    body = {"query": "How long do refunds take?", "knowledge_base_name": "shop", "top_k": 3}

    def chunk_ids(path: str, threshold: float | None) -> list[int]:
        response = kb_client.post(path, json={**body, "score_threshold": threshold})
        assert response.status_code == 200
        return [doc["chunk_id"] for doc in response.json()["docs"]]

    every_chunk = chunk_ids(KB_CHAT, None)
    kept = chunk_ids(KB_CHAT, 0.5)
    # The case only tells the two readings apart if cosine 0.5 keeps some chunks, not all.
    assert 0 < len(kept) < len(every_chunk)
    assert chunk_ids(CHATCHAT_KB_CHAT, 1.0) == kept
    assert chunk_ids(CHATCHAT_KB_CHAT, 0.1) == []
    assert chunk_ids(CHATCHAT_KB_CHAT, 2.0) == every_chunk
    # Chatchat's default threshold is 1.0.
    assert chunk_ids(CHATCHAT_KB_CHAT, 1.0) == [
        doc["chunk_id"] for doc in kb_client.post(CHATCHAT_KB_CHAT, json=body).json()["docs"]
    ]


def test_an_unreachable_llm_gives_503_and_still_the_docs(api_settings: Settings) -> None:
    body = {"query": "How long do refunds take?", "knowledge_base_name": "shop"}
    body["model_name"] = "down"
    with TestClient(app_with_llm_down(api_settings)) as client:
        response = client.post(KB_CHAT, json=body)
        assert response.status_code == 503
        assert response.json()["detail"]["code"] == "llm_unavailable"
        assert response.json()["docs"][0]["source"] == REFUNDS_FILE

        events = stream_events(client, KB_CHAT, body)
        assert [next(iter(event)) for event in events] == ["error", "docs"]
        assert events[0]["error"]["code"] == "llm_unavailable"
        assert events[0]["error"]["status"] == 503
        assert events[1]["docs"][0]["source"] == REFUNDS_FILE

        plain = client.post("/chat/chat", json={"query": "hi", "model_name": "down"})
        assert plain.status_code == 503
        assert plain.json()["detail"]["code"] == "llm_unavailable"


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"knowledge_base_name": "nope"}, 404, "kb_not_found"),
        ({"model_name": "no-such-llm"}, 404, "unknown_model"),
        ({"query": "  "}, 422, "invalid_input"),
        ({"prompt_name": "no-such-prompt"}, 422, "unknown_prompt"),
    ],
)
@pytest.mark.parametrize("path", [KB_CHAT, CHATCHAT_KB_CHAT])
def test_bad_requests_fail_with_a_real_status_before_streaming(
    kb_client: TestClient, path: str, change: dict[str, str], status: int, code: str
) -> None:
    body = {"query": "refunds?", "knowledge_base_name": "shop", "stream": True, **change}
    response = kb_client.post(path, json=body)
    assert response.status_code == status
    assert response.json()["detail"]["code"] == code


def test_plain_chat_streams_the_same_text_it_answers(client: TestClient) -> None:
    body = {"query": "你好", **TINY}
    events = stream_events(client, "/chat/chat", body)
    assert events
    assert all(list(event) == ["text"] for event in events)
    response = client.post("/chat/chat", json=body)
    assert response.status_code == 200
    assert response.json() == {
        "text": "".join(event["text"] for event in events),
        "model": TINY_QWEN_MODEL_NAME,
    }


def test_plain_chat_with_the_extractive_model_is_rejected(client: TestClient) -> None:
    response = client.post("/chat/chat", json={"query": "hi", "model_name": "extractive"})
    assert response.status_code == 422
    assert response.json()["detail"]["code"] == "invalid_input"


@pytest.mark.parametrize("spec_version", ["2.3", "2.4"])
def test_an_event_stream_closes_its_source_when_the_client_goes(spec_version: str) -> None:
    closed = threading.Event()

    def endless() -> Iterator[str]:
        try:
            while True:
                yield sse_data({"answer": "字"})
        finally:
            closed.set()

    sent: list[Message] = []

    async def receive() -> Message:
        await anyio.sleep(0.2)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if len(sent) == 3 and spec_version == "2.4":
            raise OSError("the client is gone")
        sent.append(message)
        await anyio.sleep(0.001)

    async def serve() -> None:
        scope = {"type": "http", "asgi": {"spec_version": spec_version}}
        response = EventStreamResponse(endless())
        try:
            await response(scope, receive, send)
        except ClientDisconnect:
            assert spec_version == "2.4"
        # Checked while the response is still referenced: not closed by garbage collection.
        assert closed.is_set()

    anyio.run(serve)
    assert sent[1]["body"] == 'data: {"answer": "字"}\n\n'.encode()


def test_a_seed_beyond_64_bits_is_rejected_before_the_llm(client: TestClient) -> None:
    response = client.post("/chat/chat", json={"query": "hi", **TINY, "seed": 2**64})
    assert response.status_code == 422
