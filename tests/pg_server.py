"""A real PostgreSQL 16 with pgvector for tests, on a loopback TCP port in a temp directory.

The binaries come from the PyPI package ``pgserver`` (PostgreSQL with the vector extension
built in). pgserver's own launcher listens on a unix socket only, so the server is started here
with its initdb and pg_ctl, listening on 127.0.0.1 like a server a deployment would use.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

START_TIMEOUT_S = 60
SUPERUSER = "postgres"
PG_SYSTEM_USER = "pgserver"


def _bin(name: str) -> str:
    from pgserver._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _system_user() -> str | None:
    """PostgreSQL refuses to run as root; then it runs as pgserver's unprivileged user."""
    if os.name == "nt" or os.geteuid() != 0:
        return None
    from pgserver.utils import ensure_user_exists

    ensure_user_exists(PG_SYSTEM_USER)
    return PG_SYSTEM_USER


def _give_to(user: str, directory: Path) -> None:
    import pwd

    from pgserver.utils import ensure_prefix_permissions

    entry = pwd.getpwnam(user)
    directory.mkdir(parents=True, exist_ok=True)
    ensure_prefix_permissions(directory)
    os.chown(directory, entry.pw_uid, entry.pw_gid)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PgServer:
    """One running cluster; ``new_database()`` hands out empty databases with pgvector."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self._names = itertools.count(1)

    def url(self, database: str = "postgres", *, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> None:
        with psycopg.connect(self.url(database, driver="postgresql"), autocommit=True) as conn:
            conn.execute(sql.encode())

    def new_database(self, prefix: str = "kb_test") -> str:
        """A fresh database with the vector extension; returns its SQLAlchemy URL."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        self.execute(f'CREATE DATABASE "{name}"')
        self.execute("CREATE EXTENSION IF NOT EXISTS vector", database=name)
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[-1]
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def running_pg_server(base_dir: Path) -> Iterator[PgServer]:
    """initdb into ``base_dir``, start on a free loopback port, stop (fast) on exit."""
    data_dir = base_dir / "pgdata"
    log_file = base_dir / "log" / "postgres.log"
    user = _system_user()
    if user is not None:
        _give_to(user, data_dir)
        _give_to(user, log_file.parent)
    else:
        log_file.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [_bin("initdb"), "-D", str(data_dir), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
        timeout=START_TIMEOUT_S,
        user=user,
    )
    port = _free_port()
    options = f"-h 127.0.0.1 -p {port} -k '' -c fsync=off -c max_connections=200"
    start = ["-o", options, "-l", str(log_file), "-w", "-t", str(START_TIMEOUT_S), "start"]
    subprocess.run(
        [_bin("pg_ctl"), "-D", str(data_dir), *start],
        check=True,
        capture_output=True,
        timeout=START_TIMEOUT_S + 10,
        user=user,
    )
    server = PgServer(data_dir, port)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                server.execute("SELECT 1")
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield server
    finally:
        subprocess.run(
            [_bin("pg_ctl"), "-D", str(data_dir), "-m", "immediate", "-w", "stop"],
            check=False,
            capture_output=True,
            timeout=60,
            user=user,
        )
