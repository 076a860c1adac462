"""Background ingestion jobs: uploads, updates and rebuilds that report each file's stage.

Decisions:
- State lives in the database (kb_server/db/jobs.py), never in the API process: a job is
  read, cancelled and retried from any process, and survives a restart.
- A job's files go through queued -> loading -> (ocr page n/m) -> splitting -> embedding ->
  stored, or end unchanged, failed (with the reason) or cancelled. Every change is a row
  update plus an event; the event stream replays events by id.
- Files are indexed by the ordinary ingest (KbWriter through the service) in steps under
  the KB's write lock. A resumed job runs its unfinished files again: those a dead process
  had stored are unchanged and are recorded as stored, so nothing is stored twice.
- Cancelling is cooperative: the job checks between files and embedding batches, and only
  before a group of files is stored, so a group is stored whole or not at all.
- Retry queues the same job again over its failed and cancelled files (same id, same
  event stream).
- Several API processes may share one database: claims are compare-and-swap updates. A
  running job is taken over when its heartbeat is older than jobs.stale_after_s, or when
  its process (same host) no longer exists.
"""

from kb_server.knowledge.jobs.model import (
    FILE_STAGE_ORDER,
    FINISHED_FILE_STAGES,
    Job,
    JobEvent,
    JobFile,
    JobNotFoundError,
    JobStateError,
)
from kb_server.knowledge.jobs.progress import JobProgress, JobStopped
from kb_server.knowledge.jobs.runner import JobRunner
from kb_server.knowledge.jobs.store import JobStore

__all__ = [
    "FILE_STAGE_ORDER",
    "FINISHED_FILE_STAGES",
    "Job",
    "JobEvent",
    "JobFile",
    "JobNotFoundError",
    "JobProgress",
    "JobRunner",
    "JobStateError",
    "JobStopped",
    "JobStore",
]
