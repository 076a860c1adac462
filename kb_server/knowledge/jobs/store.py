"""Ingestion jobs in the database: create, read, record stages and events, cancel, retry,
finish (claims and heartbeats: leases.py).

Every change of a file's stage updates its row and appends an event in one transaction, so
the event stream and GET agree.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from kb_server.db.jobs import IngestJobEventRow, IngestJobFileRow, IngestJobRow
from kb_server.db.models import KnowledgeBase, utc_now
from kb_server.knowledge.jobs.leases import JobLeases, add_event, rowcount
from kb_server.knowledge.jobs.model import (
    ACTIVE_JOB_STATUSES,
    FINISHED_FILE_STAGES,
    Job,
    JobEvent,
    JobFile,
    JobNotFoundError,
    JobStateError,
)

# Stages a retry runs again.
RETRIED_STAGES = frozenset({"failed", "cancelled"})


@dataclass(frozen=True)
class StageChange:
    """A file of a job entering a stage."""

    file_name: str
    stage: str
    detail: str = ""
    done: int = 0
    total: int = 0
    # Set when the file ends stored or unchanged.
    chunks: int | None = None


class JobStore(JobLeases):
    """Jobs, their files and events in the database (claims and heartbeats: JobLeases)."""

    # -- creating and reading ----------------------------------------------------------------

    def create(
        self, kb_id: int, kind: str, file_names: Sequence[str], options: dict[str, Any]
    ) -> str:
        job_id = uuid.uuid4().hex
        with self.db.transaction() as session:
            session.add(
                IngestJobRow(
                    id=job_id, kb_id=kb_id, kind=kind, status="queued", options=options, error=""
                )
            )
            session.flush()
            add_event(session, job_id, "", "queued")
            for seq, name in enumerate(file_names):
                session.add(
                    IngestJobFileRow(job_id=job_id, seq=seq, file_name=name, stage="queued")
                )
                add_event(session, job_id, name, "queued")
        return job_id

    def get(self, job_id: str) -> Job:
        with self.db.session() as session:
            found = session.execute(
                select(IngestJobRow, KnowledgeBase.name)
                .join(KnowledgeBase, KnowledgeBase.id == IngestJobRow.kb_id)
                .where(IngestJobRow.id == job_id)
            ).first()
            if found is None:
                raise JobNotFoundError(job_id)
            row, kb_name = found
            return self._job(row, kb_name, row.files)

    def list_jobs(self, kb_id: int | None = None, limit: int = 50) -> list[Job]:
        """Jobs, newest first (of one KB when ``kb_id`` is given)."""
        query = select(IngestJobRow, KnowledgeBase.name).join(
            KnowledgeBase, KnowledgeBase.id == IngestJobRow.kb_id
        )
        if kb_id is not None:
            query = query.where(IngestJobRow.kb_id == kb_id)
        query = query.order_by(IngestJobRow.created_at.desc(), IngestJobRow.id).limit(limit)
        with self.db.session() as session:
            return [self._job(row, kb_name, row.files) for row, kb_name in session.execute(query)]

    def events(self, job_id: str, after: int = 0, limit: int = 500) -> list[JobEvent]:
        with self.db.session() as session:
            rows = session.scalars(
                select(IngestJobEventRow)
                .where(IngestJobEventRow.job_id == job_id, IngestJobEventRow.id > after)
                .order_by(IngestJobEventRow.id)
                .limit(limit)
            )
            return [
                JobEvent(
                    id=row.id,
                    file_name=row.file_name,
                    stage=row.stage,
                    detail=row.detail,
                    done=row.done,
                    total=row.total,
                    created_at=row.created_at,
                )
                for row in rows
            ]

    @staticmethod
    def _job(row: IngestJobRow, kb_name: str, files: Sequence[IngestJobFileRow]) -> Job:
        return Job(
            id=row.id,
            kb_name=kb_name,
            kind=row.kind,
            status=row.status,
            options=dict(row.options),
            error=row.error,
            cancel_requested=row.cancel_requested,
            worker=row.worker,
            heartbeat_at=row.heartbeat_at,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            files=[
                JobFile(
                    seq=file.seq,
                    file_name=file.file_name,
                    stage=file.stage,
                    detail=file.detail,
                    done=file.done,
                    total=file.total,
                    chunks=file.chunks,
                )
                for file in files
            ],
        )

    # -- progress ----------------------------------------------------------------------------

    def file_stage(
        self,
        job_id: str,
        file_names: Collection[str],
        stage: str,
        *,
        detail: str = "",
        done: int = 0,
        total: int = 0,
    ) -> None:
        """Move files to ``stage``, with one event each."""
        self.record(job_id, [StageChange(name, stage, detail, done, total) for name in file_names])

    def record(self, job_id: str, changes: Sequence[StageChange]) -> None:
        """Apply stage changes in order, with one event each, in one transaction; a file the
        job did not list yet (a rebuild finds what is in the folder) is added."""
        if not changes:
            return
        with self.db.transaction() as session:
            rows = {
                row.file_name: row
                for row in session.scalars(
                    select(IngestJobFileRow).where(IngestJobFileRow.job_id == job_id)
                )
            }
            next_seq = max((row.seq for row in rows.values()), default=-1) + 1
            for change in changes:
                row = rows.get(change.file_name)
                if row is None:
                    row = IngestJobFileRow(job_id=job_id, seq=next_seq, file_name=change.file_name)
                    rows[change.file_name] = row
                    next_seq += 1
                    session.add(row)
                row.stage, row.detail = change.stage, change.detail
                row.done, row.total = change.done, change.total
                if change.chunks is not None:
                    row.chunks = change.chunks
                row.updated_at = utc_now()
                add_event(
                    session,
                    job_id,
                    change.file_name,
                    change.stage,
                    change.detail,
                    change.done,
                    change.total,
                )

    def embedding_progress(
        self, job_id: str, file_names: Collection[str], done: int, total: int
    ) -> None:
        """Chunks of the current group embedded so far: the group's files and one event."""
        with self.db.transaction() as session:
            session.execute(
                update(IngestJobFileRow)
                .where(
                    IngestJobFileRow.job_id == job_id,
                    IngestJobFileRow.file_name.in_(list(file_names)),
                    IngestJobFileRow.stage == "embedding",
                )
                .values(done=done, total=total, updated_at=utc_now())
            )
            add_event(session, job_id, "", "embedding", f"{done}/{total} chunks", done, total)

    # -- cancel and retry --------------------------------------------------------------------

    def request_cancel(self, job_id: str) -> None:
        """A queued job is cancelled at once; a running one stops at its next check."""
        job = self.get(job_id)
        if job.status not in ACTIVE_JOB_STATUSES:
            raise JobStateError(job_id, f"it has already ended ({job.status})")
        with self.db.transaction() as session:
            cancelled = session.execute(
                update(IngestJobRow)
                .where(IngestJobRow.id == job_id, IngestJobRow.status == "queued")
                .values(status="cancelled", finished_at=utc_now())
            )
            if rowcount(cancelled):
                self._end_files(session, job_id, "cancelled", "cancelled before it started")
                add_event(session, job_id, "", "cancelled")
                return
            session.execute(
                update(IngestJobRow)
                .where(IngestJobRow.id == job_id, IngestJobRow.status == "running")
                .values(cancel_requested=True)
            )
            add_event(session, job_id, "", "cancelling")

    def retry(self, job_id: str) -> None:
        """Queue an ended job again over its failed and cancelled files (a rebuild: whole)."""
        job = self.get(job_id)
        if job.status in ACTIVE_JOB_STATUSES:
            raise JobStateError(job_id, f"it has not ended ({job.status})")
        again = [file.file_name for file in job.files if file.stage in RETRIED_STAGES]
        if job.kind != "rebuild" and not again:
            raise JobStateError(job_id, "none of its files failed or was cancelled")
        with self.db.transaction() as session:
            requeued = session.execute(
                update(IngestJobRow)
                .where(IngestJobRow.id == job_id, IngestJobRow.status == job.status)
                .values(
                    status="queued",
                    error="",
                    cancel_requested=False,
                    worker="",
                    heartbeat_at=None,
                    finished_at=None,
                )
            )
            if not rowcount(requeued):
                raise JobStateError(job_id, "it changed meanwhile; try again")
            add_event(session, job_id, "", "queued", "retry")
        self.file_stage(job_id, again, "queued", detail="retry")

    # -- ending ------------------------------------------------------------------------------

    def prune(self, ended_before: datetime) -> int:
        """Delete the jobs that ended before ``ended_before``, their files and events (the
        foreign keys cascade); running and queued jobs stay. Returns how many went."""
        with self.db.transaction() as session:
            result = session.execute(
                delete(IngestJobRow).where(
                    IngestJobRow.finished_at.is_not(None),
                    IngestJobRow.finished_at < ended_before,
                    IngestJobRow.status.not_in(ACTIVE_JOB_STATUSES),
                )
            )
        return rowcount(result)

    def finish(self, job_id: str, status: str, error: str = "") -> None:
        """End a job; files it did not get to end cancelled (or failed, with the error)."""
        with self.db.transaction() as session:
            session.execute(
                update(IngestJobRow)
                .where(IngestJobRow.id == job_id)
                .values(status=status, error=error, finished_at=utc_now())
            )
            if status != "succeeded":
                stage = "cancelled" if status == "cancelled" else "failed"
                self._end_files(session, job_id, stage, error)
            add_event(session, job_id, "", status, error)

    def _end_files(self, session: Session, job_id: str, stage: str, detail: str) -> None:
        rows = session.scalars(
            select(IngestJobFileRow).where(
                IngestJobFileRow.job_id == job_id,
                IngestJobFileRow.stage.not_in(FINISHED_FILE_STAGES),
            )
        )
        for row in rows:
            row.stage, row.detail, row.updated_at = stage, detail, utc_now()
            add_event(session, job_id, row.file_name, stage, detail)
