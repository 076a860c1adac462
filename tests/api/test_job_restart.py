"""An API process killed (SIGKILL) in the middle of a background upload: the next process
resumes the job and finishes it, with exactly the chunks a clean ingest gives and a
consistent knowledge base."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from kb_server.db.engine import Database, database_url
from kb_server.failpoints import FAILPOINT_ENV
from kb_server.knowledge.jobs import JobStore
from kb_server.knowledge.maintenance import KbMaintenance
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.settings import load_settings
from tests.api.conftest import MINILM
from tests.conftest import BackendOptions, backend_env
from tests.servers import api_process

pytestmark = pytest.mark.both_backends

FILES = {
    f"topic{i}.md": f"# 第{i}篇\n\n"
    + " ".join(f"Paragraph {j} of note {i}: 第{i}篇笔记的第{j}段。" for j in range(40))
    for i in range(4)
}


def chunk_texts(client: httpx.Client, kb: str) -> dict[str, list[str]]:
    names = client.get("/knowledge_base/list_files", params={"knowledge_base_name": kb})
    texts = {}
    for name in names.json()["data"]:
        chunks = client.get(
            "/knowledge_base/list_file_chunks",
            params={"knowledge_base_name": kb, "file_name": name},
        )
        texts[name] = [chunk["text"] for chunk in chunks.json()["data"]]
    return texts


def upload(client: httpx.Client, kb: str, **form: Any) -> httpx.Response:
    return client.post(
        "/knowledge_base/upload_docs",
        data={"knowledge_base_name": kb, **{key: str(value) for key, value in form.items()}},
        files=[("files", (name, text.encode(), "text/markdown")) for name, text in FILES.items()],
    )


def test_a_job_killed_with_its_process_is_finished_by_the_next_one(
    tmp_path: Path, backend_options: BackendOptions
) -> None:
    kb_root = tmp_path / "kb_root"
    env = {
        "HF_HUB_OFFLINE": "1",
        "KB_KB_ROOT": str(kb_root),
        "KB_EMBEDDING__MODEL": MINILM,
        "KB_OCR__ENABLED": "false",
        "KB_JOBS__FILES_PER_STEP": "1",
        "KB_JOBS__HEARTBEAT_S": "0.5",
        **backend_env(backend_options),
    }
    log = tmp_path / "api.log"
    with api_process({**env, FAILPOINT_ENV: "jobs.file_stored"}, log) as (process, base):
        client = httpx.Client(base_url=base, timeout=120)
        for kb in ("crash", "clean"):
            created = client.post(
                "/knowledge_base/create_knowledge_base", json={"knowledge_base_name": kb}
            )
            assert created.status_code == 200, created.text
        accepted = upload(client, "crash", background=True)
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["data"]["job_id"]
        assert process.wait(timeout=120) == -signal.SIGKILL

    settings = load_settings(kb_root=kb_root, embedding={"model": MINILM}, **backend_options)
    store = JobStore(Database(database_url(settings)))
    killed = store.get(job_id)
    assert killed.status == "running"
    first, *rest = (file.stage for file in killed.files)
    assert first == "stored"
    assert "stored" not in rest

    with api_process(env, log) as (_, base):
        client = httpx.Client(base_url=base, timeout=120)
        deadline = time.monotonic() + 180
        while (job := client.get(f"/knowledge_base/jobs/{job_id}").json()["data"])["status"] in (
            "queued",
            "running",
        ):
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        assert job["status"] == "succeeded", job
        assert [file["stage"] for file in job["files"]] == ["stored"] * len(FILES)
        assert upload(client, "clean", background=False).status_code == 200
        crashed_texts = chunk_texts(client, "crash")
        clean_texts = chunk_texts(client, "clean")
        events = client.get(f"/knowledge_base/jobs/{job_id}/events").text

    assert crashed_texts == clean_texts
    assert sum(map(len, crashed_texts.values())) == job["chunks_stored"] > len(FILES)
    assert "resumed from" in events
    service = KnowledgeBaseService(settings)
    found = KbMaintenance(service).check("crash")
    assert found.consistent, found
    crash_kb = service.kb_row("crash")
    assert len(service.store_for(crash_kb).ids()) == job["chunks_stored"]
