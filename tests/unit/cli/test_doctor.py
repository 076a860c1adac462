"""``python -m kb_server.cli doctor`` through its main(): a table or JSON, exit 1 on a FAIL."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kb_server.api.app import create_app
from kb_server.cli.doctor import main
from kb_server.embedding.base import Embedder
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.settings import load_settings
from tests.conftest import BackendOptions
from tests.servers import serve_on_loopback

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
MISSING_MODEL = "example-org/no-such-model"
KB = "shop"
FILES = {
    "returns.txt": "Returns are accepted within seven days. Refunds take three working days.",
    "shipping.txt": "Orders ship within a day. Remote areas take longer to reach.",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def listening_socket() -> Iterator[socket.socket]:
    """A port taken on 127.0.0.1 by something that is not ours (it never answers)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken


def write_settings(tmp_path: Path, backend_options: BackendOptions, **overrides: Any) -> Path:
    """A settings file for a healthy install on tmp_path, with ``overrides`` on top."""
    values: dict[str, Any] = {
        "kb_root": str(tmp_path / "kb_root"),
        "embedding": {"model": MINILM, "fallback_model": None, "device": "cpu"},
        "retrieval": {"reranker": {"model": None}},
        "ocr": {"enabled": False},
        "api": {"port": free_port()},
        "webui": {"port": free_port()},
        **backend_options,
    }
    for key, value in overrides.items():
        values[key] = {**values.get(key, {}), **value} if isinstance(value, dict) else value
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def add_kb(config: Path, embedder: Embedder) -> KnowledgeBaseService:
    service = KnowledgeBaseService(load_settings(config), embedder_provider=lambda _: embedder)
    service.create_kb(KB)
    for name, text in FILES.items():
        service.save_file(KB, name, text.encode(), override=False)
    service.add_files(KB, list(FILES))
    return service


def doctor(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    """Exit code and rows by check name, from the JSON output."""
    code = main(["--config", str(config), "--json"])
    body = json.loads(capsys.readouterr().out)
    assert body["ok"] == (code == 0)
    return code, {row["check"]: row for row in body["checks"]}


@pytest.mark.both_backends
def test_a_healthy_setup_exits_0(
    tmp_path: Path,
    backend_options: BackendOptions,
    embedder: Embedder,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_settings(tmp_path, backend_options)
    add_kb(config, embedder).db.engine.dispose()
    code, rows = doctor(config, capsys)
    assert code == 0
    assert {row["status"] for row in rows.values()} == {"ok"}
    assert {"python", "packages", "torch device", "database", "free disk", f"kb {KB}"} <= set(rows)
    assert f"embedding model {MINILM}" in rows
    assert {"port API", "port web UI"} <= set(rows)


def test_a_missing_reranker_warns_and_still_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_settings(tmp_path, {}, retrieval={"reranker": {"model": MISSING_MODEL}})
    code, rows = doctor(config, capsys)
    assert code == 0
    assert rows[f"reranker {MISSING_MODEL}"]["status"] == "warn"
    assert f"hf download {MISSING_MODEL}" in rows[f"reranker {MISSING_MODEL}"]["detail"]


@pytest.mark.both_backends
def test_a_missing_model_and_a_broken_kb_fail_with_exit_1(
    tmp_path: Path,
    backend_options: BackendOptions,
    embedder: Embedder,
    capsys: pytest.CaptureFixture[str],
) -> None:
    healthy = write_settings(tmp_path, backend_options)
    service = add_kb(healthy, embedder)
    # What a crash between the rows' commit and the vectors' save leaves behind.
    store = service.store_for(service.kb_row(KB))
    store.delete([min(store.ids())])
    store.save()
    service.db.engine.dispose()
    config = write_settings(tmp_path, backend_options, embedding={"model": MISSING_MODEL})

    code = main(["--config", str(config)])
    table = capsys.readouterr().out
    assert code == 1
    model_row = next(line for line in table.splitlines() if MISSING_MODEL in line)
    assert " FAIL " in model_row
    assert f"hf download {MISSING_MODEL}" in model_row
    kb_row = next(line for line in table.splitlines() if line.startswith(f"kb {KB}"))
    assert " FAIL " in kb_row
    assert "1 chunks without vectors" in kb_row
    assert f"init_database.py --check --repair -n {KB}" in kb_row


def test_a_port_taken_on_loopback_fails(
    tmp_path: Path, listening_socket: socket.socket, capsys: pytest.CaptureFixture[str]
) -> None:
    port = listening_socket.getsockname()[1]
    config = write_settings(tmp_path, {}, api={"host": "127.0.0.1", "port": port})
    code, rows = doctor(config, capsys)
    assert code == 1
    assert rows["port API"]["status"] == "FAIL"
    assert "api.port" in rows["port API"]["detail"]
    assert rows["port web UI"]["status"] == "ok"


def test_a_port_held_by_our_running_api_is_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(load_settings(write_settings(tmp_path, {})))
    with serve_on_loopback(app, name="kb-api") as base:
        config = write_settings(tmp_path, {}, api={"port": int(base.rsplit(":", 1)[1])})
        code, rows = doctor(config, capsys)
    assert code == 0
    assert rows["port API"]["status"] == "ok"
    assert "running API" in rows["port API"]["detail"]


def test_one_port_for_two_parts_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    config = write_settings(tmp_path, {}, api={"port": port}, webui={"port": port})
    code, rows = doctor(config, capsys)
    assert code == 1
    assert rows["port web UI"]["status"] == "FAIL"


@pytest.mark.parametrize(
    "url",
    [
        "no-such-dialect://somewhere/db",
        "postgresql+psycopg://kb@127.0.0.1:{port}/kb",  # nothing listens there
    ],
)
def test_a_bad_database_url_fails(
    tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_settings(tmp_path, {}, database_url=url.format(port=free_port()))
    code, rows = doctor(config, capsys)
    assert code == 1
    assert rows["database"]["status"] == "FAIL"
    assert not any(check.startswith("kb") for check in rows)


def test_a_missing_local_llm_directory_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "Qwen2.5-1.5B-Instruct"
    config = write_settings(
        tmp_path,
        {},
        local_models={"qwen": {"path": str(missing), "port": free_port(), "device": "cpu"}},
    )
    code, rows = doctor(config, capsys)
    assert code == 1
    assert rows["local LLM qwen"]["status"] == "FAIL"
    assert "hf download" in rows["local LLM qwen"]["detail"]
    assert rows["port LLM worker qwen"]["status"] == "ok"


def test_settings_that_do_not_load_exit_2(tmp_path: Path) -> None:
    config = write_settings(tmp_path, {}, api={"port": 0})
    assert main(["--config", str(config)]) == 2
