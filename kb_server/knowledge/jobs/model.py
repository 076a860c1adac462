"""What a job is to its readers: its files' stages, counts, progress and ETA; its errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from kb_server.errors import KbError

JOB_KINDS = ("upload", "update", "rebuild")
ACTIVE_JOB_STATUSES = ("queued", "running")
# A file's stages in order; it ends in one of FINISHED_FILE_STAGES.
FILE_STAGE_ORDER = ("queued", "loading", "ocr", "splitting", "embedding", "stored")
FINISHED_FILE_STAGES = frozenset({"stored", "unchanged", "failed", "cancelled"})


class JobNotFoundError(KbError):
    code = "job_not_found"
    http_status = 404

    def __init__(self, job_id: str) -> None:
        super().__init__(f"ingestion job {job_id!r} does not exist")
        self.job_id = job_id


class JobStateError(KbError):
    """Cancel of an ended job, retry of a running one, ..."""

    code = "job_state"
    http_status = 409

    def __init__(self, job_id: str, reason: str) -> None:
        super().__init__(f"ingestion job {job_id!r}: {reason}")
        self.job_id = job_id


def as_utc(moment: datetime) -> datetime:
    # SQLite gives back naive datetimes; every stored time is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class JobFile:
    seq: int
    file_name: str
    stage: str
    detail: str
    done: int
    total: int
    chunks: int


@dataclass(frozen=True)
class JobEvent:
    id: int
    file_name: str
    stage: str
    detail: str
    done: int
    total: int
    created_at: datetime


@dataclass(frozen=True)
class Job:
    id: str
    kb_name: str
    kind: str
    status: str
    options: dict[str, Any]
    error: str
    cancel_requested: bool
    worker: str
    heartbeat_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    files: list[JobFile] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status not in ACTIVE_JOB_STATUSES

    def counts(self) -> dict[str, int]:
        """Files per stage (every stage named, zeros included)."""
        stages = (*FILE_STAGE_ORDER, "unchanged", "failed", "cancelled")
        counts = dict.fromkeys(stages, 0)
        for file in self.files:
            counts[file.stage] = counts.get(file.stage, 0) + 1
        return counts

    def progress(self) -> float:
        """Share of the work done, in [0, 1]: ended files count whole, a file being embedded
        by the share of its group's chunks embedded."""
        if not self.files:
            return 1.0 if self.finished else 0.0
        done = 0.0
        for file in self.files:
            if file.stage in FINISHED_FILE_STAGES:
                done += 1
            elif file.stage == "embedding" and file.total:
                done += file.done / file.total
        return done / len(self.files)

    def eta_seconds(self, now: datetime) -> float | None:
        """Seconds left, from the time spent so far and the share of work done; None until
        some work is done."""
        if self.finished:
            return 0.0
        progress = self.progress()
        if self.started_at is None or progress <= 0:
            return None
        elapsed = (as_utc(now) - as_utc(self.started_at)).total_seconds()
        return max(0.0, elapsed * (1 - progress) / progress)

    def chunks_stored(self) -> int:
        return sum(file.chunks for file in self.files if file.stage in ("stored", "unchanged"))
