"""Ingestion jobs through the API: 202 with a job id, GET with stages, counts and ETA, the
event stream (with replay after an id), cancel, retry, and the inline path left as it was."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kb_server.api.app import create_app
from kb_server.settings import JobSettings, Settings
from tests.api.test_kb_upload import CATS, ROCKETS, FileSpec, search, upload
from tests.unit.documents.rendering import ScanPage, render_text_image, write_pdf

pytestmark = pytest.mark.both_backends

FILES: list[FileSpec] = [("cats.txt", CATS.encode()), ("rockets.md", ROCKETS.encode())]


@pytest.fixture
def kb(client: TestClient) -> str:
    response = client.post(
        "/knowledge_base/create_knowledge_base", json={"knowledge_base_name": "docs"}
    )
    assert response.status_code == 200
    return "docs"


def get_job(client: TestClient, job_id: str) -> dict[str, Any]:
    response = client.get(f"/knowledge_base/jobs/{job_id}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def wait_for_end(client: TestClient, job_id: str, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while (job := get_job(client, job_id))["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    return job


def stream(client: TestClient, job_id: str, **params: Any) -> list[tuple[int, dict[str, Any]]]:
    """(id, data) of each event of a job's stream, read until the server ends it."""
    response = client.get(f"/knowledge_base/jobs/{job_id}/events", params=params)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = []
    for block in response.text.split("\n\n"):
        lines = [line for line in block.splitlines() if not line.startswith(":")]
        if not lines:
            continue
        assert [line.partition(": ")[0] for line in lines] == ["id", "data"], block
        data = json.loads(lines[1].removeprefix("data: "))
        events.append((int(lines[0].removeprefix("id: ")), data))
    return events


def test_a_background_upload_answers_202_and_the_job_reports_its_stages(
    client: TestClient, kb: str
) -> None:
    status, body = upload(client, kb, FILES, background=True)

    assert status == 202
    assert body["code"] == 202
    job_id = body["data"]["job_id"]
    assert [f["status"] for f in body["data"]["files"]] == ["saved", "saved"]
    job = wait_for_end(client, job_id)
    assert job["status"] == "succeeded"
    assert job["kind"] == "upload"
    assert job["knowledge_base_name"] == kb
    assert [(f["file_name"], f["stage"]) for f in job["files"]] == [
        ("cats.txt", "stored"),
        ("rockets.md", "stored"),
    ]
    assert job["counts"]["stored"] == 2
    assert job["files_total"] == 2
    assert job["progress"] == 1.0
    assert job["eta_seconds"] == 0.0
    assert job["chunks_stored"] == sum(f["chunks"] for f in job["files"]) > 0
    assert search(client, kb, "rocket engine thrust")[0]["metadata"]["source"] == "rockets.md"

    events = stream(client, job_id)
    ids = [event_id for event_id, _ in events]
    assert ids == sorted(ids)
    for name, _ in FILES:
        assert [e["stage"] for _, e in events if e["file_name"] == name] == [
            "queued",
            "loading",
            "splitting",
            "embedding",
            "stored",
        ]
    assert events[-1][1]["stage"] == "succeeded"
    # Replay after an id, by query or by the Last-Event-ID header of a reconnecting client.
    assert stream(client, job_id, after=ids[2]) == events[3:]
    response = client.get(
        f"/knowledge_base/jobs/{job_id}/events", headers={"Last-Event-ID": str(ids[-2])}
    )
    assert response.text.count("id: ") == 1


def test_the_stream_follows_a_running_job_through_its_ocr_pages(
    client: TestClient, kb: str, cjk_font_path: Path, tmp_path: Path
) -> None:
    scan = write_pdf(
        tmp_path / "scan.pdf",
        [ScanPage(render_text_image(["扫描件：熊猫吃竹子", "第二行文字"], cjk_font_path))] * 2,
        cjk_font_path,
    )
    files = [*FILES[:1], ("scan.pdf", scan.read_bytes())]
    job_id = upload(client, kb, files, background=True)[1]["data"]["job_id"]

    # Opened at once, while the job runs: the stream ends with the job.
    events = [event for _, event in stream(client, job_id)]

    assert [e["stage"] for e in events if e["file_name"] == "scan.pdf"] == [
        "queued",
        "loading",
        "ocr",
        "ocr",
        "splitting",
        "embedding",
        "stored",
    ]
    ocr = [e["detail"] for e in events if e["stage"] == "ocr"]
    assert ocr == ["OCR page 1/2", "OCR page 2/2"]
    assert events[-1]["stage"] == "succeeded"
    assert search(client, kb, "熊猫吃竹子")[0]["metadata"]["source"] == "scan.pdf"


