"""The metadata database and each knowledge base's consistency (init_database.py --check)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from kb_server.db.engine import database_url
from kb_server.db.models import KnowledgeBase
from kb_server.doctor.base import CheckResult
from kb_server.doctor.models import find_offline, missing_model_detail
from kb_server.doctor.ports import is_loopback
from kb_server.errors import KbError
from kb_server.knowledge.maintenance import KbMaintenance
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.knowledge.types import CheckReport
from kb_server.settings import Settings

CONNECT_TIMEOUT_S = 3


def check_database(settings: Settings) -> CheckResult:
    raw = database_url(settings)
    try:
        url = make_url(raw)
    except ArgumentError as error:
        return CheckResult("database", "FAIL", f"not a database URL ({error}); see database_url")
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite":
        return _check_sqlite(url, shown)
    if url.host and not is_loopback(url.host):
        return CheckResult(
            "database", "warn", f"{shown}: not contacted (doctor only connects on loopback)"
        )
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if "postgresql" in url.drivername else {}
    try:
        engine = create_engine(url, connect_args=connect_args)
    except (NoSuchModuleError, ImportError) as error:
        return CheckResult(
            "database", "FAIL", f"{shown}: no driver ({error}); pip install 'kb-server[pg]'"
        )
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        cause = error.orig if isinstance(error, DBAPIError) else error
        reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        return CheckResult("database", "FAIL", f"{shown}: cannot connect: {reason}")
    finally:
        engine.dispose()
    return CheckResult("database", "ok", f"{shown}: connected")


def _check_sqlite(url: URL, shown: str) -> CheckResult:
    path = Path(url.database or "")
    if not url.database or url.database == ":memory:":
        return CheckResult("database", "warn", f"{shown}: in memory, nothing is kept")
    if not path.exists():
        return CheckResult("database", "ok", f"{path}: not created yet (first start creates it)")
    try:
        # Read-only: the doctor must not create or change the file.
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=CONNECT_TIMEOUT_S) as db:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as error:
        return CheckResult("database", "FAIL", f"{path}: cannot be read as SQLite: {error}")
    return CheckResult("database", "ok", f"SQLite {path}")


def has_database(settings: Settings) -> bool:
    """False for a SQLite file not created yet: there are no KBs, and nothing is created."""
    url = make_url(database_url(settings))
    return url.get_backend_name() != "sqlite" or Path(url.database or "").exists()


def check_knowledge_bases(settings: Settings) -> list[CheckResult]:
    """Each KB: its embedding model found offline, and its indexes agreeing with the database."""
    if not has_database(settings):
        return [CheckResult("knowledge bases", "ok", "none yet")]
    service = KnowledgeBaseService(settings)
    try:
        with service.db.session() as session:
            kbs = session.execute(
                select(KnowledgeBase.name, KnowledgeBase.embed_model).order_by(KnowledgeBase.name)
            ).all()
        if not kbs:
            return [CheckResult("knowledge bases", "ok", "none yet")]
        maintenance = KbMaintenance(service)
        return [_check_kb(maintenance, name, model) for name, model in kbs]
    finally:
        service.db.engine.dispose()


def _check_kb(maintenance: KbMaintenance, name: str, model: str) -> CheckResult:
    check = f"kb {name}"
    settings = maintenance.service.settings
    if find_offline(model, settings.embedding) is None:
        return CheckResult(
            check,
            "FAIL",
            f"built with {model}, which is {missing_model_detail(model, settings.embedding)}",
        )
    try:
        report = maintenance.check(name)
    except (KbError, OSError, RuntimeError) as error:
        return CheckResult(check, "FAIL", f"cannot be checked: {error}")
    if not report.consistent:
        return CheckResult(
            check,
            "FAIL",
            f"{_problems(report)}; mend with: python init_database.py --check --repair -n {name}",
        )
    if report.failed_files:
        failed = ", ".join(report.failed_files)
        return CheckResult(check, "warn", f"consistent; files that failed to load: {failed}")
    return CheckResult(check, "ok", f"consistent ({model})")


def _problems(report: CheckReport) -> str:
    return ", ".join(f"{len(items)} {label}" for label, items in report.problems().items() if items)
