"""search_mode and rerank over HTTP: search_docs and KB chat pick the retriever per request."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from kb_server.knowledge.service import KnowledgeBaseService

pytestmark = pytest.mark.both_backends

FILES = {
    "catalog.txt": "年度产品目录：本年度共上架一百二十款新品，"
    "其中实验室系列新增量子纠缠蒸馏器一款。",
    "returns.txt": "退货政策：商品签收后七天内可以申请无理由退货，退款会在三个工作日内原路返回。",
    "invoice.txt": "发票开具：下单时填写抬头和税号，电子发票会在订单完成后发送到邮箱。",
}
QUESTION = "有没有量子纠缠蒸馏器？"


@pytest.fixture
def shop(app: FastAPI, client: TestClient) -> str:
    service: KnowledgeBaseService = app.state.container.kb_service
    service.create_kb("shop")
    for name, text in FILES.items():
        service.save_file("shop", name, text.encode(), override=False)
    service.add_files("shop", list(FILES))
    return "shop"


def search(client: TestClient, **body: Any) -> list[dict[str, Any]]:
    response = client.post(
        "/knowledge_base/search_docs", json={"knowledge_base_name": "shop", **body}
    )
    assert response.status_code == 200, response.text
    hits: list[dict[str, Any]] = response.json()
    return hits


@pytest.mark.parametrize(
    ("mode", "score_names"),
    [
        ("dense", {"dense"}),
        ("bm25", {"bm25", "keyword"}),
        # The English MiniLM takes no part in hybrid search for a Chinese question.
        ("hybrid", {"bm25", "keyword", "rrf"}),
    ],
)
def test_search_docs_reports_the_scores_of_the_chosen_mode(
    client: TestClient, shop: str, mode: str, score_names: set[str]
) -> None:
    hits = search(client, query=QUESTION, top_k=3, search_mode=mode, rerank=False)
    assert hits
    assert all(set(hit["scores"]) == score_names for hit in hits)
    if mode != "dense":
        assert hits[0]["metadata"]["file_name"] == "catalog.txt"
        assert all(0.0 <= hit["score"] <= 1.0 for hit in hits)


def test_an_unknown_search_mode_is_a_422(client: TestClient, shop: str) -> None:
    response = client.post(
        "/knowledge_base/search_docs",
        json={"knowledge_base_name": "shop", "query": QUESTION, "search_mode": "fuzzy"},
    )
    assert response.status_code == 422
    assert "search_mode" in response.text


def test_kb_chat_retrieves_with_the_requested_mode(client: TestClient, shop: str) -> None:
    body = {"query": QUESTION, "knowledge_base_name": "shop", "model_name": "extractive"}
    answer = client.post("/knowledge_base/chat", json={**body, "search_mode": "bm25"}).json()
    assert [doc["source"] for doc in answer["docs"]] == ["catalog.txt"]
    assert "量子纠缠蒸馏器" in answer["answer"]
    dense = client.post("/knowledge_base/chat", json={**body, "search_mode": "dense"}).json()
    assert len(dense["docs"]) == 3  # dense search returns neighbours whatever they say
