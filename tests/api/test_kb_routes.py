"""Knowledge-base routes: create, list, details, update_info, delete, and their errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kb_server.settings import Settings

pytestmark = pytest.mark.both_backends


def create_kb(client: TestClient, name: str, **extra: Any) -> dict[str, Any]:
    response = client.post(
        "/knowledge_base/create_knowledge_base", json={"knowledge_base_name": name, **extra}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_created_kb_is_listed_with_its_details(client: TestClient, api_settings: Settings) -> None:
    body = create_kb(client, "手册", kb_info="产品手册", chunk_size=300, chunk_overlap=30)
    assert body["code"] == 200
    assert body["data"]["name"] == "手册"
    assert body["data"]["embed_model"] == api_settings.embedding.model
    create_kb(client, "faq")

    names = client.get("/knowledge_base/list_knowledge_bases").json()
    assert names["code"] == 200
    assert names["data"] == ["faq", "手册"]

    details = {
        kb["name"]: kb for kb in client.get("/knowledge_base/knowledge_bases").json()["data"]
    }
    manual = details["手册"]
    assert manual["kb_info"] == manual["description"] == "产品手册"
    assert manual["vs_type"] == api_settings.vector_store.default_type
    assert (manual["chunk_size"], manual["chunk_overlap"]) == (300, 30)
    assert manual["file_count"] == manual["chunk_count"] == 0
    assert manual["created_at"]
    assert details["faq"]["chunk_size"] == api_settings.splitter.chunk_size


def test_creating_existing_kb_returns_409(client: TestClient) -> None:
    create_kb(client, "faq")
    response = client.post(
        "/knowledge_base/create_knowledge_base", json={"knowledge_base_name": "faq"}
    )
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == 409
    assert body["detail"]["code"] == "kb_exists"


@pytest.mark.parametrize("name", ["../evil", "a/b", "", ".hidden", "x" * 65])
def test_invalid_kb_name_returns_422_with_envelope(
    client: TestClient, api_settings: Settings, name: str
) -> None:
    response = client.post(
        "/knowledge_base/create_knowledge_base", json={"knowledge_base_name": name}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == 422
    assert body["detail"]["code"] == "invalid_name"
    assert not (api_settings.kb_root.parent / "evil").exists()


def test_unknown_vector_store_type_returns_422(client: TestClient) -> None:
    response = client.post(
        "/knowledge_base/create_knowledge_base",
        json={"knowledge_base_name": "faq", "vector_store_type": "milvus"},
    )
    assert response.status_code == 422
    assert response.json()["code"] == 422
    assert client.get("/knowledge_base/list_knowledge_bases").json()["data"] == []


def test_bad_chunk_settings_return_422(client: TestClient) -> None:
    response = client.post(
        "/knowledge_base/create_knowledge_base",
        json={"knowledge_base_name": "faq", "chunk_size": 100, "chunk_overlap": 100},
    )
    assert response.status_code == 422
    assert response.json()["detail"]["code"] == "invalid_input"


def test_update_info_changes_the_description(client: TestClient) -> None:
    create_kb(client, "faq")
    response = client.post(
        "/knowledge_base/update_info", json={"knowledge_base_name": "faq", "kb_info": "常见问题"}
    )
    assert response.status_code == 200
    assert response.json()["data"]["kb_info"] == "常见问题"
    listed = client.get("/knowledge_base/knowledge_bases").json()["data"]
    assert listed[0]["description"] == "常见问题"


def test_delete_accepts_a_bare_name_and_an_object(
    client: TestClient, api_settings: Settings
) -> None:
    create_kb(client, "samples")
    create_kb(client, "faq")
    # Chatchat's clients post the name itself as the JSON body.
    response = client.post("/knowledge_base/delete_knowledge_base", json="samples")
    assert response.status_code == 200
    assert response.json()["code"] == 200
    response = client.post(
        "/knowledge_base/delete_knowledge_base", json={"knowledge_base_name": "faq"}
    )
    assert response.status_code == 200
    assert client.get("/knowledge_base/list_knowledge_bases").json()["data"] == []
    assert not (api_settings.kb_root / "samples").exists()


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("post", "/knowledge_base/delete_knowledge_base", "nope"),
        ("post", "/knowledge_base/update_info", {"knowledge_base_name": "nope", "kb_info": ""}),
        ("get", "/knowledge_base/list_files", {"knowledge_base_name": "nope"}),
        ("post", "/knowledge_base/search_docs", {"knowledge_base_name": "nope", "query": "q"}),
        ("post", "/knowledge_base/delete_docs", {"knowledge_base_name": "nope", "file_names": []}),
        ("post", "/knowledge_base/update_docs", {"knowledge_base_name": "nope", "file_names": []}),
        (
            "get",
            "/knowledge_base/download_doc",
            {"knowledge_base_name": "nope", "file_name": "a.txt"},
        ),
        (
            "post",
            "/knowledge_base/recreate_vector_store",
            {"knowledge_base_name": "nope", "allow_empty_kb": False},
        ),
    ],
)
def test_unknown_kb_returns_404_with_envelope(
    client: TestClient, method: str, path: str, payload: Any
) -> None:
    if method == "get":
        response = client.get(path, params=payload)
    else:
        response = client.post(path, json=payload)
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == 404
    assert body["data"] is None
    assert body["detail"]["code"] == "kb_not_found"


def test_upload_to_unknown_kb_returns_404(client: TestClient, tmp_path: Path) -> None:
    response = client.post(
        "/knowledge_base/upload_docs",
        data={"knowledge_base_name": "nope"},
        files=[("files", ("a.txt", b"hello", "text/plain"))],
    )
    assert response.status_code == 404
    assert response.json()["detail"]["code"] == "kb_not_found"
    assert not (tmp_path / "kb_root" / "nope").exists()


def test_invalid_kb_name_in_a_query_returns_422(client: TestClient) -> None:
    response = client.get("/knowledge_base/list_files", params={"knowledge_base_name": "../.."})
    assert response.status_code == 422
    assert response.json()["detail"]["code"] == "invalid_name"
