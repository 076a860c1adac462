"""JobRunner: runs queued ingestion jobs in a few threads of the API process.

One dispatcher thread shows that this process is alive (the heartbeat of its jobs), claims
queued jobs and jobs abandoned by a dead process, and hands them to a small thread pool.
A job on files indexes them in steps of ``jobs.files_per_step`` through the service (each
step under the KB's write lock); a rebuild runs ``KbMaintenance.recreate`` once. Resuming
needs nothing special: files already stored are unchanged (same bytes, vectors present),
so running the job's unfinished files again stores each file once.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from kb_server.db.models import utc_now
from kb_server.errors import KbError
from kb_server.knowledge.jobs.model import FINISHED_FILE_STAGES, Job, JobFile, as_utc
from kb_server.knowledge.jobs.progress import PROGRESS_INTERVAL_S, JobProgress, JobStopped
from kb_server.knowledge.jobs.store import JobStore
from kb_server.knowledge.maintenance import KbMaintenance
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.settings import JobSettings, SplitterSettings

logger = logging.getLogger(__name__)

# How often a process deletes ended jobs older than jobs.keep_days (also once at start).
PRUNE_INTERVAL_S = 3600.0


def this_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def process_alive(pid: int) -> bool:
    if sys.platform == "win32":
        return True  # no cheap check: wait for the heartbeat to go stale
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        service: KnowledgeBaseService,
        maintenance: KbMaintenance,
        settings: JobSettings,
        *,
        worker: str | None = None,
    ) -> None:
        self.store = store
        self.service = service
        self.maintenance = maintenance
        self.settings = settings
        self.worker = worker or this_worker()
        self._running: dict[str, Future[None]] = {}
        self._guard = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._dispatcher: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(self.settings.workers, thread_name_prefix="ingest-job")
        self._dispatcher = threading.Thread(target=self._loop, name="job-dispatcher", daemon=True)
        self._dispatcher.start()

    def submit(
        self, kb_name: str, kind: str, file_names: Sequence[str], options: dict[str, Any]
    ) -> str:
        """Queue a job over files of a KB; returns its id."""
        # Queuing is the write the caller is checked for; the job then runs as nobody.
        kb_id = self.service.kb_row(kb_name, write=True).id
        job_id = self.store.create(kb_id, kind, file_names, options)
        self.notify()
        return job_id

    def notify(self) -> None:
        """A job was queued: look now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop taking jobs; running ones stop at their next check and go back to the queue."""
        self._stopping.set()
        self._wake.set()
        if self._dispatcher is not None:
            self._dispatcher.join(timeout_s)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _loop(self) -> None:
        interval = min(self.settings.poll_s, self.settings.heartbeat_s)
        last_poll = 0.0
        last_prune: float | None = None
        while not self._stopping.is_set():
            try:
                self._beat()
                if last_prune is None or time.monotonic() - last_prune >= PRUNE_INTERVAL_S:
                    last_prune = time.monotonic()
                    self.prune_old_jobs()
                if self._wake.is_set() or time.monotonic() - last_poll >= self.settings.poll_s:
                    self._wake.clear()
                    last_poll = time.monotonic()
                    self._claim_jobs()
            except Exception:
                # A database that is briefly away must not end the dispatcher.
                logger.exception("ingestion job dispatcher")
            self._wake.wait(interval)

    def prune_old_jobs(self) -> int:
        """Delete jobs that ended more than jobs.keep_days ago (none when it is 0)."""
        if self.settings.keep_days <= 0:
            return 0
        pruned = self.store.prune(utc_now() - timedelta(days=self.settings.keep_days))
        if pruned:
            logger.info(
                "deleted %d ingestion jobs that ended over %g days ago",
                pruned,
                self.settings.keep_days,
            )
        return pruned

    def _beat(self) -> None:
        with self._guard:
            running = set(self._running)
        self.store.heartbeat(running, self.worker)

    # -- claiming ----------------------------------------------------------------------------

    def abandoned(self, worker: str, heartbeat_at: datetime | None, now: datetime) -> bool:
        """Whether a running job's process is gone: silent for stale_after_s, or a process
        of this host that no longer exists (after two missed heartbeats, so that a process
        on another machine with the same host name and a live job is not robbed)."""
        if heartbeat_at is None:
            return True
        silent = (as_utc(now) - as_utc(heartbeat_at)).total_seconds()
        if silent > self.settings.stale_after_s:
            return True
        host, _, pid = worker.rpartition(":")
        if host != socket.gethostname() or not (pid.isascii() and pid.isdigit()):
            return False
        return silent > 2 * self.settings.heartbeat_s and not process_alive(int(pid))

    def _claim_jobs(self) -> None:
        now = utc_now()
        for job_id, status, worker, heartbeat_at in self.store.candidates():
            with self._guard:
                if len(self._running) >= self.settings.workers or self._stopping.is_set():
                    return
                if job_id in self._running:
                    continue
            if status == "queued":
                claimed = self.store.claim(job_id, self.worker)
            # Our own id on a job we do not run: an earlier process that had our pid.
            elif worker == self.worker or self.abandoned(worker, heartbeat_at, now):
                logger.info("resuming ingestion job %s abandoned by %s", job_id, worker)
                claimed = self.store.claim(
                    job_id, self.worker, was_worker=worker, was_heartbeat=heartbeat_at
                )
            else:
                continue
            if claimed and self._pool is not None:
                with self._guard:
                    self._running[job_id] = self._pool.submit(self._run, job_id)

    # -- running -----------------------------------------------------------------------------

    def _run(self, job_id: str) -> None:
        try:
            self.run_job(job_id)
        except Exception:
            # Recording the end failed too (the database went away, the KB and its jobs were
            # deleted): the job is left running and is taken over once its heartbeat is stale.
            logger.exception("ingestion job %s could not be ended", job_id)
        finally:
            with self._guard:
                self._running.pop(job_id, None)
            self._wake.set()

    def run_job(self, job_id: str) -> None:
        """Run a claimed job to its end (or until it must stop)."""
        job = self.store.get(job_id)
        pending = [file.file_name for file in pending_files(job)]
        started = [file.file_name for file in pending_files(job) if file.stage != "queued"]
        check = JobStoppedCheck(self, job_id)
        progress = JobProgress(self.store, job_id, check=check, resumed=started)
        try:
            try:
                progress.check()
                if job.kind == "rebuild":
                    # A forced rebuild that already ran in part dropped the vectors: what it
                    # stored since is kept.
                    again = any(file.stage != "queued" for file in job.files)
                    force = bool(job.options.get("force")) and not again
                    self._rebuild(job, progress, force=force)
                else:
                    self._index_files(job, pending, progress)
            finally:
                progress.flush()
        except JobStopped as stop:
            if stop.status == "cancelled":
                self.store.finish(job_id, "cancelled", "cancelled")
            elif stop.status == "queued":
                self.store.release(job_id, self.worker)
            else:
                logger.warning("ingestion job %s was taken over by another process", job_id)
            return
        except KbError as exc:
            self.store.finish(job_id, "failed", exc.message)
            return
        except Exception as exc:
            logger.exception("ingestion job %s failed", job_id)
            self.store.finish(job_id, "failed", f"{type(exc).__name__}: {exc}")
            return
        self.store.finish(job_id, "succeeded")

    def _index_files(self, job: Job, file_names: list[str], progress: JobProgress) -> None:
        splitter = job.options.get("splitter")
        step = self.settings.files_per_step
        for start in range(0, len(file_names), step):
            progress.check()
            self.service.add_files(
                job.kb_name,
                file_names[start : start + step],
                splitter=SplitterSettings(**splitter) if splitter else None,
                progress=progress,
            )
            progress.flush()

    def _rebuild(self, job: Job, progress: JobProgress, *, force: bool) -> None:
        splitter = job.options.get("splitter")
        self.maintenance.recreate(
            job.kb_name,
            embed_model=job.options.get("embed_model"),
            force=force,
            splitter=SplitterSettings(**splitter) if splitter else None,
            progress=progress,
        )


def pending_files(job: Job) -> list[JobFile]:
    return [file for file in job.files if file.stage not in FINISHED_FILE_STAGES]


class JobStoppedCheck:
    """Raises JobStopped when the job was cancelled, the process is stopping or the job is no
    longer this process's; looks at the database at most every PROGRESS_INTERVAL_S."""

    def __init__(self, runner: JobRunner, job_id: str) -> None:
        self.runner = runner
        self.job_id = job_id
        self._last_look = 0.0

    def __call__(self) -> None:
        if self.runner.stopping:
            raise JobStopped("queued")
        now = time.monotonic()
        if now - self._last_look < PROGRESS_INTERVAL_S:
            return
        self._last_look = now
        control = self.runner.store.control(self.job_id)
        if control is None:
            raise JobStopped("lost")
        cancel_requested, worker = control
        if worker != self.runner.worker:
            raise JobStopped("lost")
        if cancel_requested:
            raise JobStopped("cancelled")
