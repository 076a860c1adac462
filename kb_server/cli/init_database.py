"""Build and maintain knowledge bases from their content folders.

Flags follow Langchain-Chatchat 0.2.x's init_database.py, plus --check [--repair].
Exit codes: 0 done, 1 --check found problems, 2 a fatal error (one message, no traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from kb_server.cli.errors import exit_status_of
from kb_server.cli.progress import TqdmProgress
from kb_server.db.engine import Database
from kb_server.knowledge.maintenance import KbMaintenance
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.knowledge.types import CheckReport, IngestReport
from kb_server.settings import load_settings

EXIT_OK, EXIT_PROBLEMS = 0, 1


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="init_database.py", description="Build and maintain knowledge bases."
    )
    add = parser.add_argument
    add(
        "-r",
        "--recreate-vs",
        action="store_true",
        help="make each KB match its content folder (unchanged files are not embedded again)",
    )
    add("--force", action="store_true", help="with --recreate-vs: embed every file again")
    add("--create-tables", action="store_true", help="create the database tables")
    add(
        "--clear-tables",
        action="store_true",
        help="drop and recreate the database tables (all KB metadata is lost)",
    )
    add(
        "-u",
        "--update-in-db",
        action="store_true",
        help="re-index the files the database knows (changed ones are embedded again)",
    )
    add(
        "-i",
        "--increment",
        action="store_true",
        help="index files of the content folders that the database does not know yet",
    )
    add(
        "--prune-db",
        action="store_true",
        help="delete rows and vectors of files removed from the content folders",
    )
    add(
        "--prune-folder",
        action="store_true",
        help="delete files from the content folders that the database does not know",
    )
    add(
        "--check",
        action="store_true",
        help="compare database, vector index and content folder; exit 1 on any mismatch",
    )
    add("--repair", action="store_true", help="with --check: mend what the check finds")
    add("-n", "--kb-name", nargs="+", default=[], help="knowledge bases to work on (default: all)")
    add("-e", "--embed-model", help="embedding model for new KBs and for --recreate-vs")
    add("--config", type=Path, help="settings file (default: configs/settings.yaml)")
    add("-q", "--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.repair and not args.check:
        parser.error("--repair needs --check")
    if args.force and not args.recreate_vs:
        parser.error("--force needs --recreate-vs")
    return args


def summary_line(name: str, report: IngestReport) -> str:
    rate = report.chunks_embedded / report.seconds if report.seconds > 0 else 0.0
    files = len(report.files_indexed) + len(report.files_unchanged) + len(report.files_failed)
    return (
        f"{name}: {files} files ({len(report.files_indexed)} indexed, "
        f"{len(report.files_unchanged)} unchanged, {len(report.files_failed)} failed, "
        f"{len(report.files_removed)} removed); "
        f"{report.chunks_embedded + report.chunks_reused} chunks "
        f"({report.chunks_embedded} embedded, {report.chunks_reused} reused) "
        f"in {report.seconds:.1f} s, {rate:.1f} chunks/s"
        + (
            f" (+{report.model_load_seconds:.1f} s loading the model)"
            if report.model_load_seconds >= 0.05
            else ""
        )
    )


def check_lines(report: CheckReport) -> list[str]:
    state = "consistent" if report.consistent else "INCONSISTENT"
    lines = [f"{report.kb_name}: {state}"]
    for label, items in report.problems().items():
        if items:
            shown = ", ".join(str(item) for item in items[:10])
            more = f" (+{len(items) - 10} more)" if len(items) > 10 else ""
            lines.append(f"  {len(items)} {label}: {shown}{more}")
    for file_name, error in report.failed_files.items():
        lines.append(f"  failed to load {file_name}: {error}")
    return lines


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    out = sys.stdout
    if args.clear_tables:
        database = Database.from_settings(settings)
        database.drop_tables()
        database.create_tables()
        out.write("tables cleared; run --recreate-vs to index the content folders again\n")
    service = KnowledgeBaseService(settings)
    maintenance = KbMaintenance(service)
    names = args.kb_name or sorted(
        set(maintenance.folder_kbs()) | {kb.name for kb in service.list_kbs()}
    )
    status = EXIT_OK
    acted = args.clear_tables or args.create_tables
    for name in names:
        progress = TqdmProgress(name, enabled=not args.quiet)
        report = IngestReport()
        if args.recreate_vs:
            maintenance.ensure_kb(name, args.embed_model)
            report.merge(
                maintenance.recreate(
                    name, embed_model=args.embed_model, force=args.force, progress=progress
                )
            )
        else:
            service.kb_row(name)  # an unknown KB is an error, not silently skipped
        if args.prune_db:
            report.files_removed += maintenance.prune_db(name)
        if args.prune_folder:
            for file_name in maintenance.prune_folder(name):
                out.write(f"{name}: deleted {file_name} from content/\n")
        if args.update_in_db:
            report.merge(maintenance.update_in_db(name, progress=progress))
        if args.increment:
            report.merge(maintenance.increment(name, progress=progress))
        progress.close()
        if args.recreate_vs or args.update_in_db or args.increment or args.prune_db:
            acted = True
            out.write(summary_line(name, report) + "\n")
            for file_name, reason in report.files_failed.items():
                out.write(f"  failed: {file_name}: {reason}\n")
        if args.check:
            acted = True
            found = maintenance.check(name)
            if args.repair and not found.consistent:
                maintenance.repair(name, progress=TqdmProgress(name, enabled=not args.quiet))
                out.write(f"{name}: repaired\n")
                found = maintenance.check(name)
            out.writelines(line + "\n" for line in check_lines(found))
            if not found.consistent:
                status = EXIT_PROBLEMS
    if not acted:
        out.write(
            f"tables ready in {service.db.url}; knowledge bases: {', '.join(names) or 'none'}. "
            "Use --recreate-vs to build them (see --help).\n"
        )
    return status


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    return exit_status_of(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
