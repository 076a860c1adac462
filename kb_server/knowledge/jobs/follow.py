"""Following a job's events as they are written, from any process (they are read back from
the database, so a stream served by one API process follows a job run by another)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from kb_server.knowledge.jobs.model import JobEvent, JobNotFoundError
from kb_server.knowledge.jobs.store import JobStore

# How often a follower looks for new events.
POLL_S = 0.25


def follow_events(
    store: JobStore, job_id: str, after: int = 0, *, idle_every_s: float = 15.0
) -> Iterator[JobEvent | None]:
    """The job's events after ``after``, then new ones until the job has ended; None after
    each ``idle_every_s`` without events (a stream sends a keep-alive then). Ends early when
    the job is deleted (with its knowledge base)."""
    last = after
    idle_since = time.monotonic()
    while True:
        try:
            events = store.events(job_id, last)
            finished = not events and store.get(job_id).finished
        except JobNotFoundError:
            return
        if finished:
            # Events written between reading them and reading the status.
            events = store.events(job_id, last)
        for event in events:
            last = event.id
            yield event
        if finished:
            return
        if events:
            idle_since = time.monotonic()
            continue
        if time.monotonic() - idle_since > idle_every_s:
            idle_since = time.monotonic()
            yield None
        time.sleep(POLL_S)
