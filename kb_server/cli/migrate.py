"""Move knowledge bases to another store or database without embedding again.

``python -m kb_server.cli migrate --kb NAME --to pg [--to-database-url URL]``: with no URL (or
the same database) the KB switches its store in place; with another database it is copied
there (new KB row, files, chunks, vectors, keyword index) and the source stays unless
``--delete-source``. Both sides use the KB root of the settings, so uploaded files stay put.
Exit codes: 0 done, 2 a fatal error (one message, no traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import make_url
from sqlalchemy.exc import SQLAlchemyError
from tqdm import tqdm

from kb_server.cli.errors import EXIT_FATAL, exit_status_of
from kb_server.db.engine import Database, database_url
from kb_server.embedding.base import Embedder
from kb_server.errors import EmbeddingModelUnavailableError, InvalidInputError
from kb_server.knowledge.migrate import KbMigration, MigrationReport, same_database_url
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.settings import Settings, load_settings
from kb_server.stores.registry import VECTOR_STORES

EXIT_OK = 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m kb_server.cli migrate",
        description="Move knowledge bases to another vector store or database, copying "
        "their vectors (the embedding model is not needed).",
    )
    add = parser.add_argument
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--kb",
        action="append",
        default=[],
        metavar="NAME",
        help="a knowledge base to move (repeat for more)",
    )
    which.add_argument("--all", action="store_true", help="every knowledge base of the source")
    add("--to", required=True, choices=sorted(VECTOR_STORES), help="the target store type")
    add(
        "--to-database-url",
        metavar="URL",
        help="the target metadata database (default: database_url of the settings); a "
        "PostgreSQL target also holds the pg store",
    )
    add(
        "--from-database-url",
        metavar="URL",
        help="the source metadata database (default: database_url of the settings); a "
        "PostgreSQL source also holds its pg store",
    )
    add(
        "--delete-source",
        action="store_true",
        help="after a verified copy to another database, delete the source KB's rows and "
        "indexes (uploaded files stay)",
    )
    add("--config", type=Path, help="settings file (default: configs/settings.yaml)")
    add("-q", "--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


class TqdmMigrationProgress:
    """Implements knowledge.migrate.MigrationProgress on stderr: one bar per stage."""

    def __init__(self, label: str, *, enabled: bool = True) -> None:
        self.label = label
        self.enabled = enabled
        self._bar: tqdm[Any] | None = None

    def stage(self, name: str, total: int) -> None:
        self.close()
        self._bar = tqdm(
            total=total,
            desc=f"{self.label} {name}",
            unit="chunk",
            file=sys.stderr,
            disable=not self.enabled,
            leave=False,
        )

    def advance(self, count: int) -> None:
        if self._bar is not None:
            self._bar.update(count)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def with_database(settings: Settings, url: str | None) -> Settings:
    """``settings`` on another metadata database; a PostgreSQL one holds its pg store too."""
    if url is None or same_database_url(url, database_url(settings)):
        return settings
    values = settings.model_dump()
    values["database_url"] = url
    if make_url(url).get_backend_name() == "postgresql":
        values["vector_store"]["pg"]["url"] = None
    return Settings.model_validate(values)


def _no_model(model: str) -> Embedder:
    raise EmbeddingModelUnavailableError(model, "a migration copies vectors and embeds nothing")


def shown_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def report_line(report: MigrationReport, source: Database, target: Database) -> str:
    where = "" if report.same_database else f", {shown_url(source.url)} -> {shown_url(target.url)}"
    deleted = "; source deleted" if report.source_deleted else ""
    return (
        f"{report.kb_name}: {report.from_vs_type} -> {report.to_vs_type}{where}: "
        f"{report.chunks} chunks, {report.vectors_copied} vectors copied, keyword index "
        f"filled, in {report.seconds:.1f} s{deleted}"
    )


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    source_settings = with_database(settings, args.from_database_url)
    target_settings = with_database(settings, args.to_database_url)
    source = KnowledgeBaseService(source_settings, embedder_provider=_no_model)
    target = source
    if not same_database_url(database_url(source_settings), database_url(target_settings)):
        # One KB root, one lock file per KB: both sides must share the lock objects.
        target = KnowledgeBaseService(
            target_settings, embedder_provider=_no_model, locks=source.locks
        )
    elif args.delete_source:
        raise InvalidInputError("--delete-source needs a target in another database")
    names = args.kb or [kb.name for kb in source.list_kbs()]
    out = sys.stdout
    if not names:
        out.write(f"no knowledge bases in {shown_url(source.db.url)}\n")
    for name in names:
        kb = source.kb_row(name)  # an unknown KB is an error, not silently skipped
        if target is source and kb.vs_type == args.to:
            out.write(f"{kb.name}: already uses the {args.to} store; nothing to do\n")
            continue
        progress = TqdmMigrationProgress(kb.name, enabled=not args.quiet)
        try:
            report = KbMigration(source, target, progress=progress).migrate(
                kb.name, args.to, delete_source=args.delete_source
            )
        finally:
            progress.close()
        out.write(report_line(report, source.db, target.db) + "\n")
    return EXIT_OK


def _run_reporting_database_errors(args: argparse.Namespace) -> int:
    try:
        return run(args)
    except SQLAlchemyError as exc:
        # Connection refused, a bad URL, a missing driver: one line, no traceback.
        first_line = next(iter(str(exc).splitlines()), "")
        sys.stderr.write(f"error: database: {type(exc).__name__}: {first_line}\n")
        return EXIT_FATAL


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    return exit_status_of(lambda: _run_reporting_database_errors(args))


if __name__ == "__main__":
    sys.exit(main())
