"""recreate_vector_store: progress as Server-Sent Events, incremental by default."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from kb_server.api.container import Container
from kb_server.api.routers.knowledge_base import RecreateRun
from kb_server.settings import Settings
from tests.api.test_kb_upload import CATS, ROCKETS, search, uploaded

pytestmark = pytest.mark.both_backends


def recreate(client: TestClient, kb: str, **extra: Any) -> list[dict[str, Any]]:
    """The events of a recreate_vector_store call, each block checked to be one data line."""
    response = client.post(
        "/knowledge_base/recreate_vector_store", json={"knowledge_base_name": kb, **extra}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = [block for block in response.text.split("\n\n") if block.strip()]
    assert all(block.startswith("data: ") and "\n" not in block for block in blocks)
    return [json.loads(block.removeprefix("data: ")) for block in blocks]


@pytest.fixture
def kb(client: TestClient) -> str:
    response = client.post(
        "/knowledge_base/create_knowledge_base", json={"knowledge_base_name": "docs"}
    )
    assert response.status_code == 200
    uploaded(client, "docs", [("cats.txt", CATS.encode()), ("old.txt", b"soon gone")])
    return "docs"


@pytest.fixture
def content(api_settings: Settings, kb: str) -> Path:
    return api_settings.kb_root / kb / "content"


def test_recreate_streams_progress_and_a_summary(
    client: TestClient, kb: str, content: Path
) -> None:
    (content / "rockets.md").write_text(ROCKETS, encoding="utf-8")
    (content / "old.txt").unlink()

    events = recreate(client, kb)
    *progress, last = events
    assert [event["doc"] for event in progress] == ["cats.txt", "rockets.md"]
    assert [event["finished"] for event in progress] == [1, 2]
    assert all(event["code"] == 200 and event["total"] == 2 for event in events)
    assert {event["doc"]: event["status"] for event in progress} == {
        "cats.txt": "unchanged",
        "rockets.md": "indexed",
    }
    assert last["msg"] == "done"
    summary = last["summary"]
    assert (summary["indexed"], summary["unchanged"], summary["failed"]) == (1, 1, 0)
    assert summary["removed"] == 1
    assert summary["chunks_embedded"] >= 1
    assert search(client, kb, "spacecraft thrust")[0]["metadata"]["source"] == "rockets.md"

    again = recreate(client, kb)[-1]["summary"]
    assert (again["unchanged"], again["indexed"], again["chunks_embedded"]) == (2, 0, 0)


def test_forced_recreate_embeds_everything(client: TestClient, kb: str) -> None:
    summary = recreate(client, kb, force=True)[-1]["summary"]
    assert (summary["indexed"], summary["unchanged"]) == (2, 0)
    assert search(client, kb, "cats")[0]["metadata"]["source"] == "cats.txt"


def test_recreate_with_chunk_settings_splits_every_file_again(client: TestClient, kb: str) -> None:
    events = recreate(client, kb, chunk_size=60, chunk_overlap=10)
    assert events[-1]["summary"]["indexed"] == 2  # both files, although their bytes are unchanged
    chunks = client.get(
        "/knowledge_base/list_file_chunks",
        params={"knowledge_base_name": kb, "file_name": "cats.txt"},
    ).json()["data"]
    assert len(chunks) > 1
    assert all(len(chunk["text"]) <= 60 for chunk in chunks)


def test_a_folder_without_a_row_becomes_a_kb(client: TestClient, api_settings: Settings) -> None:
    folder = api_settings.kb_root / "samples" / "content"
    folder.mkdir(parents=True)
    (folder / "cats.txt").write_text(CATS, encoding="utf-8")
    events = recreate(client, "samples")
    assert events[-1]["summary"]["indexed"] == 1
    assert client.get("/knowledge_base/list_knowledge_bases").json()["data"] == ["samples"]
    assert search(client, "samples", "cats")[0]["metadata"]["source"] == "cats.txt"


def test_an_error_during_the_run_ends_the_stream_with_its_code(
    client: TestClient, kb: str, content: Path
) -> None:
    (content / "bad:name.txt").write_text("x", encoding="utf-8")
    last = recreate(client, kb)[-1]
    assert last["code"] == 422
    assert last["detail"]["code"] == "invalid_name"
    listing = client.get("/knowledge_base/list_files", params={"knowledge_base_name": kb})
    assert listing.json()["data"] == ["cats.txt", "old.txt"]
    assert search(client, kb, "cats")[0]["metadata"]["source"] == "cats.txt"


def test_invalid_kb_name_returns_422(client: TestClient) -> None:
    response = client.post(
        "/knowledge_base/recreate_vector_store", json={"knowledge_base_name": "../x"}
    )
    assert response.status_code == 422
    assert response.json()["detail"]["code"] == "invalid_name"


def test_rebuild_finishes_when_the_client_goes_away(
    app: FastAPI, client: TestClient, kb: str, content: Path
) -> None:
    # More files than the event queue holds: a worker waiting on a gone client would stall.
    for i in range(80):
        (content / f"note{i:02d}.txt").write_text(f"Note {i} about topic {i}.", encoding="utf-8")
    container: Container = app.state.container
    run = RecreateRun(container.maintenance, kb, None, True, None)

    lines = run.lines()
    assert next(lines).startswith("data: ")
    lines.close()  # what the response does when the client goes away
    workers = [thread for thread in threading.enumerate() if thread.name == f"recreate-{kb}"]
    for worker in workers:
        worker.join(timeout=20)
        assert not worker.is_alive()
    summary = recreate(client, kb)[-1]["summary"]
    assert (summary["unchanged"], summary["indexed"], summary["failed"]) == (82, 0, 0)
