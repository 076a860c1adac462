"""Ingestion jobs on a real database, FAISS or pgvector, the MiniLM model and RapidOCR: stages in
order (OCR pages included), cancel, retry, and taking over a job whose process died."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from kb_server.db.jobs import IngestJobFileRow, IngestJobRow
from kb_server.db.models import utc_now
from kb_server.embedding.base import Embedder
from kb_server.knowledge.jobs import (
    Job,
    JobFile,
    JobNotFoundError,
    JobRunner,
    JobStateError,
    JobStore,
)
from kb_server.knowledge.maintenance import KbMaintenance
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.settings import JobSettings, Settings, load_settings
from tests.conftest import BackendOptions
from tests.unit.conftest import MINILM
from tests.unit.documents.rendering import ScanPage, render_text_image, write_pdf

pytestmark = pytest.mark.both_backends

KB = "jobs"
NOTES = "火山喷发时，岩浆从地下涌出，冷却后形成玄武岩。Lava cools into basalt."
SCAN_ONE = ["扫描的第一页", "熊猫吃竹子"]
SCAN_TWO = ["扫描的第二页", "长城很长"]


@pytest.fixture
def ocr_service(
    tmp_path: Path, embedder: Embedder, backend_options: BackendOptions
) -> KnowledgeBaseService:
    """A service with OCR on (the session's RapidOCR engine: same OCR settings)."""
    settings = load_settings(
        kb_root=tmp_path / "kb_root", embedding={"model": MINILM}, **backend_options
    )
    service = KnowledgeBaseService(settings, embedder_provider=lambda _: embedder)
    service.create_kb(KB)
    return service


def make_runner(service: KnowledgeBaseService, **options: float) -> JobRunner:
    settings = JobSettings.model_validate({"files_per_step": 1, "poll_s": 0.05, **options})
    return JobRunner(JobStore(service.db), service, KbMaintenance(service), settings)


def save(service: KnowledgeBaseService, name: str, data: bytes) -> None:
    service.save_file(KB, name, data, override=True)


def run_now(runner: JobRunner, job_id: str) -> Job:
    """Claim and run a job in this thread."""
    assert runner.store.claim(job_id, runner.worker)
    runner.run_job(job_id)
    return runner.store.get(job_id)


def stages(runner: JobRunner, job_id: str, file_name: str) -> list[str]:
    events = runner.store.events(job_id)
    return [event.stage for event in events if event.file_name == file_name]


def wait_for(condition: Callable[[], bool], deadline: float, poll_s: float = 0.05) -> None:
    """Poll ``condition`` until it holds; fail once ``deadline`` (time.monotonic) passes."""
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(poll_s)


def test_a_job_reports_every_stage_in_order_with_ocr_pages(
    ocr_service: KnowledgeBaseService, cjk_font_path: Path, tmp_path: Path
) -> None:
    save(ocr_service, "notes.txt", NOTES.encode())
    scan = write_pdf(
        tmp_path / "scan.pdf",
        [
            ScanPage(render_text_image(SCAN_ONE, cjk_font_path)),
            ["第二页有文字层：这一页不需要光学字符识别，文字可以直接读出来。"],
            ScanPage(render_text_image(SCAN_TWO, cjk_font_path)),
        ],
        cjk_font_path,
    )
    save(ocr_service, "scan.pdf", scan.read_bytes())
    save(ocr_service, "broken.pdf", b"%PDF-1.4 this is not a pdf")
    runner = make_runner(ocr_service)
    job_id = runner.submit(KB, "upload", ["notes.txt", "scan.pdf", "broken.pdf"], {})

    job = run_now(runner, job_id)

    assert job.status == "succeeded"
    assert stages(runner, job_id, "notes.txt") == [
        "queued",
        "loading",
        "splitting",
        "embedding",
        "stored",
    ]
    assert stages(runner, job_id, "scan.pdf") == [
        "queued",
        "loading",
        "ocr",
        "ocr",
        "splitting",
        "embedding",
        "stored",
    ]
    ocr = [e for e in runner.store.events(job_id) if e.stage == "ocr"]
    assert [(e.done, e.total, e.detail) for e in ocr] == [
        (1, 2, "OCR page 1/2"),
        (2, 2, "OCR page 2/2"),
    ]
    assert stages(runner, job_id, "broken.pdf") == ["queued", "loading", "failed"]
    by_name = {file.file_name: file for file in job.files}
    assert by_name["broken.pdf"].detail  # the reason
    assert by_name["scan.pdf"].chunks == len(ocr_service.list_chunks(KB, "scan.pdf")) > 0
    assert job.counts()["stored"] == 2
    assert job.counts()["failed"] == 1
    assert job.eta_seconds(utc_now()) == 0.0
    # The OCR'd text is searchable: the job stored what a scan holds.
    hits = ocr_service.search(KB, "熊猫吃竹子", top_k=1, search_mode="bm25")
    assert hits[0].chunk.file_name == "scan.pdf"
    events = runner.store.events(job_id)
    assert [e.id for e in events] == sorted(e.id for e in events)
    assert events[-1].stage == "succeeded"


def long_text(topic: str) -> str:
    return " ".join(f"{topic} sentence number {i} talks about {topic}." for i in range(150))


def test_cancel_stops_a_running_job_between_files(
    service: KnowledgeBaseService, kb_settings: Settings
) -> None:
    service.create_kb(KB)
    names = [f"part{i:02d}.txt" for i in range(12)]
    for name in names:
        save(service, name, long_text(name).encode())
    runner = make_runner(service)
    runner.start()
    try:
        job_id = runner.submit(KB, "upload", names, {})
        deadline = time.monotonic() + 120
        wait_for(lambda: "stored" in stages(runner, job_id, names[0]), deadline, 0.01)
        runner.store.request_cancel(job_id)
        wait_for(lambda: runner.store.get(job_id).finished, deadline)
    finally:
        runner.stop()

    job = runner.store.get(job_id)
    assert job.status == "cancelled"
    stored = [file.file_name for file in job.files if file.stage == "stored"]
    cancelled = [file.file_name for file in job.files if file.stage == "cancelled"]
    assert stored
    assert cancelled
    assert sorted(stored + cancelled) == names
    # What was stored is exactly what the KB holds; the cancelled files are only saved.
    assert sorted(info.file_name for info in service.list_files(KB)) == sorted(stored)
    found = KbMaintenance(service).check(KB)
    assert found.content_without_rows == sorted(cancelled)
    assert not found.chunks_without_vectors
    assert not found.chunks_without_keywords
    assert not found.vectors_without_chunks
    with pytest.raises(JobStateError):
        runner.store.request_cancel(job_id)


def test_cancelling_a_queued_job_ends_it_at_once(service: KnowledgeBaseService) -> None:
    service.create_kb(KB)
    save(service, "a.txt", b"alpha text")
    runner = make_runner(service)
    job_id = runner.submit(KB, "upload", ["a.txt"], {})

    runner.store.request_cancel(job_id)

    job = runner.store.get(job_id)
    assert job.status == "cancelled"
    assert [file.stage for file in job.files] == ["cancelled"]
    assert not runner.store.claim(job_id, runner.worker)
    assert service.list_files(KB) == []


def test_ended_jobs_are_deleted_after_keep_days_with_their_events(
    service: KnowledgeBaseService,
) -> None:
    service.create_kb(KB)
    runner = make_runner(service, keep_days=7)
    old, recent, queued = (runner.submit(KB, "upload", [], {}) for _ in range(3))
    for job_id in (old, recent):
        runner.store.finish(job_id, "succeeded")
    with service.db.transaction() as session:
        session.execute(
            update(IngestJobRow)
            .where(IngestJobRow.id == old)
            .values(finished_at=utc_now() - timedelta(days=8))
        )
    assert runner.store.events(old)

    assert runner.prune_old_jobs() == 1

    with pytest.raises(JobNotFoundError):
        runner.store.get(old)
    assert runner.store.events(old) == []
    assert [runner.store.get(job_id).status for job_id in (recent, queued)] == [
        "succeeded",
        "queued",
    ]
    assert make_runner(service, keep_days=0).prune_old_jobs() == 0


def test_retry_runs_the_failed_files_again(
    ocr_service: KnowledgeBaseService, cjk_font_path: Path, tmp_path: Path
) -> None:
    save(ocr_service, "good.txt", NOTES.encode())
    save(ocr_service, "report.pdf", b"%PDF-1.4 truncated")
    runner = make_runner(ocr_service)
    job_id = runner.submit(KB, "upload", ["good.txt", "report.pdf"], {})
    first = run_now(runner, job_id)
    assert [file.stage for file in first.files] == ["stored", "failed"]
    with pytest.raises(JobStateError):
        runner.store.request_cancel(job_id)
    fixed = write_pdf(
        tmp_path / "report.pdf",
        [["修好的报告：第三季度的收入比去年同期增长了百分之十二。"]],
        cjk_font_path,
    )
    save(ocr_service, "report.pdf", fixed.read_bytes())

    runner.store.retry(job_id)
    assert runner.store.get(job_id).status == "queued"
    again = run_now(runner, job_id)

    assert again.status == "succeeded"
    assert [file.stage for file in again.files] == ["stored", "stored"]
    assert stages(runner, job_id, "report.pdf")[-5:] == [
        "queued",
        "loading",
        "splitting",
        "embedding",
        "stored",
    ]
    assert stages(runner, job_id, "good.txt") == [
        "queued",
        "loading",
        "splitting",
        "embedding",
        "stored",
    ]
    with pytest.raises(JobStateError):
        runner.store.retry(job_id)  # nothing failed any more


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def set_running(service: KnowledgeBaseService, job_id: str, worker: str, age_s: float) -> None:
    with service.db.transaction() as session:
        session.execute(
            update(IngestJobRow)
            .where(IngestJobRow.id == job_id)
            .values(
                status="running",
                worker=worker,
                heartbeat_at=utc_now() - timedelta(seconds=age_s),
                started_at=utc_now() - timedelta(seconds=age_s),
            )
        )


def test_a_job_of_a_dead_process_is_taken_over_once(service: KnowledgeBaseService) -> None:
    service.create_kb(KB)
    runner = make_runner(service, heartbeat_s=1, stale_after_s=30)
    job_id = runner.submit(KB, "upload", [], {})
    host = socket.gethostname()
    now = utc_now()
    alive_here = f"{host}:{os.getppid()}"
    # A live process of this host, another host's process that reported recently: theirs.
    assert not runner.abandoned(alive_here, now - timedelta(seconds=10), now)
    assert not runner.abandoned("elsewhere:4242", now - timedelta(seconds=10), now)
    # Silent past stale_after_s, or gone from this host after two missed heartbeats: taken.
    assert runner.abandoned("elsewhere:4242", now - timedelta(seconds=31), now)
    gone = f"{host}:{dead_pid()}"
    assert runner.abandoned(gone, now - timedelta(seconds=3), now)
    assert not runner.abandoned(gone, now - timedelta(seconds=1), now)

    set_running(service, job_id, gone, age_s=3)
    seen = runner.store.get(job_id)
    other = make_runner(service)
    assert runner.store.claim(job_id, "me:1", was_worker=gone, was_heartbeat=seen.heartbeat_at)
    # A second claimer that saw the same state loses: claims are compare-and-swap.
    assert not other.store.claim(job_id, "me:2", was_worker=gone, was_heartbeat=seen.heartbeat_at)
    assert runner.store.get(job_id).worker == "me:1"


def test_a_resumed_job_stores_each_file_once(service: KnowledgeBaseService) -> None:
    service.create_kb(KB)
    names = ["one.txt", "two.txt", "three.txt"]
    for name in names:
        save(service, name, long_text(name).encode())
    runner = make_runner(service, heartbeat_s=1)
    job_id = runner.submit(KB, "upload", names, {})
    # A process stored one.txt (its job row still said embedding) and died.
    service.add_files(KB, ["one.txt"])
    chunks_before = {chunk.id for chunk in service.list_chunks(KB, "one.txt")}
    with service.db.transaction() as session:
        session.execute(
            update(IngestJobFileRow)
            .where(IngestJobFileRow.job_id == job_id, IngestJobFileRow.file_name == "one.txt")
            .values(stage="embedding")
        )
    set_running(service, job_id, f"{socket.gethostname()}:{dead_pid()}", age_s=5)

    runner.start()
    try:
        wait_for(lambda: runner.store.get(job_id).finished, time.monotonic() + 120)
    finally:
        runner.stop()

    job = runner.store.get(job_id)
    assert job.status == "succeeded"
    assert [file.stage for file in job.files] == ["stored", "stored", "stored"]
    assert {chunk.id for chunk in service.list_chunks(KB, "one.txt")} == chunks_before
    assert job.chunks_stored() == sum(info.chunk_count for info in service.list_files(KB))
    assert KbMaintenance(service).check(KB).consistent
    running = [e for e in runner.store.events(job_id) if e.stage == "running"]
    assert running[-1].detail.startswith("resumed from ")


def test_a_stopping_process_gives_its_job_back_and_the_next_one_finishes_it(
    service: KnowledgeBaseService,
) -> None:
    service.create_kb(KB)
    names = [f"part{i:02d}.txt" for i in range(8)]
    for name in names:
        save(service, name, long_text(name).encode())
    first = make_runner(service)
    first.start()
    job_id = first.submit(KB, "upload", names, {})
    deadline = time.monotonic() + 120
    wait_for(lambda: "stored" in stages(first, job_id, names[0]), deadline, 0.01)
    first.stop()

    released = first.store.get(job_id)
    assert (released.status, released.worker) == ("queued", "")
    assert [e.detail for e in first.store.events(job_id) if e.stage == "queued"][-1]

    second = make_runner(service, heartbeat_s=1)
    second.start()
    try:
        wait_for(lambda: second.store.get(job_id).finished, deadline)
    finally:
        second.stop()
    job = second.store.get(job_id)
    assert job.status == "succeeded"
    assert [file.stage for file in job.files] == ["stored"] * len(names)
    assert job.chunks_stored() == sum(info.chunk_count for info in service.list_files(KB))
    assert KbMaintenance(service).check(KB).consistent


def test_progress_and_eta_come_from_the_work_done_and_the_time_spent() -> None:
    started = utc_now() - timedelta(seconds=30)

    def job(*files: JobFile) -> Job:
        return Job(
            id="j",
            kb_name=KB,
            kind="upload",
            status="running",
            options={},
            error="",
            cancel_requested=False,
            worker="",
            heartbeat_at=None,
            created_at=started,
            started_at=started,
            finished_at=None,
            files=list(files),
        )

    def file(stage: str, done: int = 0, total: int = 0) -> JobFile:
        return JobFile(
            seq=0, file_name="f", stage=stage, detail="", done=done, total=total, chunks=0
        )

    now = started + timedelta(seconds=30)
    assert job(file("loading"), file("queued")).eta_seconds(now) is None
    # One file of four stored and another half embedded: 1.5 / 4 done in 30 s.
    halfway = job(file("stored"), file("embedding", 50, 100), file("queued"), file("queued"))
    assert halfway.progress() == pytest.approx(0.375)
    assert halfway.eta_seconds(now) == pytest.approx(50.0)
    assert halfway.counts()["queued"] == 2
