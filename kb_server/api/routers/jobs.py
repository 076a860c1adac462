"""Ingestion jobs under ``/knowledge_base/jobs``: list, read, follow (SSE), cancel, retry.

A job is shown only to whoever may see its knowledge base (``visible_job``): anyone else gets
the 404 of an unknown job, so job ids reveal nothing about other KBs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Header, Query

from kb_server.access.check import visible
from kb_server.api.deps import ContainerDep, KbServiceDep
from kb_server.api.envelope import Envelope, ok
from kb_server.api.schemas.jobs import JobEventOut, JobOut
from kb_server.api.sse import EventStreamResponse, sse_data
from kb_server.errors import KbError
from kb_server.knowledge.jobs import Job, JobNotFoundError, JobStore
from kb_server.knowledge.jobs.follow import follow_events
from kb_server.knowledge.service import KnowledgeBaseService

router = APIRouter(prefix="/knowledge_base/jobs", tags=["jobs"])

# The largest id a database row can have; larger ones would overflow the driver.
SQL_INTEGER_MAX = 2**63 - 1


def visible_job(
    job_id: str, store: JobStore, service: KnowledgeBaseService, *, write: bool = False
) -> Job:
    """The job, if the caller may see its KB; the one place that decides it. ``write``: the
    caller changes the job, which a key that may only read the KB gets a 403 for."""
    job = store.get(job_id)
    try:
        service.kb_row(job.kb_name)
    except KbError as exc:
        raise JobNotFoundError(job_id) from exc
    if write:
        service.kb_row(job.kb_name, write=True)
    return job


@router.get("")
def list_jobs(
    container: ContainerDep,
    service: KbServiceDep,
    knowledge_base_name: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Envelope[list[JobOut]]:
    """Jobs, newest first; of one knowledge base when it is named."""
    kb_id = None if knowledge_base_name is None else service.kb_row(knowledge_base_name).id
    jobs = container.jobs.store.list_jobs(kb_id, limit)
    # The rule list_kbs filters by, without counting every KB's files and chunks on each poll.
    shown = set(visible(job.kb_name for job in jobs))
    return ok([JobOut.of(job) for job in jobs if job.kb_name in shown])


@router.get("/{job_id}")
def get_job(job_id: str, container: ContainerDep, service: KbServiceDep) -> Envelope[JobOut]:
    return ok(JobOut.of(visible_job(job_id, container.jobs.store, service)))


@router.get("/{job_id}/events")
def job_events(
    job_id: str,
    container: ContainerDep,
    service: KbServiceDep,
    after: Annotated[
        int | None, Query(ge=0, le=SQL_INTEGER_MAX, description="Replay events after this id")
    ] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventStreamResponse:
    """The job's events from the start (or after ``after`` / Last-Event-ID), then new ones as
    they happen, until the job ends. Each event has an ``id:`` line and a JSON ``data:``."""
    store = container.jobs.store
    visible_job(job_id, store, service)
    start = after if after is not None else _event_id(last_event_id)
    return EventStreamResponse(event_lines(store, job_id, start))


def _event_id(header: str | None) -> int:
    if header is None or not (header.strip().isascii() and header.strip().isdigit()):
        return 0
    return min(int(header), SQL_INTEGER_MAX)


def event_lines(store: JobStore, job_id: str, after: int) -> Iterator[str]:
    for event in follow_events(store, job_id, after):
        if event is None:
            yield ": keep-alive\n\n"  # a comment: keeps proxies from closing an idle stream
            continue
        payload = JobEventOut.of(job_id, event).model_dump(mode="json")
        yield f"id: {event.id}\n{sse_data(payload)}"


@router.post("/{job_id}/cancel")
def cancel_job(job_id: str, container: ContainerDep, service: KbServiceDep) -> Envelope[JobOut]:
    """A queued job is cancelled at once; a running one stops before it stores more files
    (files already stored stay). 409 when the job has ended."""
    store = container.jobs.store
    visible_job(job_id, store, service, write=True)
    store.request_cancel(job_id)
    return ok(JobOut.of(store.get(job_id)), msg="任务正在取消")


@router.post("/{job_id}/retry")
def retry_job(job_id: str, container: ContainerDep, service: KbServiceDep) -> Envelope[JobOut]:
    """Queue an ended job again over its failed and cancelled files. 409 while it runs, or
    when none of its files failed or was cancelled."""
    store = container.jobs.store
    visible_job(job_id, store, service, write=True)
    store.retry(job_id)
    container.jobs.notify()
    return ok(JobOut.of(store.get(job_id)), msg="任务已重新排队")
