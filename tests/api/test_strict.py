"""Strict mode over HTTP: per request and per knowledge base, refusing without a model when
nothing passes the threshold, answering from the sources otherwise; off by default."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from kb_server.chat.prompts import PromptTemplates
from kb_server.settings import Settings
from tests.api.test_chat_routes import app_with_llm_down

pytestmark = pytest.mark.both_backends

# English, which the test embedder (MiniLM) understands: hybrid scores mean something.
REFUNDS = "Refunds are paid within fourteen days of the return. Returns need the receipt."
HOURS = "The warehouse opens at nine in the morning. Deliveries arrive by truck."
RELATED = "How long do refunds take?"
# Scores far below retrieval.strict_min_score, but a search without a threshold returns both.
UNRELATED = "How does a rocket reach orbit?"
CHAT: dict[str, Any] = {"model_name": "extractive", "rerank": False}


def strict_refusal(settings: Settings) -> str:
    refusal = PromptTemplates.load(settings.prompts_file).kb("default").strict_refusal
    assert refusal
    return refusal


def create_kb(client: TestClient, name: str, **fields: Any) -> dict[str, Any]:
    response = client.post(
        "/knowledge_base/create_knowledge_base", json={"knowledge_base_name": name, **fields}
    )
    assert response.status_code == 200, response.text
    files = [
        ("files", ("refunds.txt", REFUNDS.encode(), "text/plain")),
        ("files", ("hours.txt", HOURS.encode(), "text/plain")),
    ]
    uploaded = client.post(
        "/knowledge_base/upload_docs", data={"knowledge_base_name": name}, files=files
    )
    assert uploaded.status_code == 200, uploaded.text
    details: dict[str, Any] = response.json()["data"]
    return details


def ask(client: TestClient, kb: str, query: str, **body: Any) -> dict[str, Any]:
    response = client.post(
        "/knowledge_base/chat", json={**CHAT, "knowledge_base_name": kb, "query": query, **body}
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_strict_is_off_by_default(client: TestClient) -> None:
    assert create_kb(client, "shop")["strict"] is False
    answer = ask(client, "shop", UNRELATED)
    assert answer["strict"] is False
    assert len(answer["docs"]) == 2


def test_a_strict_request_refuses_an_unrelated_question(
    client: TestClient, api_settings: Settings
) -> None:
    create_kb(client, "shop")
    refused = ask(client, "shop", UNRELATED, strict=True)
    assert (refused["answer"], refused["docs"], refused["strict"]) == (
        strict_refusal(api_settings),
        [],
        True,
    )
    answered = ask(client, "shop", RELATED, strict=True)
    assert answered["strict"] is True
    assert [doc["source"] for doc in answered["docs"]] == ["refunds.txt"]
    assert "fourteen" in answered["answer"]


def test_the_requests_threshold_is_the_strict_threshold(client: TestClient) -> None:
    create_kb(client, "shop")
    kept = ask(client, "shop", UNRELATED, strict=True, score_threshold=0.0)
    assert len(kept["docs"]) == 2


def test_a_strict_kb_refuses_unless_the_request_says_otherwise(
    client: TestClient, api_settings: Settings
) -> None:
    assert create_kb(client, "shop", strict=True)["strict"] is True
    assert ask(client, "shop", UNRELATED)["answer"] == strict_refusal(api_settings)
    assert ask(client, "shop", RELATED)["docs"]
    relaxed = ask(client, "shop", UNRELATED, strict=False)
    assert (relaxed["strict"], len(relaxed["docs"])) == (False, 2)


def test_update_info_turns_a_kbs_strict_mode_and_refusal_on_and_off(client: TestClient) -> None:
    create_kb(client, "shop", kb_info="退货")
    body = {"knowledge_base_name": "shop", "strict": True, "strict_refusal": "无可奉告。"}
    updated = client.post("/knowledge_base/update_info", json=body).json()["data"]
    assert (updated["strict"], updated["strict_refusal"], updated["kb_info"]) == (
        True,
        "无可奉告。",
        "退货",
    )
    listed = client.get("/knowledge_base/knowledge_bases").json()["data"]
    assert [kb["strict"] for kb in listed] == [True]
    assert ask(client, "shop", UNRELATED)["answer"] == "无可奉告。"
    body = {"knowledge_base_name": "shop", "kb_info": "退货政策"}
    kept = client.post("/knowledge_base/update_info", json=body).json()["data"]
    assert (kept["strict"], kept["kb_info"]) == (True, "退货政策")
    off = {"knowledge_base_name": "shop", "strict": False}
    assert client.post("/knowledge_base/update_info", json=off).json()["data"]["strict"] is False
    assert ask(client, "shop", UNRELATED)["docs"]


def test_a_strict_kbs_own_threshold_applies(client: TestClient, api_settings: Settings) -> None:
    create_kb(client, "shop", strict=True, strict_min_score=0.0)
    assert ask(client, "shop", UNRELATED)["docs"]
    body = {"knowledge_base_name": "shop", "strict_min_score": None}
    client.post("/knowledge_base/update_info", json=body)
    assert ask(client, "shop", UNRELATED)["answer"] == strict_refusal(api_settings)


def test_a_refusal_asks_no_model(api_settings: Settings) -> None:
    """With an LLM that is down, strict mode still refuses (200) where a chat would fail."""
    app: FastAPI = app_with_llm_down(api_settings)  # "shop" holds refunds and hours
    body = {
        "knowledge_base_name": "shop",
        "query": UNRELATED,
        "model_name": "down",
        "rerank": False,
    }
    with TestClient(app) as client:
        refused = client.post("/knowledge_base/chat", json={**body, "strict": True})
        assert refused.status_code == 200
        assert refused.json()["answer"] == strict_refusal(api_settings)
        failed = client.post("/knowledge_base/chat", json={**body, "score_threshold": 0.0})
        assert failed.status_code == 503


def test_openai_completions_take_strict(client: TestClient, api_settings: Settings) -> None:
    create_kb(client, "shop")
    body = {
        "model": "kb/shop",
        "llm_model": "extractive",
        "messages": [{"role": "user", "content": UNRELATED}],
        "rerank": False,
    }
    strict = client.post("/v1/chat/completions", json={**body, "strict": True}).json()
    assert strict["choices"][0]["message"]["content"] == strict_refusal(api_settings)
    assert strict["docs"] == []
    assert client.post("/v1/chat/completions", json=body).json()["docs"]


def test_a_template_without_strict_texts_uses_the_default_ones(
    client: TestClient, api_settings: Settings
) -> None:
    create_kb(client, "shop")
    refused = ask(client, "shop", UNRELATED, strict=True, prompt_name="concise")
    assert refused["answer"] == strict_refusal(api_settings)


def test_a_chinese_question_sharing_one_word_with_the_kb_is_refused(
    client: TestClient, api_settings: Settings
) -> None:
    """Keyword scores carry Chinese offline: a question about something the KB never mentions
    scores low although it shares 商品 with it, and a question about the KB's text passes."""
    client.post("/knowledge_base/create_knowledge_base", json={"knowledge_base_name": "店铺"})
    files = [
        ("files", ("退货.txt", "商品退货后，退款在七个工作日内原路退回。".encode(), "text/plain")),
        ("files", ("仓库.txt", "仓库每天早上九点开门，货车负责送货。".encode(), "text/plain")),
    ]
    uploaded = client.post(
        "/knowledge_base/upload_docs", data={"knowledge_base_name": "店铺"}, files=files
    )
    assert uploaded.status_code == 200, uploaded.text
    for mode in ("bm25", "hybrid"):
        unrelated = ask(
            client, "店铺", "火星上的天气和商品有什么关系？", strict=True, search_mode=mode
        )
        assert (unrelated["answer"], unrelated["docs"]) == (strict_refusal(api_settings), [])
        related = ask(client, "店铺", "商品退货后多久退款？", strict=True, search_mode=mode)
        assert [doc["source"] for doc in related["docs"]] == ["退货.txt"]
