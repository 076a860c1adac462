"""upload_docs, list_files, search_docs and download_doc over a real KB (SQLite, FAISS, MiniLM)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from kb_server.settings import Settings

pytestmark = pytest.mark.both_backends

CATS = (
    "Cats are small domesticated carnivorous mammals. A cat purrs, sleeps most of the day "
    "and hunts mice in the garden."
)
ROCKETS = (
    "# Rockets\n\nA rocket engine burns liquid propellant to produce thrust and launch "
    "spacecraft into orbit around the Earth."
)
FileSpec = tuple[str, bytes]


@pytest.fixture
def kb(client: TestClient) -> str:
    response = client.post(
        "/knowledge_base/create_knowledge_base", json={"knowledge_base_name": "docs"}
    )
    assert response.status_code == 200
    return "docs"


def upload(
    client: TestClient, kb: str, files: list[FileSpec], **form: Any
) -> tuple[int, dict[str, Any]]:
    """The status code and JSON body of an upload_docs call."""
    response = client.post(
        "/knowledge_base/upload_docs",
        data={"knowledge_base_name": kb, **{key: str(value) for key, value in form.items()}},
        files=[("files", (name, data, "application/octet-stream")) for name, data in files],
    )
    body: dict[str, Any] = response.json()
    return response.status_code, body


def uploaded(
    client: TestClient, kb: str, files: list[FileSpec], **form: Any
) -> dict[str, dict[str, Any]]:
    """The per-file results of a successful upload, by file name."""
    status, body = upload(client, kb, files, **form)
    assert status == 200, body
    assert body["code"] == 200
    return {result["file_name"]: result for result in body["data"]["files"]}


def search(client: TestClient, kb: str, query: str, **extra: Any) -> list[dict[str, Any]]:
    response = client.post(
        "/knowledge_base/search_docs", json={"knowledge_base_name": kb, "query": query, **extra}
    )
    assert response.status_code == 200, response.text
    hits: list[dict[str, Any]] = response.json()
    return hits


def test_upload_indexes_good_files_and_reports_bad_ones(client: TestClient, kb: str) -> None:
    status, body = upload(
        client,
        kb,
        [
            ("cats.txt", CATS.encode()),
            ("rockets.md", ROCKETS.encode()),
            ("broken.docx", b"this is not a zip archive"),
            ("legacy.doc", b"\xd0\xcf\x11\xe0 old word file"),
        ],
    )
    assert status == 200
    assert body["code"] == 200
    results = {result["file_name"]: result for result in body["data"]["files"]}
    assert results["cats.txt"]["status"] == results["rockets.md"]["status"] == "indexed"
    assert results["cats.txt"]["chunks"] >= 1
    assert results["broken.docx"]["status"] == results["legacy.doc"]["status"] == "failed"
    failed = body["data"]["failed_files"]
    assert set(failed) == {"broken.docx", "legacy.doc"}
    assert all(failed.values())

    listing = client.get("/knowledge_base/list_files", params={"knowledge_base_name": kb}).json()
    assert listing["data"] == ["broken.docx", "cats.txt", "legacy.doc", "rockets.md"]
    details = {info["file_name"]: info for info in listing["files"]}
    assert details["cats.txt"]["status"] == "indexed"
    assert details["cats.txt"]["chunk_count"] == results["cats.txt"]["chunks"]
    assert details["cats.txt"]["size"] == len(CATS.encode())
    assert details["rockets.md"]["ext"] == ".md"
    assert details["broken.docx"]["status"] == "failed"
    assert details["broken.docx"]["error"]
    assert details["broken.docx"]["chunk_count"] == 0

    hits = search(client, kb, "Which pet animal purrs and catches mice?")
    assert hits[0]["metadata"]["source"] == "cats.txt"
    assert hits[0]["type"] == "Document"
    assert isinstance(hits[0]["id"], int)
    assert hits[0]["score"] > hits[-1]["score"] or len(hits) == 1
    rocket_hits = search(client, kb, "spacecraft launch thrust")
    assert rocket_hits[0]["metadata"]["source"] == "rockets.md"


def test_search_file_filter_and_threshold(client: TestClient, kb: str) -> None:
    uploaded(client, kb, [("cats.txt", CATS.encode()), ("rockets.md", ROCKETS.encode())])
    only_rockets = search(client, kb, "cats purring", file_name="rockets.md")
    assert {hit["metadata"]["source"] for hit in only_rockets} == {"rockets.md"}
    as_list = search(client, kb, "cats purring", file_name=["cats.txt"])
    assert {hit["metadata"]["source"] for hit in as_list} == {"cats.txt"}
    assert search(client, kb, "cats purring", file_name="missing.txt") == []
    # Chatchat's clients send 1.0 ("no filter" on their scale): every hit is kept.
    assert len(search(client, kb, "cats purring", score_threshold=1.0, top_k=5)) == 2
    # Below 1 it is a minimum cosine similarity.
    strict = search(client, kb, "cats purring", score_threshold=0.3, top_k=5)
    assert [hit["metadata"]["source"] for hit in strict] == ["cats.txt"]


@pytest.mark.parametrize("query", ["", "   "])
def test_empty_query_returns_422(client: TestClient, kb: str, query: str) -> None:
    response = client.post(
        "/knowledge_base/search_docs", json={"knowledge_base_name": kb, "query": query}
    )
    assert response.status_code == 422
    assert response.json()["code"] == 422


def test_upload_without_files_returns_422(client: TestClient, kb: str) -> None:
    response = client.post("/knowledge_base/upload_docs", data={"knowledge_base_name": kb})
    assert response.status_code == 422


def test_same_name_fails_without_override_and_is_reindexed_with_it(
    client: TestClient, kb: str
) -> None:
    uploaded(client, kb, [("notes.txt", CATS.encode())])
    results = uploaded(
        client, kb, [("notes.txt", ROCKETS.encode()), ("rockets.md", ROCKETS.encode())]
    )
    assert results["notes.txt"]["status"] == "failed"
    assert results["notes.txt"]["reason"]
    assert results["rockets.md"]["status"] == "indexed"
    assert search(client, kb, "cat", file_name="notes.txt")[0]["page_content"] == CATS

    replaced = uploaded(client, kb, [("notes.txt", ROCKETS.encode())], override=True)
    assert replaced["notes.txt"]["status"] == "indexed"
    hit = search(client, kb, "rocket", file_name="notes.txt")[0]
    assert "propellant" in hit["page_content"]
    same = uploaded(client, kb, [("notes.txt", ROCKETS.encode())], override=True)
    assert same["notes.txt"]["status"] == "unchanged"


def test_to_vector_store_false_only_saves(client: TestClient, kb: str) -> None:
    results = uploaded(client, kb, [("cats.txt", CATS.encode())], to_vector_store=False)
    assert results["cats.txt"] == {
        "file_name": "cats.txt",
        "status": "saved",
        "chunks": 0,
        "reason": "",
    }
    listing = client.get("/knowledge_base/list_files", params={"knowledge_base_name": kb}).json()
    assert listing["data"] == []  # Chatchat's list: files the knowledge base knows
    saved = listing["files"][0]
    assert (saved["status"], saved["chunk_count"], saved["loader"]) == ("saved", 0, "")
    assert saved["size"] == len(CATS.encode())
    assert search(client, kb, "cats") == []

    update = client.post(
        "/knowledge_base/update_docs", json={"knowledge_base_name": kb, "file_names": ["cats.txt"]}
    )
    assert update.json()["data"]["files"][0]["status"] == "indexed"
    assert search(client, kb, "cats")[0]["metadata"]["source"] == "cats.txt"


def test_custom_chunk_size_makes_smaller_chunks(client: TestClient, kb: str) -> None:
    text = " ".join(f"Sentence number {i} talks about a different topic." for i in range(40))
    default = uploaded(client, kb, [("default.txt", text.encode())])
    small = uploaded(client, kb, [("small.txt", text.encode())], chunk_size=100, chunk_overlap=10)
    assert small["small.txt"]["chunks"] > default["default.txt"]["chunks"]
    chunks = client.get(
        "/knowledge_base/list_file_chunks",
        params={"knowledge_base_name": kb, "file_name": "small.txt"},
    ).json()["data"]
    assert len(chunks) == small["small.txt"]["chunks"]
    assert all(len(chunk["text"]) <= 100 for chunk in chunks)
    listing = client.get("/knowledge_base/list_files", params={"knowledge_base_name": kb}).json()
    details = {info["file_name"]: info for info in listing["files"]}
    assert (details["small.txt"]["chunk_size"], details["small.txt"]["chunk_overlap"]) == (100, 10)

    status, body = upload(client, kb, [("x.txt", b"x")], chunk_size=100, chunk_overlap=200)
    assert status == 422
    assert body["detail"]["code"] == "invalid_input"
    assert not any(name == "x.txt" for name in listing["data"])


@pytest.mark.parametrize("preview", [True, False])
def test_download_returns_the_uploaded_bytes(client: TestClient, kb: str, preview: bool) -> None:
    data = "中文说明：猫会发出呼噜声。".encode()
    uploaded(client, kb, [("说明.txt", data)], to_vector_store=False)
    response = client.get(
        "/knowledge_base/download_doc",
        params={"knowledge_base_name": kb, "file_name": "说明.txt", "preview": preview},
    )
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"].startswith("text/plain")
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("inline" if preview else "attachment")
    assert f"filename*=utf-8''{quote('说明.txt')}" in disposition


def test_download_of_unknown_file_returns_404(client: TestClient, kb: str) -> None:
    response = client.get(
        "/knowledge_base/download_doc", params={"knowledge_base_name": kb, "file_name": "no.txt"}
    )
    assert response.status_code == 404
    assert response.json()["detail"]["code"] == "file_not_found"


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/tmp/evil.txt", ".evil"])
def test_traversal_names_never_leave_the_kb(
    client: TestClient, kb: str, api_settings: Settings, tmp_path: Path, name: str
) -> None:
    status, body = upload(client, kb, [(name, b"evil"), ("fine.txt", CATS.encode())])
    assert status == 200
    assert body["data"]["failed_files"].keys() == {name}
    results = {result["file_name"]: result["status"] for result in body["data"]["files"]}
    assert results == {name: "failed", "fine.txt": "indexed"}
    download = client.get(
        "/knowledge_base/download_doc", params={"knowledge_base_name": kb, "file_name": name}
    )
    assert download.status_code in (404, 422)
    outside = client.get(
        "/knowledge_base/download_doc",
        params={"knowledge_base_name": kb, "file_name": "../../info.db"},
    )
    assert outside.status_code == 422
    written = {path.name for path in tmp_path.rglob("*") if path.is_file()}
    assert "evil.txt" not in written
    assert ".evil" not in written
    content = api_settings.kb_root / kb / "content"
    assert sorted(path.name for path in content.rglob("*")) == ["fine.txt"]
