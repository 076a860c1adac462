"""Several API workers starting at once on a fresh database, and ``python -m kb_server.db``."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
from multiprocessing.synchronize import Barrier as ProcessBarrier
from pathlib import Path

from sqlalchemy import Engine, text

from kb_server.cli.errors import EXIT_FATAL
from kb_server.db.engine import make_engine
from kb_server.db.schema import VERSION_TABLE, current_revision, head_revision, upgrade_schema
from kb_server.settings import PROJECT_ROOT
from tests.unit.db.conftest import schema_differences

THREADS = 6
BARRIER_TIMEOUT_S = 60


def _assert_upgraded_once(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()
    assert schema_differences(engine) == []
    with engine.connect() as connection:
        rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
    assert len(rows) == 1


def test_fresh_database_upgraded_from_several_threads_at_once(db_url: str, engine: Engine) -> None:
    start = threading.Barrier(THREADS)
    failures: list[BaseException] = []

    def upgrade_as_a_worker() -> None:
        # Its own engine, as each API worker process has.
        worker_engine = make_engine(db_url)
        try:
            start.wait(BARRIER_TIMEOUT_S)
            upgrade_schema(worker_engine)
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)
        finally:
            worker_engine.dispose()

    workers = [threading.Thread(target=upgrade_as_a_worker) for _ in range(THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert failures == []
    _assert_upgraded_once(engine)


def _upgrade_in_process(url: str, start: ProcessBarrier) -> None:
    engine = make_engine(url)
    try:
        start.wait(BARRIER_TIMEOUT_S)
        upgrade_schema(engine)
    finally:
        engine.dispose()


def test_fresh_database_upgraded_from_two_processes_at_once(db_url: str, engine: Engine) -> None:
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(2)
    processes = [spawn.Process(target=_upgrade_in_process, args=(db_url, start)) for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(BARRIER_TIMEOUT_S * 2)

    assert [process.exitcode for process in processes] == [0, 0]
    _assert_upgraded_once(engine)


def _open_fresh_databases(folder: str, count: int, start: ProcessBarrier) -> None:
    for index in range(count):
        engine = make_engine(f"sqlite:///{folder}/fresh_{index}.db")
        try:
            start.wait(BARRIER_TIMEOUT_S)
            with engine.connect() as connection:
                mode = connection.execute(text("PRAGMA journal_mode")).scalar()
            assert mode == "wal"
        finally:
            engine.dispose()


def test_processes_opening_a_new_sqlite_database_at_once_all_connect(tmp_path: Path) -> None:
    """Each switches the new file to WAL; SQLite refuses all but one at once, without waiting."""
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(3)
    processes = [
        spawn.Process(target=_open_fresh_databases, args=(str(tmp_path), 10, start))
        for _ in range(3)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(BARRIER_TIMEOUT_S * 2)

    assert [process.exitcode for process in processes] == [0, 0, 0]


def _run_cli(command: str, db_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KB_DATABASE_URL": db_url, "KB_KB_ROOT": str(tmp_path / "kb_root")}
    return subprocess.run(
        [sys.executable, "-m", "kb_server.db", command],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_current_prints_the_head_revision(db_url: str, engine: Engine, tmp_path: Path) -> None:
    upgrade_schema(engine)

    result = _run_cli("current", db_url, tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == head_revision()


def test_cli_upgrade_of_a_too_new_database_fails_with_one_line(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'info.db'}"
    engine = make_engine(db_url)
    try:
        upgrade_schema(engine)
        with engine.begin() as connection:
            connection.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = 'f00dfeed'"))
    finally:
        engine.dispose()

    result = _run_cli("upgrade", db_url, tmp_path)

    assert result.returncode == EXIT_FATAL
    assert result.stderr.startswith("error:")
    assert len(result.stderr.strip().splitlines()) == 1
