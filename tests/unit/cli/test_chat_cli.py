"""The terminal chat, driven through its stdin."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from kb_server.cli.chat import main
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.settings import PROJECT_ROOT, Settings

REFUNDS = "Refunds are paid within fourteen days of the return. Returns need the receipt."


@pytest.fixture
def shop(service: KnowledgeBaseService, monkeypatch: pytest.MonkeyPatch) -> Settings:
    service.create_kb("shop")
    service.save_file("shop", "refunds.txt", REFUNDS.encode(), override=False)
    service.add_files("shop", ["refunds.txt"])
    monkeypatch.setenv("KB_KB_ROOT", str(service.settings.kb_root))
    monkeypatch.setenv("KB_EMBEDDING__MODEL", service.settings.embedding.model)
    return service.settings


def test_kb_answers_list_sources_and_clear_forgets(shop: Settings) -> None:
    out = io.StringIO()
    stdin = io.StringIO("How long do refunds take?\n/clear\n/exit\nnever read\n")
    assert main(["--kb", "shop", "--model", "extractive"], stdin=stdin, stdout=out) == 0
    text = out.getvalue()
    assert "Refunds are paid within fourteen days of the return. [1]" in text
    assert "[1] shop/refunds.txt" in text
    assert "（历史已清空）" in text
    assert "never read" not in text


def test_unknown_model_is_reported_and_the_chat_goes_on(shop: Settings) -> None:
    out = io.StringIO()
    stdin = io.StringIO("hello\n")
    assert main(["--model", "nope"], stdin=stdin, stdout=out) == 0
    assert "错误:" in out.getvalue()
    assert "nope" in out.getvalue()


def test_the_chat_runs_as_a_program_reading_a_pipe(shop: Settings) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kb_server.cli", "chat", "--kb", "shop"],
        input="How long do refunds take?\n",
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        cwd=PROJECT_ROOT,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "fourteen days" in result.stdout
    assert "Traceback" not in result.stderr
