"""Text with lone surrogates (a JSON "\\ud800" escape) is a 4xx everywhere text goes in."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from kb_server.knowledge.service import KnowledgeBaseService
from tests.conftest import TINY_QWEN_MODEL_NAME

LONE = "refunds \ud800 policy"


@pytest.fixture
def kb(app: FastAPI, client: TestClient) -> str:
    service: KnowledgeBaseService = app.state.container.kb_service
    service.create_kb("shop")
    service.save_file("shop", "refunds.txt", b"Refunds are paid within 14 days.", override=False)
    service.add_files("shop", ["refunds.txt"])
    return "shop"


def json_body(body: dict[str, object]) -> bytes:
    # json.dumps escapes the surrogate as \ud800, the way a client would send it.
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/knowledge_base/search_docs", {"knowledge_base_name": "shop", "query": LONE}),
        ("/knowledge_base/chat", {"knowledge_base_name": "shop", "query": LONE}),
        (
            "/knowledge_base/chat",
            {
                "knowledge_base_name": "shop",
                "query": "refunds?",
                "history": [{"role": "user", "content": LONE}],
            },
        ),
        ("/chat/chat", {"query": LONE, "model_name": TINY_QWEN_MODEL_NAME}),
        (
            "/v1/chat/completions",
            {"model": "kb/shop", "messages": [{"role": "user", "content": LONE}]},
        ),
    ],
)
def test_lone_surrogates_are_a_client_error(
    client: TestClient, kb: str, path: str, body: dict[str, object]
) -> None:
    response = client.post(
        path, content=json_body(body), headers={"Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500, response.text
    assert "Unicode" in response.text or "unicode" in response.text


def test_editing_a_chunk_to_invalid_text_is_refused_and_keeps_it(
    app: FastAPI, client: TestClient, kb: str
) -> None:
    service: KnowledgeBaseService = app.state.container.kb_service
    chunk = service.list_chunks(kb, "refunds.txt")[0]
    response = client.post(
        "/knowledge_base/update_chunk",
        content=json_body({"knowledge_base_name": kb, "chunk_id": chunk.id, "text": LONE}),
        headers={"Content-Type": "application/json"},
    )
    assert 400 <= response.status_code < 500
    assert service.list_chunks(kb, "refunds.txt")[0].text == chunk.text
