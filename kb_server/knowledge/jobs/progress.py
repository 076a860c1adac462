"""An IngestProgress that records a job's stages in the database and stops it when asked."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from kb_server.failpoints import failpoint
from kb_server.knowledge.jobs.store import JobStore, StageChange

# Least seconds between two writes of embedding progress, and between two looks at whether
# the job was cancelled: bounds database traffic for large groups.
PROGRESS_INTERVAL_S = 0.5


class JobStopped(Exception):
    """Raised from a progress call to stop the ingest; ``status`` says what the job becomes.

    Raised only before a group of files is stored (loading, splitting, embedding), never
    after, so a group is either stored and recorded as such, or not stored at all.
    """

    def __init__(self, status: str) -> None:
        super().__init__(status)
        # cancelled (asked by a user), queued (this process is stopping), lost (another
        # process took the job over: this one stopped showing it is alive).
        self.status = status


class JobProgress:
    """Records a job's file stages; ``check`` raises JobStopped when the job must stop.

    Stage changes are written in batches, at most every PROGRESS_INTERVAL_S and at each
    ``flush`` (the runner flushes after each step): one transaction per file and stage made
    a job of many small files half again as slow as the same ingest without a job.
    """

    def __init__(
        self,
        store: JobStore,
        job_id: str,
        *,
        check: Callable[[], None],
        resumed: Collection[str] = (),
    ) -> None:
        self.store = store
        self.job_id = job_id
        self.check = check
        # Files a dead process had started: found unchanged now, they were stored by it.
        self.resumed = set(resumed)
        self._pending: list[StageChange] = []
        self._embedding: list[str] = []
        self._group_total = 0
        self._group_done = 0
        self._last_write = time.monotonic()

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        self._last_write = time.monotonic()
        self.store.record(self.job_id, pending)
        if any(change.stage == "stored" for change in pending):
            failpoint("jobs.file_stored")

    def _record(self, change: StageChange) -> None:
        self._pending.append(change)
        if time.monotonic() - self._last_write >= PROGRESS_INTERVAL_S:
            self.flush()

    def files_planned(self, total: int) -> None:
        pass

    def file_stage(self, file_name: str, stage: str, done: int, total: int) -> None:
        self.check()
        detail = f"OCR page {done}/{total}" if stage == "ocr" else ""
        if stage == "embedding":
            self._embedding.append(file_name)
            detail = f"{total} chunks in this group"
        self._record(StageChange(file_name, stage, detail, done, total))

    def embedding_planned(self, total_chunks: int) -> None:
        if self._group_done >= self._group_total:
            self._group_total = self._group_done = 0
        self._group_total += total_chunks

    def chunks_embedded(self, count: int) -> None:
        self._group_done += count
        now = time.monotonic()
        if self._group_done < self._group_total and now - self._last_write >= PROGRESS_INTERVAL_S:
            self.flush()
            self.store.embedding_progress(
                self.job_id, self._embedding, self._group_done, self._group_total
            )
        if self._group_done < self._group_total:
            self.check()

    def file_done(self, file_name: str, status: str, reason: str = "", chunks: int = 0) -> None:
        # Never raises: the file's group is stored, and that must be recorded.
        stage = {"indexed": "stored", "failed": "failed"}.get(status, "unchanged")
        if stage == "unchanged" and file_name in self.resumed:
            stage = "stored"
        self._record(StageChange(file_name, stage, reason, chunks=chunks))
        if file_name in self._embedding:
            self._embedding.remove(file_name)
