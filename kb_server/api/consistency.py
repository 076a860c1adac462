"""The consistency check the API runs when it starts, in the background.

Every knowledge base is compared with its indexes and content folder (the same check as
``init_database.py --check``); a problem is logged with the command that mends it and shown
on /health. Serving starts at once: the check waits for a KB that another process is writing
rather than holding the API up.
"""

from __future__ import annotations

import logging
import threading
from typing import Literal

from kb_server.knowledge.maintenance import KbMaintenance
from kb_server.knowledge.types import CheckReport

logger = logging.getLogger(__name__)

ConsistencyState = Literal["checking", "ok", "problems"]


class StartupConsistencyCheck:
    def __init__(self, maintenance: KbMaintenance) -> None:
        self._maintenance = maintenance
        self._lock = threading.Lock()
        self._reports: list[CheckReport] = []
        self._errors: dict[str, str] = {}
        self._done = threading.Event()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="kb-consistency-check", daemon=True)
        thread.start()
        return thread

    def run(self) -> None:
        try:
            for kb in self._maintenance.service.list_kbs():
                try:
                    report = self._maintenance.check(kb.name)
                # Whatever breaks the check of one KB (a corrupt index, a database error) is
                # reported for that KB; the API keeps serving the others.
                except Exception as exc:
                    logger.warning("consistency check of %r failed: %s", kb.name, exc)
                    with self._lock:
                        self._errors[kb.name] = str(exc)
                    continue
                with self._lock:
                    self._reports.append(report)
                if not report.consistent:
                    logger.warning(
                        "knowledge base %r is inconsistent (%s); mend it with: "
                        "python init_database.py --check --repair -n %s",
                        kb.name,
                        summary(report),
                        kb.name,
                    )
        finally:
            self._done.set()

    def wait(self, timeout_s: float) -> bool:
        return self._done.wait(timeout_s)

    @property
    def state(self) -> ConsistencyState:
        if not self._done.is_set():
            return "checking"
        return "problems" if self.inconsistent_kbs() else "ok"

    def inconsistent_kbs(self) -> list[str]:
        with self._lock:
            broken = {report.kb_name for report in self._reports if not report.consistent}
            return sorted(broken | set(self._errors))


def summary(report: CheckReport) -> str:
    return ", ".join(f"{len(items)} {label}" for label, items in report.problems().items() if items)
