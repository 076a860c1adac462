"""One row of the doctor's report."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "warn", "FAIL"]
STATUS_ORDER: dict[Status, int] = {"ok": 0, "warn": 1, "FAIL": 2}


@dataclass(frozen=True)
class CheckResult:
    check: str
    status: Status
    detail: str


def worst(statuses: Iterable[Status]) -> Status:
    return max(statuses, key=STATUS_ORDER.__getitem__, default="ok")