def test_small_uploads_stay_inline_and_many_files_become_a_job(client: TestClient, kb: str) -> None:
    status, body = upload(client, kb, FILES[:1])
    assert status == 200
    assert "job_id" not in body["data"]

    many = [(f"note{i}.txt", f"note number {i} about volcanoes".encode()) for i in range(21)]
    status, body = upload(client, kb, many)
    assert status == 202
    assert wait_for_end(client, body["data"]["job_id"])["counts"]["stored"] == 21

    status, body = upload(client, kb, many[:3], background=False, override=True)
    assert status == 200
    assert [f["status"] for f in body["data"]["files"]] == ["unchanged"] * 3


def test_jobs_are_listed_newest_first(client: TestClient, kb: str) -> None:
    first = upload(client, kb, FILES[:1], background=True)[1]["data"]["job_id"]
    wait_for_end(client, first)
    second = upload(client, kb, FILES[1:], background=True, override=True)[1]["data"]["job_id"]
    wait_for_end(client, second)

    response = client.get("/knowledge_base/jobs", params={"knowledge_base_name": kb})

    assert response.status_code == 200
    assert [job["id"] for job in response.json()["data"]] == [second, first]


def test_update_and_rebuild_run_as_jobs_when_asked(client: TestClient, kb: str) -> None:
    assert upload(client, kb, FILES)[0] == 200
    response = client.post(
        "/knowledge_base/update_docs",
        params={"background": "true"},
        json={"knowledge_base_name": kb, "file_names": ["cats.txt"]},
    )
    assert response.status_code == 202
    job = wait_for_end(client, response.json()["data"]["job_id"])
    assert (job["kind"], job["files"][0]["stage"]) == ("update", "unchanged")

    response = client.post(
        "/knowledge_base/recreate_vector_store",
        params={"background": "true"},
        json={"knowledge_base_name": kb, "force": True},
    )
    assert response.status_code == 202
    job = wait_for_end(client, response.json()["data"]["job_id"])
    assert job["kind"] == "rebuild"
    assert job["status"] == "succeeded"
    assert sorted((f["file_name"], f["stage"]) for f in job["files"]) == [
        ("cats.txt", "stored"),
        ("rockets.md", "stored"),
    ]
    assert search(client, kb, "cat purrs")[0]["metadata"]["source"] == "cats.txt"


def test_unknown_jobs_are_404_and_ended_jobs_refuse_cancel(client: TestClient, kb: str) -> None:
    for path in ("", "/events"):
        response = client.get(f"/knowledge_base/jobs/{'0' * 32}{path}")
        assert response.status_code == 404
        assert response.json()["detail"]["code"] == "job_not_found"
    response = client.post("/knowledge_base/jobs/nope/cancel")
    assert response.status_code == 404

    job_id = upload(client, kb, FILES[:1], background=True)[1]["data"]["job_id"]
    wait_for_end(client, job_id)
    response = client.post(f"/knowledge_base/jobs/{job_id}/cancel")
    assert response.status_code == 409
    assert response.json()["detail"]["code"] == "job_state"
    # Nothing failed: nothing to retry.
    assert client.post(f"/knowledge_base/jobs/{job_id}/retry").status_code == 409


def test_retry_requeues_the_failed_file(client: TestClient, kb: str) -> None:
    status, body = upload(client, kb, [("bad.docx", b"not a word file")], background=True)
    assert status == 202
    job_id = body["data"]["job_id"]
    job = wait_for_end(client, job_id)
    assert job["files"][0]["stage"] == "failed"
    assert job["files"][0]["detail"]

    response = client.post(f"/knowledge_base/jobs/{job_id}/retry")

    assert response.status_code == 200
    assert response.json()["data"]["status"] in ("queued", "running", "succeeded")
    again = wait_for_end(client, job_id)
    assert again["files"][0]["stage"] == "failed"  # the file is still broken
    retried = [e for _, e in stream(client, job_id) if e["stage"] == "queued" and e["file_name"]]
    assert len(retried) == 2


def test_a_large_rebuild_runs_as_a_job_behind_chatchats_stream(
    api_settings: Settings,
) -> None:
    settings = api_settings.model_copy(update={"jobs": JobSettings(inline_max_files=1)})
    with TestClient(create_app(settings)) as client:
        kb = "big"
        created = client.post(
            "/knowledge_base/create_knowledge_base", json={"knowledge_base_name": kb}
        )
        assert created.status_code == 200
        assert upload(client, kb, FILES, background=False)[0] == 200

        response = client.post(
            "/knowledge_base/recreate_vector_store", json={"knowledge_base_name": kb}
        )

        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        blocks = [block for block in response.text.split("\n\n") if block.startswith("data: ")]
        events = [json.loads(block.removeprefix("data: ")) for block in blocks]
        assert [(e["doc"], e["status"], e["finished"], e["total"]) for e in events[:-1]] == [
            ("cats.txt", "unchanged", 1, 2),
            ("rockets.md", "unchanged", 2, 2),
        ]
        assert events[-1]["msg"] == "done"
        summary = events[-1]["summary"]
        assert (summary["unchanged"], summary["indexed"], summary["failed"]) == (2, 0, 0)
        job = get_job(client, summary["job_id"])
        assert (job["kind"], job["status"]) == ("rebuild", "succeeded")
