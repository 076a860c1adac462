"""Named points where a crash-safety test can make this process die as if killed with -9.

With ``KB_FAILPOINT=<name>`` in its environment, a process kills itself (SIGKILL: no cleanup,
no flush, no atexit) on reaching that point. Unset, as always outside those tests, a failpoint
costs one environment lookup. Names in use: ingest.loaded (files loaded and embedded, nothing
stored), ingest.rows_committed (database rows committed, vectors not saved),
faiss.before_rename (the new index file written, not yet in place), ingest.vectors_saved
(vectors saved, keyword index not updated), jobs.file_stored (an ingestion job recorded a
file as stored; the job's other files are not done).
"""

from __future__ import annotations

import os
import signal
from typing import Final

FAILPOINT_ENV: Final = "KB_FAILPOINT"


def failpoint(name: str) -> None:
    if os.environ.get(FAILPOINT_ENV) == name:
        kill = getattr(signal, "SIGKILL", None)
        if kill is None:  # Windows
            os._exit(137)
        os.kill(os.getpid(), kill)
