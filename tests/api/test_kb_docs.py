"""delete_docs, update_docs, list_file_chunks and update_chunk over a real KB."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kb_server.settings import Settings
from tests.api.test_kb_upload import CATS, ROCKETS, search, uploaded

pytestmark = pytest.mark.both_backends

DOLPHINS = "Dolphins are marine mammals that swim in the ocean and talk with clicks and whistles."
PENGUINS = "Penguins are flightless birds that live on the ice of Antarctica."


@pytest.fixture
def kb(client: TestClient) -> str:
    response = client.post(
        "/knowledge_base/create_knowledge_base", json={"knowledge_base_name": "docs"}
    )
    assert response.status_code == 200
    results = uploaded(
        client, "docs", [("cats.txt", CATS.encode()), ("rockets.md", ROCKETS.encode())]
    )
    assert {result["status"] for result in results.values()} == {"indexed"}
    return "docs"


@pytest.fixture
def content(api_settings: Settings, kb: str) -> Path:
    return api_settings.kb_root / kb / "content"


def listed(client: TestClient, kb: str) -> dict[str, str]:
    body = client.get("/knowledge_base/list_files", params={"knowledge_base_name": kb}).json()
    return {info["file_name"]: info["status"] for info in body["files"]}


def test_deleted_docs_leave_search_and_optionally_the_disk(
    client: TestClient, kb: str, content: Path
) -> None:
    response = client.post(
        "/knowledge_base/delete_docs",
        json={"knowledge_base_name": kb, "file_names": ["cats.txt", "missing.txt", "../x.txt"]},
    )
    assert response.status_code == 200
    failed = response.json()["data"]["failed_files"]
    assert set(failed) == {"missing.txt", "../x.txt"}
    assert failed["missing.txt"] == "not found"
    assert {hit["metadata"]["source"] for hit in search(client, kb, "cats purr", top_k=5)} == {
        "rockets.md"
    }
    assert (content / "cats.txt").is_file()
    assert listed(client, kb) == {"cats.txt": "saved", "rockets.md": "indexed"}

    response = client.post(
        "/knowledge_base/delete_docs",
        json={"knowledge_base_name": kb, "file_names": ["rockets.md"], "delete_content": True},
    )
    assert response.json()["data"]["failed_files"] == {}
    assert not (content / "rockets.md").exists()
    assert search(client, kb, "rocket") == []
    assert listed(client, kb) == {"cats.txt": "saved"}


def test_update_docs_embeds_changed_files_again(client: TestClient, kb: str, content: Path) -> None:
    (content / "cats.txt").write_text(DOLPHINS, encoding="utf-8")
    response = client.post(
        "/knowledge_base/update_docs",
        json={"knowledge_base_name": kb, "file_names": ["cats.txt", "rockets.md", "gone.txt"]},
    )
    assert response.status_code == 200
    data = response.json()["data"]
    statuses = {result["file_name"]: result["status"] for result in data["files"]}
    assert statuses == {"cats.txt": "indexed", "rockets.md": "unchanged", "gone.txt": "failed"}
    assert set(data["failed_files"]) == {"gone.txt"}
    hit = search(client, kb, "Which animals swim in the sea?")[0]
    assert hit["metadata"]["source"] == "cats.txt"
    assert hit["page_content"] == DOLPHINS


def test_update_docs_with_chunk_settings_splits_again(client: TestClient, kb: str) -> None:
    response = client.post(
        "/knowledge_base/update_docs",
        json={
            "knowledge_base_name": kb,
            "file_names": ["rockets.md"],
            "chunk_size": 60,
            "chunk_overlap": 0,
        },
    )
    result = response.json()["data"]["files"][0]
    assert result["status"] == "indexed"
    assert result["chunks"] > 1
    files = client.get("/knowledge_base/list_files", params={"knowledge_base_name": kb}).json()
    details = {info["file_name"]: info for info in files["files"]}
    assert details["rockets.md"]["chunk_size"] == 60
    assert details["cats.txt"]["chunk_size"] == 250


def test_edited_chunk_is_found_by_its_new_text(client: TestClient, kb: str) -> None:
    response = client.get(
        "/knowledge_base/list_file_chunks",
        params={"knowledge_base_name": kb, "file_name": "cats.txt"},
    )
    assert response.status_code == 200
    chunks = response.json()["data"]
    assert [chunk["seq"] for chunk in chunks] == list(range(len(chunks)))
    assert chunks[0]["text"] == CATS
    assert chunks[0]["metadata"]["source"] == "cats.txt"

    chunk_id = chunks[0]["id"]
    response = client.post(
        "/knowledge_base/update_chunk",
        json={"knowledge_base_name": kb, "chunk_id": chunk_id, "text": PENGUINS},
    )
    assert response.status_code == 200
    assert response.json()["data"]["text"] == PENGUINS
    hit = search(client, kb, "birds living in Antarctica")[0]
    assert (hit["id"], hit["page_content"]) == (chunk_id, PENGUINS)


def test_chunk_errors(client: TestClient, kb: str) -> None:
    chunk_id = client.get(
        "/knowledge_base/list_file_chunks",
        params={"knowledge_base_name": kb, "file_name": "cats.txt"},
    ).json()["data"][0]["id"]
    empty = client.post(
        "/knowledge_base/update_chunk",
        json={"knowledge_base_name": kb, "chunk_id": chunk_id, "text": "  "},
    )
    assert empty.status_code == 422
    assert empty.json()["detail"]["code"] == "invalid_input"
    unknown = client.post(
        "/knowledge_base/update_chunk",
        json={"knowledge_base_name": kb, "chunk_id": 10**9, "text": "x"},
    )
    assert unknown.status_code == 404
    assert unknown.json()["detail"]["code"] == "chunk_not_found"
    no_file = client.get(
        "/knowledge_base/list_file_chunks",
        params={"knowledge_base_name": kb, "file_name": "no.txt"},
    )
    assert no_file.status_code == 404
    assert no_file.json()["detail"]["code"] == "file_not_found"
    assert search(client, kb, "cats")[0]["page_content"] == CATS
