"""init_database.py on a temporary KB root: as a subprocess where a fresh process matters (the
first build, a fatal error), otherwise through the same main() in this process, so the model
loads once."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from kb_server.cli.init_database import main
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.settings import PROJECT_ROOT, load_settings
from tests.conftest import BackendOptions, backend_env

pytestmark = pytest.mark.both_backends

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(autouse=True)
def _backend_env(backend_options: BackendOptions, monkeypatch: pytest.MonkeyPatch) -> None:
    """Subprocesses and main() here read the backend from the environment."""
    for name, value in backend_env(backend_options).items():
        monkeypatch.setenv(name, value)


def run_init(
    kb_root: Path, *args: str, model: str | None = MINILM
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KB_KB_ROOT": str(kb_root), "HF_HUB_OFFLINE": "1"}
    if model:
        env["KB_EMBEDDING__MODEL"] = model
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "init_database.py"), "--quiet", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
        cwd=PROJECT_ROOT,
    )


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., CliResult]:
    def run(kb_root: Path, *args: str) -> CliResult:
        monkeypatch.setenv("KB_KB_ROOT", str(kb_root))
        monkeypatch.setenv("KB_EMBEDDING__MODEL", MINILM)
        capsys.readouterr()
        code = main(["--quiet", *args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def counts(stdout: str, kb: str) -> dict[str, int]:
    line = next(line for line in stdout.splitlines() if line.startswith(f"{kb}:"))
    return {
        label: int(n)
        for n, label in re.findall(
            r"(\d+) (indexed|unchanged|failed|removed|embedded|reused)", line
        )
    }


@pytest.fixture
def kb_root(tmp_path: Path) -> Path:
    content = tmp_path / "kbs" / "notes" / "content"
    content.mkdir(parents=True)
    (content / "cats.txt").write_text("Cats sleep most of the day and purr when content.", "utf-8")
    (content / "rockets.txt").write_text("Rockets reach orbit by burning fuel in stages.", "utf-8")
    return tmp_path / "kbs"


def test_recreate_vs_builds_the_samples_with_the_fallback_model_then_reuses_everything(
    tmp_path: Path,
) -> None:
    kb_root = tmp_path / "kbs"
    shutil.copytree(PROJECT_ROOT / "knowledge_base" / "samples", kb_root / "samples")
    samples = len(list((kb_root / "samples" / "content").iterdir()))

    first = run_init(kb_root, "--recreate-vs", model=None)
    assert first.returncode == 0, first.stderr
    assert counts(first.stdout, "samples")["indexed"] == samples
    assert counts(first.stdout, "samples")["embedded"] > samples
    assert "bge-small-zh-v1.5" in first.stderr  # the loud fallback warning names the model
    assert "Traceback" not in first.stderr

    second = run_init(kb_root, "--recreate-vs", model=None)
    assert second.returncode == 0, second.stderr
    assert counts(second.stdout, "samples")["embedded"] == 0
    assert counts(second.stdout, "samples")["unchanged"] == samples


def test_increment_prune_and_check_follow_the_content_folder(
    kb_root: Path, cli: Callable[..., CliResult]
) -> None:
    content = kb_root / "notes" / "content"
    assert cli(kb_root, "--recreate-vs").returncode == 0

    (content / "garden.txt").write_text("Tomatoes need full sun and water.", "utf-8")
    (content / "cats.txt").unlink()
    checked = run_init(kb_root, "--check")
    assert checked.returncode == 1
    assert "cats.txt" in checked.stdout
    assert "garden.txt" in checked.stdout

    updated = run_init(kb_root, "-i", "--prune-db", "--check")
    assert updated.returncode == 0, updated.stdout + updated.stderr
    assert counts(updated.stdout, "notes")["indexed"] == 1
    assert counts(updated.stdout, "notes")["removed"] == 1
    assert "notes: consistent" in updated.stdout


def test_check_reports_a_lost_index_and_repair_mends_it(
    kb_root: Path, cli: Callable[..., CliResult]
) -> None:
    assert cli(kb_root, "--recreate-vs").returncode == 0
    service = KnowledgeBaseService(load_settings())  # the CLI's settings (environment)
    service.drop_vectors(service.kb_row("notes"))  # index.faiss deleted, or the table dropped

    checked = cli(kb_root, "--check")
    assert checked.returncode == 1
    assert "chunks without vectors" in checked.stdout

    repaired = cli(kb_root, "--check", "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "notes: repaired" in repaired.stdout
    assert "notes: consistent" in repaired.stdout


def test_prune_folder_deletes_files_the_database_does_not_know(
    kb_root: Path, cli: Callable[..., CliResult]
) -> None:
    assert cli(kb_root, "--recreate-vs").returncode == 0
    stray = kb_root / "notes" / "content" / "stray.txt"
    stray.write_text("not indexed", "utf-8")
    result = cli(kb_root, "--prune-folder")
    assert result.returncode == 0
    assert not stray.exists()
    assert (kb_root / "notes" / "content" / "cats.txt").exists()


def test_unknown_kb_is_one_clear_error(kb_root: Path, cli: Callable[..., CliResult]) -> None:
    result = cli(kb_root, "--check", "-n", "nope")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error:")
    assert "nope" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_model_without_fallback_is_one_clear_error(kb_root: Path) -> None:
    env_model = "BAAI/bge-small-zh-v1.5"
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "init_database.py"), "-q", "--recreate-vs"],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "KB_KB_ROOT": str(kb_root),
            "HF_HUB_OFFLINE": "1",
            "KB_EMBEDDING__MODEL": env_model,
            "KB_EMBEDDING__FALLBACK_MODEL": "null",
        },
        timeout=300,
        check=False,
    )
    assert result.returncode == 2
    assert env_model in result.stderr
    assert "download" in result.stderr
    assert "Traceback" not in result.stderr
