"""Per-KB write locks that hold across threads, processes and (on PostgreSQL) machines.

Writes to one knowledge base (its rows, its content folder, its index) are serialized; reads
take no lock, because indexes are saved atomically and the database is transactional. A file
lock under the KB root keeps processes of one machine apart; when the metadata database is
PostgreSQL, API workers on other machines share no files, so a PostgreSQL advisory lock (held
by a connection of its own for as long as the write lasts) keeps them apart too.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock
from sqlalchemy import Connection, Engine, text

# Advisory lock keys are one bigint namespace for the whole server; ours are hashes of this
# prefix and the KB name, so they do not collide with another application's small integers.
ADVISORY_KEY_PREFIX = "kb_server.kb_write:"
ADVISORY_POLL_S = 0.05


class KbLockTimeoutError(TimeoutError):
    def __init__(self, kb_name: str, timeout_s: float) -> None:
        super().__init__(
            f"knowledge base {kb_name!r} is being changed by another process; gave up waiting "
            f"after {timeout_s:.0f} s"
        )


def advisory_key(kb_name: str) -> int:
    """A signed 64-bit key for ``pg_advisory_lock`` from the KB name."""
    digest = hashlib.sha256(f"{ADVISORY_KEY_PREFIX}{kb_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class _AdvisoryLock:
    """A session-level PostgreSQL advisory lock on a dedicated pooled connection."""

    def __init__(self, engine: Engine, kb_name: str, timeout_s: float) -> None:
        self._engine = engine
        self._kb_name = kb_name
        self._key = advisory_key(kb_name)
        self._timeout_s = timeout_s
        self._connection: Connection | None = None

    def acquire(self) -> None:
        connection = self._engine.connect()
        try:
            deadline = time.monotonic() + self._timeout_s
            while not connection.scalar(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
            ):
                connection.rollback()
                if time.monotonic() > deadline:
                    raise KbLockTimeoutError(self._kb_name, self._timeout_s)
                time.sleep(ADVISORY_POLL_S)
            # The lock belongs to the session, not the transaction: end the transaction so the
            # connection holds no snapshot while the write runs on other connections.
            connection.commit()
        except BaseException:
            connection.close()
            raise
        self._connection = connection

    def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
            connection.commit()
        finally:
            # A broken connection loses its session and with it the lock; either way it goes.
            connection.close()


class _KbLock:
    def __init__(
        self, lock_file: Path, kb_name: str, timeout_s: float, engine: Engine | None
    ) -> None:
        # The thread lock keeps threads of this process apart; the file lock, shared by them
        # and counting re-entries, keeps other processes out.
        self.thread_lock = threading.RLock()
        self.file_lock = FileLock(lock_file, timeout=timeout_s, thread_local=False)
        self.advisory = _AdvisoryLock(engine, kb_name, timeout_s) if engine is not None else None
        # Re-entries by the thread that holds thread_lock; the advisory lock is taken once.
        self.depth = 0


class KbLocks:
    """One re-entrant write lock per KB, held across threads and processes.

    ``engine``: the metadata database's engine; when it is PostgreSQL, every write also holds
    an advisory lock there, which serializes writers on any machine using that database.
    """

    def __init__(self, timeout_s: float = 600.0, engine: Engine | None = None) -> None:
        self._timeout_s = timeout_s
        self._engine = engine if engine is not None and _is_postgresql(engine) else None
        self._guard = threading.Lock()
        self._locks: dict[Path, _KbLock] = {}

    def _lock_for(self, lock_file: Path) -> _KbLock:
        with self._guard:
            lock = self._locks.get(lock_file)
            if lock is None:
                lock_file.parent.mkdir(parents=True, exist_ok=True)
                lock = self._locks[lock_file] = _KbLock(
                    lock_file, lock_file.stem, self._timeout_s, self._engine
                )
            return lock

    @contextmanager
    def hold(self, lock_file: Path) -> Iterator[None]:
        lock = self._lock_for(lock_file)
        with lock.thread_lock, lock.file_lock:
            if lock.depth == 0 and lock.advisory is not None:
                lock.advisory.acquire()
            lock.depth += 1
            try:
                yield
            finally:
                lock.depth -= 1
                if lock.depth == 0 and lock.advisory is not None:
                    lock.advisory.release()


def _is_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"
