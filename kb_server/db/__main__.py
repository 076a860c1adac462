"""``python -m kb_server.db {upgrade,current,heads}``: the metadata database's schema revision.

``upgrade`` brings the configured database (``database_url`` / KB_DATABASE_URL, default the
SQLite file under kb_root) to this release's schema; the server does the same when it starts.
Exit codes: 0 done, 2 a failure (one ``error: ...`` line on stderr).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from alembic.util import CommandError
from sqlalchemy.exc import SQLAlchemyError

from kb_server.cli.errors import EXIT_FATAL, exit_status_of
from kb_server.db.engine import Database
from kb_server.db.schema import SchemaTooNewError, current_revision, head_revision
from kb_server.settings import load_settings

EXIT_OK = 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kb_server.db", description=__doc__)
    parser.add_argument("--config", type=Path, help="settings file (default: configs/...)")
    parser.add_argument(
        "command",
        choices=("upgrade", "current", "heads"),
        help="upgrade: migrate to head; current: the database's revision; heads: this code's",
    )
    return parser.parse_args(argv)


def _revision_line(revision: str | None) -> str:
    if revision is None:
        return "none (no schema yet; run upgrade)\n"
    return f"{revision} (head)\n" if revision == head_revision() else f"{revision}\n"


def run(args: argparse.Namespace) -> int:
    if args.command == "heads":
        sys.stdout.write(_revision_line(head_revision()))
        return EXIT_OK
    database = Database.from_settings(load_settings(args.config))
    try:
        if args.command == "upgrade":
            database.create_tables()
        sys.stdout.write(_revision_line(current_revision(database.engine)))
    finally:
        database.dispose()
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return exit_status_of(lambda: run(args))
    except (SchemaTooNewError, SQLAlchemyError, CommandError) as exc:
        # SQLAlchemy's messages run over several lines (the SQL, a link); the first one says it.
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        sys.stderr.write(f"error: {first_line}\n")
        return EXIT_FATAL


if __name__ == "__main__":
    sys.exit(main())
