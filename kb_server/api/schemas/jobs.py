"""Bodies of the ingestion-job routes (/knowledge_base/jobs)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from kb_server.api.schemas.knowledge_base import DocsResult
from kb_server.db.models import utc_now
from kb_server.knowledge.jobs import Job, JobEvent
from kb_server.knowledge.jobs.model import as_utc


class JobFileOut(BaseModel):
    file_name: str
    stage: str = Field(
        description="queued, loading, ocr, splitting, embedding, stored, unchanged, failed "
        "or cancelled"
    )
    detail: str = Field(description='"OCR page 2/5", a failure\'s reason, ...')
    done: int = Field(description="OCR: pages read; embedding: chunks of its group embedded")
    total: int
    chunks: int = Field(description="chunks stored for the file")


class JobOut(BaseModel):
    id: str
    knowledge_base_name: str
    kind: str = Field(description="upload, update or rebuild")
    status: str = Field(description="queued, running, succeeded, failed or cancelled")
    error: str
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, int] = Field(description="files per stage")
    files_total: int
    chunks_stored: int
    progress: float = Field(description="share of the work done, 0 to 1")
    eta_seconds: float | None = Field(description="None until some work is done")
    files: list[JobFileOut]

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(
            id=job.id,
            knowledge_base_name=job.kb_name,
            kind=job.kind,
            status=job.status,
            error=job.error,
            cancel_requested=job.cancel_requested,
            created_at=as_utc(job.created_at),
            started_at=job.started_at and as_utc(job.started_at),
            finished_at=job.finished_at and as_utc(job.finished_at),
            counts=job.counts(),
            files_total=len(job.files),
            chunks_stored=job.chunks_stored(),
            progress=round(job.progress(), 4),
            eta_seconds=job.eta_seconds(utc_now()),
            files=[JobFileOut.model_validate(file, from_attributes=True) for file in job.files],
        )


class JobEventOut(BaseModel):
    """One event of a job's stream; ``file_name`` is empty for the job's own events
    (queued, running, embedding progress of a group, succeeded, failed, cancelled)."""

    id: int
    job_id: str
    file_name: str
    stage: str
    detail: str
    done: int
    total: int
    created_at: datetime

    @classmethod
    def of(cls, job_id: str, event: JobEvent) -> JobEventOut:
        return cls(
            id=event.id,
            job_id=job_id,
            file_name=event.file_name,
            stage=event.stage,
            detail=event.detail,
            done=event.done,
            total=event.total,
            created_at=as_utc(event.created_at),
        )


class JobAccepted(DocsResult):
    """An upload, update or rebuild running as a background job (HTTP 202)."""

    job_id: str
