"""Who runs which job: claims (compare-and-swap updates), heartbeats, giving a job back, and
the job's event rows that every state change appends."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from kb_server.db.engine import Database
from kb_server.db.jobs import IngestJobEventRow, IngestJobRow
from kb_server.db.models import utc_now
from kb_server.knowledge.jobs.model import ACTIVE_JOB_STATUSES


def rowcount(result: Any) -> int:
    count: int = result.rowcount if isinstance(result, CursorResult) else 0
    return count


def add_event(
    session: Session,
    job_id: str,
    file_name: str,
    stage: str,
    detail: str = "",
    done: int = 0,
    total: int = 0,
) -> None:
    session.add(
        IngestJobEventRow(
            job_id=job_id, file_name=file_name, stage=stage, detail=detail, done=done, total=total
        )
    )


class JobLeases:
    def __init__(self, db: Database) -> None:
        self.db = db

    def control(self, job_id: str) -> tuple[bool, str] | None:
        """(cancel_requested, worker) of a job, None once it is gone."""
        with self.db.session() as session:
            found = session.execute(
                select(IngestJobRow.cancel_requested, IngestJobRow.worker).where(
                    IngestJobRow.id == job_id
                )
            ).first()
        return None if found is None else (bool(found[0]), str(found[1]))

    def candidates(self) -> list[tuple[str, str, str, datetime | None]]:
        """(id, status, worker, heartbeat_at) of queued and running jobs, oldest first."""
        with self.db.session() as session:
            rows = session.execute(
                select(
                    IngestJobRow.id,
                    IngestJobRow.status,
                    IngestJobRow.worker,
                    IngestJobRow.heartbeat_at,
                )
                .where(IngestJobRow.status.in_(ACTIVE_JOB_STATUSES))
                .order_by(IngestJobRow.created_at, IngestJobRow.id)
            ).all()
        return [(row[0], row[1], row[2], row[3]) for row in rows]

    def claim(
        self,
        job_id: str,
        worker: str,
        *,
        was_worker: str = "",
        was_heartbeat: datetime | None = None,
    ) -> bool:
        """Take a queued job, or a running one whose worker and heartbeat are still the ones
        seen (nobody else took it, its old worker did not come back to life meanwhile)."""
        now = utc_now()
        condition = [IngestJobRow.id == job_id]
        if was_worker:
            heartbeat = (
                IngestJobRow.heartbeat_at.is_(None)
                if was_heartbeat is None
                else IngestJobRow.heartbeat_at == was_heartbeat
            )
            condition += [
                IngestJobRow.status == "running",
                IngestJobRow.worker == was_worker,
                heartbeat,
            ]
        else:
            condition.append(IngestJobRow.status == "queued")
        with self.db.transaction() as session:
            claimed = session.execute(
                update(IngestJobRow)
                .where(*condition)
                .values(status="running", worker=worker, heartbeat_at=now)
            )
            if not rowcount(claimed):
                return False
            session.execute(
                update(IngestJobRow)
                .where(IngestJobRow.id == job_id, IngestJobRow.started_at.is_(None))
                .values(started_at=now)
            )
            detail = f"resumed from {was_worker}" if was_worker else ""
            add_event(session, job_id, "", "running", detail)
        return True

    def heartbeat(self, job_ids: Collection[str], worker: str) -> set[str]:
        """Record that ``worker`` is alive; returns the jobs that are still its own."""
        if not job_ids:
            return set()
        with self.db.transaction() as session:
            session.execute(
                update(IngestJobRow)
                .where(
                    IngestJobRow.id.in_(list(job_ids)),
                    IngestJobRow.worker == worker,
                    IngestJobRow.status == "running",
                )
                .values(heartbeat_at=utc_now())
            )
            owned = session.scalars(
                select(IngestJobRow.id).where(
                    IngestJobRow.id.in_(list(job_ids)), IngestJobRow.worker == worker
                )
            )
            return set(owned)

    def release(self, job_id: str, worker: str) -> None:
        """Give a job back to the queue (this process is stopping): another one resumes it."""
        with self.db.transaction() as session:
            released = session.execute(
                update(IngestJobRow)
                .where(IngestJobRow.id == job_id, IngestJobRow.worker == worker)
                .values(status="queued", worker="", heartbeat_at=None)
            )
            if rowcount(released):
                add_event(session, job_id, "", "queued", "the server stopped; resumes later")
