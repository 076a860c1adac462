"""File chat through HTTP: temporary knowledge bases from uploads, answers, expiry."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from kb_server.api.app import create_app
from kb_server.api.routers.file_chat import get_temp_kbs
from kb_server.chat.file_chat import TempKnowledgeBases
from kb_server.db.models import utc_now
from kb_server.settings import FileChatSettings, LlmEndpointSettings, Settings
from tests.api.test_chat_routes import TINY, free_port, sse_events
from tests.conftest import TINY_QWEN_MODEL_NAME

UPLOAD = "/knowledge_base/upload_temp_docs"
FILE_CHAT = "/chat/file_chat"
REFUNDS = "Refunds are paid within fourteen days of the return. Returns need the receipt."
HOURS = "The warehouse opens at nine in the morning. Deliveries arrive by truck."
ORBIT = "A rocket reaches orbit by burning fuel in stages."
REFUNDS_FILE = "退款 政策.txt"
Files = list[tuple[str, tuple[str, bytes]]]


def upload(client: TestClient, files: dict[str, bytes], **form: Any) -> dict[str, Any]:
    parts: Files = [("files", (name, data)) for name, data in files.items()]
    response = client.post(UPLOAD, files=parts, data=form)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == 200
    return body


def stream_events(client: TestClient, body: dict[str, Any]) -> list[Any]:
    with client.stream("POST", FILE_CHAT, json={**body, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return sse_events(response.read().decode("utf-8"))


@pytest.fixture
def temp_id(client: TestClient) -> str:
    files = {REFUNDS_FILE: REFUNDS.encode(), "hours.txt": HOURS.encode()}
    temp: str = upload(client, files)["data"]["id"]
    return temp


def test_upload_reports_the_corrupt_file_and_answers_from_the_good_one(
    client: TestClient, api_settings: Settings
) -> None:
    files = {REFUNDS_FILE: REFUNDS.encode(), "broken.docx": b"this is not a zip archive"}
    data = upload(client, files)["data"]
    assert set(data["failed_files"]) == {"broken.docx"}
    assert (api_settings.kb_root / ".temp_kbs" / f"tmp_{data['id']}").is_dir()

    body = {"query": "How long do refunds take?", "knowledge_id": data["id"]}
    answer = client.post(FILE_CHAT, json={**body, "model_name": "extractive"}).json()
    assert "[1]" in answer["answer"]
    assert answer["model"] == "extractive"
    assert answer["docs"][0]["source"] == REFUNDS_FILE
    assert answer["docs"][0]["number"] == 1

    events = stream_events(client, {**body, "model_name": "extractive"})
    assert [event for event in events if "docs" in event] == [events[-1]]
    assert events[-1]["docs"] == answer["docs"]
    assert "".join(event.get("answer", "") for event in events) == answer["answer"]


def test_a_source_url_downloads_the_uploaded_file(client: TestClient, temp_id: str) -> None:
    body = {"query": "How long do refunds take?", "knowledge_id": temp_id}
    doc = client.post(FILE_CHAT, json=body).json()["docs"][0]
    assert doc["url"].startswith("/knowledge_base/download_temp_doc?")
    response = client.get(doc["url"])
    assert response.status_code == 200
    assert response.content == REFUNDS.encode()
    assert response.headers["content-disposition"].startswith("attachment")

    download = "/knowledge_base/download_temp_doc"
    escape = client.get(download, params={"knowledge_id": temp_id, "file_name": "../../info.db"})
    assert escape.status_code == 422
    unknown = client.get(download, params={"knowledge_id": "0" * 32, "file_name": "hours.txt"})
    assert unknown.status_code == 404
    missing = client.get(download, params={"knowledge_id": temp_id, "file_name": "nope.txt"})
    assert missing.status_code == 404


def test_the_tiny_llm_streams_deltas_then_docs(client: TestClient, temp_id: str) -> None:
    body = {"query": "When does the warehouse open?", "knowledge_id": temp_id, **TINY}
    events = stream_events(client, body)
    assert len(events) >= 2
    assert [list(event) for event in events[:-1]] == [["answer"]] * (len(events) - 1)
    assert events[-1]["docs"][0]["source"] == "hours.txt"
    answer = client.post(FILE_CHAT, json=body).json()
    assert answer["model"] == TINY_QWEN_MODEL_NAME
    assert answer["docs"] == events[-1]["docs"]


def test_prev_id_adds_files_to_the_same_knowledge_base(client: TestClient, temp_id: str) -> None:
    data = upload(client, {"orbit.txt": ORBIT.encode()}, prev_id=temp_id)["data"]
    assert data == {"id": temp_id, "failed_files": {}}
    body = {"query": "How does a rocket reach orbit?", "knowledge_id": temp_id, "top_k": 3}
    docs = client.post(FILE_CHAT, json=body).json()["docs"]
    assert docs[0]["source"] == "orbit.txt"
    assert {doc["source"] for doc in docs} == {"orbit.txt", REFUNDS_FILE, "hours.txt"}


def test_temporary_knowledge_bases_are_not_listed(client: TestClient, temp_id: str) -> None:
    client.post("/knowledge_base/create_knowledge_base", json={"knowledge_base_name": "real"})
    listed = client.get("/knowledge_base/list_knowledge_bases").json()["data"]
    assert listed == ["real"]


def test_unknown_ids_return_404(client: TestClient) -> None:
    for unknown in ("0" * 32, "../samples"):
        response = client.post(FILE_CHAT, json={"query": "refunds", "knowledge_id": unknown})
        assert response.status_code == 404
        assert response.json()["detail"]["code"] == "temp_kb_not_found"
    parts: Files = [("files", ("a.txt", b"text"))]
    response = client.post(UPLOAD, files=parts, data={"prev_id": "0" * 32})
    assert response.status_code == 404
    assert response.json()["code"] == 404
    assert response.json()["detail"]["code"] == "temp_kb_not_found"


class ShiftedClock:
    """The real UTC time, moved ahead by ``shift``."""

    def __init__(self) -> None:
        self.shift = timedelta()

    def __call__(self) -> datetime:
        return utc_now() + self.shift


def test_an_expired_knowledge_base_returns_404_and_its_folder_is_gone(
    api_settings: Settings,
) -> None:
    settings = api_settings.model_copy(update={"file_chat": FileChatSettings(ttl_s=60)})
    app: FastAPI = create_app(settings)
    clock = ShiftedClock()
    chat = app.state.container.chat
    temp_kbs = TempKnowledgeBases.build(
        settings, llm_clients=chat.llm_clients, templates=chat.templates, now=clock
    )
    app.dependency_overrides[get_temp_kbs] = lambda: temp_kbs
    with TestClient(app) as client:
        old = upload(client, {"hours.txt": HOURS.encode()})["data"]["id"]
        folder = settings.kb_root / ".temp_kbs" / f"tmp_{old}"
        body = {"query": "When does the warehouse open?", "knowledge_id": old}
        clock.shift = timedelta(seconds=50)
        assert client.post(FILE_CHAT, json=body).status_code == 200

        clock.shift = timedelta(seconds=61)
        response = client.post(FILE_CHAT, json=body)
        assert response.status_code == 404
        assert response.json()["detail"]["code"] == "temp_kb_not_found"
        assert not folder.exists()
        # A fresh upload is not swept by the same clock.
        fresh = upload(client, {"hours.txt": HOURS.encode()})["data"]["id"]
        assert client.post(FILE_CHAT, json={**body, "knowledge_id": fresh}).status_code == 200


def test_an_unreachable_llm_returns_503_with_the_docs(api_settings: Settings) -> None:
    endpoint = LlmEndpointSettings(base_url=f"http://127.0.0.1:{free_port()}/v1")
    settings = api_settings.model_copy(update={"llm_models": {"down": endpoint}})
    with TestClient(create_app(settings)) as client:
        temp = upload(client, {REFUNDS_FILE: REFUNDS.encode()})["data"]["id"]
        body = {"query": "How long do refunds take?", "knowledge_id": temp, "model_name": "down"}
        response = client.post(FILE_CHAT, json=body)
        assert response.status_code == 503
        assert response.json()["detail"]["code"] == "llm_unavailable"
        assert response.json()["docs"][0]["source"] == REFUNDS_FILE
        events = stream_events(client, body)
        assert events[-2]["error"]["status"] == 503
        assert events[-1]["docs"][0]["source"] == REFUNDS_FILE
