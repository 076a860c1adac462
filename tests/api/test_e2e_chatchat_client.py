"""Over real HTTP (uvicorn on 127.0.0.1): a client written the way Langchain-Chatchat 0.2.x's
own web UI client is (its envelope, its GET/POST choices, its default fields) goes through
create -> upload -> list_files -> search -> chat -> delete unchanged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.servers import serve_on_loopback

REFUNDS = "Refunds are paid within fourteen days of the return. Returns need the original receipt."
HOURS = "The warehouse opens at nine in the morning and closes at six in the evening."


class ChatchatStyleClient:
    """The calls and defaults of Chatchat 0.2.x's ApiRequest, nothing of ours."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=120)

    def list_knowledge_bases(self) -> Any:
        return self.http.get("/knowledge_base/list_knowledge_bases").json()["data"]

    def create_knowledge_base(self, name: str) -> Any:
        body = {"knowledge_base_name": name, "vector_store_type": "faiss", "embed_model": None}
        return self.http.post("/knowledge_base/create_knowledge_base", json=body).json()

    def upload_kb_docs(self, files: dict[str, bytes], knowledge_base_name: str) -> Any:
        data = {
            "knowledge_base_name": knowledge_base_name,
            "override": False,
            "to_vector_store": True,
            "chunk_size": 250,
            "chunk_overlap": 50,
            "zh_title_enhance": False,
            "docs": json.dumps({}, ensure_ascii=False),
            "not_refresh_vs_cache": False,
        }
        uploads = [("files", (name, content)) for name, content in files.items()]
        return self.http.post("/knowledge_base/upload_docs", data=data, files=uploads).json()

    def list_kb_docs(self, knowledge_base_name: str) -> Any:
        params = {"knowledge_base_name": knowledge_base_name}
        return self.http.get("/knowledge_base/list_files", params=params).json()["data"]

    def search_kb_docs(self, knowledge_base_name: str, query: str) -> Any:
        body = {
            "query": query,
            "knowledge_base_name": knowledge_base_name,
            "top_k": 3,
            "score_threshold": 1.0,
            "file_name": "",
            "metadata": {},
        }
        return self.http.post("/knowledge_base/search_docs", json=body).json()

    def knowledge_base_chat(self, query: str, knowledge_base_name: str) -> Iterator[Any]:
        body = {
            "query": query,
            "knowledge_base_name": knowledge_base_name,
            "top_k": 3,
            "score_threshold": 1.0,
            "history": [],
            "stream": True,
            "model_name": "extractive",
            "temperature": 0.7,
            "max_tokens": None,
            "prompt_name": "default",
        }
        with self.http.stream("POST", "/chat/knowledge_base_chat", json=body) as response:
            for line in response.iter_lines():
                if line.startswith("data:"):
                    yield json.loads(line[len("data:") :])

    def delete_kb_docs(self, knowledge_base_name: str, file_names: list[str]) -> Any:
        body = {
            "knowledge_base_name": knowledge_base_name,
            "file_names": file_names,
            "delete_content": False,
            "not_refresh_vs_cache": False,
        }
        return self.http.post("/knowledge_base/delete_docs", json=body).json()

    def delete_knowledge_base(self, knowledge_base_name: str) -> Any:
        # Chatchat sends the name as a bare JSON string.
        return self.http.post(
            "/knowledge_base/delete_knowledge_base", json=f"{knowledge_base_name}"
        ).json()


@pytest.fixture
def chatchat(app: FastAPI) -> Iterator[ChatchatStyleClient]:
    with serve_on_loopback(app, name="kb-api") as base:
        client = ChatchatStyleClient(base)
        yield client
        client.http.close()


def test_a_chatchat_client_goes_through_the_whole_lifecycle(chatchat: ChatchatStyleClient) -> None:
    assert chatchat.create_knowledge_base("shop")["code"] == 200
    assert chatchat.list_knowledge_bases() == ["shop"]

    uploaded = chatchat.upload_kb_docs(
        {"refunds.txt": REFUNDS.encode(), "hours.txt": HOURS.encode()}, "shop"
    )
    assert uploaded["code"] == 200
    assert uploaded["data"]["failed_files"] == {}
    assert sorted(chatchat.list_kb_docs("shop")) == ["hours.txt", "refunds.txt"]

    found = chatchat.search_kb_docs("shop", "How long do refunds take?")
    assert found[0]["metadata"]["source"] == "refunds.txt"
    assert {"page_content", "metadata", "type", "id", "score"} <= set(found[0])

    events = list(chatchat.knowledge_base_chat("When are refunds paid after a return?", "shop"))
    answer = "".join(event.get("answer", "") for event in events)
    assert "Refunds are paid within fourteen days of the return." in answer
    assert "docs" in events[-1]
    assert events[-1]["docs"][0]["source"] == "refunds.txt"

    assert chatchat.delete_kb_docs("shop", ["refunds.txt"])["code"] == 200
    assert chatchat.list_kb_docs("shop") == ["hours.txt"]
    after = chatchat.search_kb_docs("shop", "How long do refunds take?")
    assert all(doc["metadata"]["source"] != "refunds.txt" for doc in after)

    assert chatchat.delete_knowledge_base("shop")["code"] == 200
    assert chatchat.list_knowledge_bases() == []


def test_errors_arrive_with_real_statuses_and_the_envelope(chatchat: ChatchatStyleClient) -> None:
    response = chatchat.http.get(
        "/knowledge_base/list_files", params={"knowledge_base_name": "missing"}
    )
    assert response.status_code == 404
    assert response.json()["code"] == 404
    assert response.json()["detail"]["code"] == "kb_not_found"
