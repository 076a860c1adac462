"""recreate_vector_store's Chatchat event stream, told from a rebuild job's events.

A large rebuild runs as a job (it survives a restart of the API, and anyone can follow it at
/knowledge_base/jobs/{id}), while the Chatchat client that asked for it still reads what a
rebuild in the request sends: ``{code, msg, total, finished, doc, status}`` per file, then
``{code: 200, msg: "done", summary}`` or the failure.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from kb_server.api.sse import sse_data
from kb_server.knowledge.jobs import Job, JobStore
from kb_server.knowledge.jobs.follow import follow_events

# A file's last stage in a job -> its status in Chatchat's events.
FILE_STATUS = {"stored": "indexed", "unchanged": "unchanged", "failed": "failed"}
JOB_ENDS = ("succeeded", "failed", "cancelled")


def summary(job: Job, removed: Sequence[str]) -> dict[str, Any]:
    failed = {file.file_name: file.detail for file in job.files if file.stage == "failed"}
    return {
        "indexed": job.counts().get("stored", 0),
        "unchanged": job.counts().get("unchanged", 0),
        "failed": len(failed),
        "removed": len(removed),
        "chunks_embedded": sum(file.chunks for file in job.files if file.stage == "stored"),
        "failed_files": failed,
        "job_id": job.id,
    }


def rebuild_lines(store: JobStore, job_id: str, removed: Sequence[str]) -> Iterator[str]:
    total = len(store.get(job_id).files)
    finished = 0
    for event in follow_events(store, job_id):
        if event is None:
            yield ": keep-alive\n\n"
        elif event.file_name and event.stage in FILE_STATUS:
            finished += 1
            total = max(total, finished)
            yield sse_data(
                {
                    "code": 200,
                    "msg": f"({finished} / {total}): {event.file_name}",
                    "doc": event.file_name,
                    "status": FILE_STATUS[event.stage],
                    "total": total,
                    "finished": finished,
                }
            )
        elif not event.file_name and event.stage in JOB_ENDS:
            job = store.get(job_id)
            counts: dict[str, Any] = {"total": total, "finished": finished}
            if job.status == "succeeded":
                yield sse_data(
                    {"code": 200, "msg": "done", "summary": summary(job, removed), **counts}
                )
            else:
                detail = {"code": f"job_{job.status}", "message": job.error or job.status}
                yield sse_data({"code": 500, "msg": detail["message"], "detail": detail, **counts})
            return
