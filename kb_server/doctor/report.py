"""Run every check and render the rows as a table or JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict

from kb_server.doctor.base import CheckResult, worst
from kb_server.doctor.environment import check_devices, check_disk, check_packages, check_python
from kb_server.doctor.models import (
    check_embedding_model,
    check_local_llms,
    check_ocr,
    check_reranker,
)
from kb_server.doctor.ports import check_ports
from kb_server.doctor.storage import check_database, check_knowledge_bases
from kb_server.settings import Settings

Check = Callable[[Settings], CheckResult | list[CheckResult]]

CHECKS: tuple[Check, ...] = (
    lambda _: check_python(),
    check_packages,
    check_devices,
    check_embedding_model,
    check_reranker,
    check_local_llms,
    check_ocr,
    check_database,
    check_disk,
    check_ports,
)


def run_checks(settings: Settings) -> list[CheckResult]:
    results: list[CheckResult] = []
    for check in CHECKS:
        found = check(settings)
        results.extend(found if isinstance(found, list) else [found])
    # The KBs live in the database: with no database there is nothing to open.
    if all(r.status != "FAIL" for r in results if r.check == "database"):
        results.extend(check_knowledge_bases(settings))
    return results


def failed(results: Sequence[CheckResult]) -> bool:
    return worst(result.status for result in results) == "FAIL"


def format_table(results: Sequence[CheckResult]) -> str:
    name_width = max(len("check"), *(len(result.check) for result in results))
    lines = [f"{'check':<{name_width}}  status  detail", f"{'-' * name_width}  ------  ------"]
    lines += [
        f"{result.check:<{name_width}}  {result.status:<6}  {result.detail}" for result in results
    ]
    counts = {status: sum(r.status == status for r in results) for status in ("ok", "warn", "FAIL")}
    lines.append("")
    lines.append(", ".join(f"{count} {status}" for status, count in counts.items()))
    return "\n".join(lines) + "\n"


def format_json(results: Sequence[CheckResult]) -> str:
    body = {"ok": not failed(results), "checks": [asdict(result) for result in results]}
    return json.dumps(body, ensure_ascii=False, indent=2) + "\n"
