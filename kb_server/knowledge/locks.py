"""Per-KB write locks that hold across threads and processes.

Writes to one knowledge base (its rows, its content folder, its index) are serialized; reads
take no lock, because the index is saved atomically and the database is transactional.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock


class _KbLock:
    def __init__(self, lock_file: Path, timeout_s: float) -> None:
        # The thread lock keeps threads of this process apart; the file lock, shared by them
        # and counting re-entries, keeps other processes out.
        self.thread_lock = threading.RLock()
        self.file_lock = FileLock(lock_file, timeout=timeout_s, thread_local=False)


class KbLocks:
    """One re-entrant write lock per KB, held across threads and processes."""

    def __init__(self, timeout_s: float = 600.0) -> None:
        self._timeout_s = timeout_s
        self._guard = threading.Lock()
        self._locks: dict[Path, _KbLock] = {}

    def _lock_for(self, lock_file: Path) -> _KbLock:
        with self._guard:
            lock = self._locks.get(lock_file)
            if lock is None:
                lock_file.parent.mkdir(parents=True, exist_ok=True)
                lock = self._locks[lock_file] = _KbLock(lock_file, self._timeout_s)
            return lock

    @contextmanager
    def hold(self, lock_file: Path) -> Iterator[None]:
        lock = self._lock_for(lock_file)
        with lock.thread_lock, lock.file_lock:
            yield
