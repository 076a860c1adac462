"""``python -m kb_server.cli migrate`` on a temporary KB root: through the same main() in this
process (the model the KB was built with is never loaded by the command), and once as a
subprocess through the ``kb_server.cli`` dispatcher."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from kb_server.cli.migrate import main
from kb_server.knowledge.maintenance import KbMaintenance
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.settings import PROJECT_ROOT, Settings, load_settings
from tests.unit.conftest import CountingEmbedder

KB = "notes"
DOCS = {
    "cats.txt": "Cats sleep for most of the day and purr when they are content.",
    "rockets.md": "# Rockets\n\nRockets reach orbit by burning fuel in stages.",
    "退货.txt": "退货政策：商品签收后七天内可以申请无理由退货，退款会在三个工作日内原路返回。",
}


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def notes(service: KnowledgeBaseService) -> KnowledgeBaseService:
    service.create_kb(KB)
    for name, text in DOCS.items():
        service.save_file(KB, name, text.encode("utf-8"), override=True)
    assert sorted(service.add_files(KB, list(DOCS)).files_indexed) == sorted(DOCS)
    return service


@pytest.fixture
def migrate(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kb_settings: Settings
) -> Callable[..., CliResult]:
    # The settings file's model is not the KB's: nothing may need to load either.
    monkeypatch.setenv("KB_KB_ROOT", str(kb_settings.kb_root))

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main(["--quiet", *args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def test_migrate_to_postgres_copies_once_and_refuses_a_second_copy(
    notes: KnowledgeBaseService,
    counting_embedder: CountingEmbedder,
    migrate: Callable[..., CliResult],
    kb_settings: Settings,
    pg_url: str,
) -> None:
    embedded = counting_embedder.texts_embedded
    chunks = notes.get_kb(KB).chunk_count

    done = migrate("--kb", KB, "--to", "pg", "--to-database-url", pg_url)

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{KB}: faiss -> pg, sqlite:///")
    assert f"{chunks} chunks, {chunks} vectors copied" in done.stdout
    pg = KnowledgeBaseService(
        load_settings(kb_root=kb_settings.kb_root, database_url=pg_url),
        embedder_provider=lambda _: counting_embedder,
        locks=notes.locks,
    )
    assert pg.kb_row(KB).vs_type == "pg"
    assert KbMaintenance(pg).check(KB).consistent
    hit = pg.search(KB, "why do cats purr", top_k=1, search_mode="hybrid")[0]
    assert hit.chunk.file_name == "cats.txt"
    assert counting_embedder.texts_embedded == embedded
    assert notes.kb_row(KB).vs_type == "faiss"

    again = migrate("--kb", KB, "--to", "pg", "--to-database-url", pg_url)
    assert again.returncode == 2
    assert "already exists" in again.stderr
    # Back into the same folder while the SQLite KB keeps its FAISS files: refused.
    in_pg = ("--from-database-url", pg_url, "--to-database-url", pg_url)
    back = migrate("--all", "--to", "faiss", *in_pg)
    assert back.returncode == 2
    assert "not empty" in back.stderr
    assert pg.kb_row(KB).vs_type == "pg"
    same = migrate("--all", "--to", "pg", *in_pg)
    assert (same.returncode, same.stdout) == (
        0,
        f"{KB}: already uses the pg store; nothing to do\n",
    )


def test_migrate_with_delete_source_moves_the_kb(
    notes: KnowledgeBaseService, migrate: Callable[..., CliResult], pg_url: str
) -> None:
    done = migrate("--kb", KB, "--to", "pg", "--to-database-url", pg_url, "--delete-source")
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("source deleted")
    assert not notes.kb_exists(KB)
    assert (notes.paths(KB).content / "cats.txt").is_file()
    # Now the same database switches stores in place, both ways.
    in_pg = ("--from-database-url", pg_url, "--to-database-url", pg_url)
    to_faiss = migrate("--kb", KB, "--to", "faiss", *in_pg)
    assert to_faiss.returncode == 0, to_faiss.stderr
    assert to_faiss.stdout.startswith(f"{KB}: pg -> faiss: ")
    to_pg = migrate("--kb", KB, "--to", "pg", *in_pg)
    assert to_pg.returncode == 0, to_pg.stderr
    assert to_pg.stdout.startswith(f"{KB}: faiss -> pg: ")


def test_fatal_errors_exit_2_with_one_message(
    notes: KnowledgeBaseService, migrate: Callable[..., CliResult]
) -> None:
    unknown = migrate("--kb", "nope", "--to", "faiss")
    assert (unknown.returncode, unknown.stdout) == (2, "")
    assert unknown.stderr == "error: knowledge base 'nope' does not exist\n"
    no_pg = migrate("--kb", KB, "--to", "pg")
    assert no_pg.returncode == 2
    assert no_pg.stderr.startswith("error: the pg store needs PostgreSQL")
    delete_in_place = migrate("--kb", KB, "--to", "pg", "--delete-source")
    assert delete_in_place.returncode == 2
    assert "--delete-source" in delete_in_place.stderr
    unreachable = migrate(
        "--kb", KB, "--to", "pg", "--to-database-url", "postgresql+psycopg://kb@127.0.0.1:1/kb"
    )
    assert unreachable.returncode == 2
    assert unreachable.stderr.startswith("error: database: OperationalError")
    assert len(unreachable.stderr.splitlines()) == 1
    nothing = migrate("--all", "--to", "faiss")
    assert (nothing.returncode, nothing.stdout) == (
        0,
        f"{KB}: already uses the faiss store; nothing to do\n",
    )
    assert notes.kb_row(KB).vs_type == "faiss"


def test_the_dispatcher_runs_migrate(tmp_path: Path) -> None:
    env = {**os.environ, "KB_KB_ROOT": str(tmp_path / "kbs"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "kb_server.cli", "migrate", "--kb", "nope", "--to", "faiss"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == "error: knowledge base 'nope' does not exist"
    usage = subprocess.run(
        [sys.executable, "-m", "kb_server.cli", "migrate", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
        cwd=PROJECT_ROOT,
    )
    assert usage.returncode == 0
    assert "--to-database-url" in usage.stdout
