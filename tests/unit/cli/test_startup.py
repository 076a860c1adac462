"""startup.py as a real process: its children on free loopback ports, signals, failures."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kb_server.cli.processes import ChildSpec, StartupError, check_ports
from kb_server.cli.startup import banner, package_version
from kb_server.embedding.base import Embedder
from kb_server.settings import PROJECT_ROOT, load_settings

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
BANNER_RULE = "=" * 72
TINY_STREAMLIT_APP = 'import streamlit as st\n\nst.write("知识库")\n'


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    # An orphan nobody reaped is a zombie: it no longer runs.
    return not stat.is_file() or stat.read_text().split(") ")[-1][:1] != "Z"


class Startup:
    """startup.py running with its output (and its children's) in files under tmp_path."""

    def __init__(self, tmp_path: Path, env: dict[str, str], *args: str) -> None:
        self.out_path, self.err_path = tmp_path / "out.log", tmp_path / "err.log"
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, str(PROJECT_ROOT / "startup.py"), *args],
                stdout=out,
                stderr=err,
                env=env,
                cwd=tmp_path,
            )

    @property
    def out(self) -> str:
        return self.out_path.read_text(encoding="utf-8", errors="replace")

    @property
    def err(self) -> str:
        return self.err_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_banner(self, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while self.out.count(BANNER_RULE) < 2:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no banner (exit {self.process.poll()}):\n{self.err}")
            time.sleep(0.2)
        return self.out

    def child_pids(self) -> dict[str, int]:
        return {
            label: int(pid)
            for label, pid in re.findall(r"startup: (.+) is up \(pid (\d+)\)", self.err)
        }

    def wait(self, timeout_s: float) -> int:
        return self.process.wait(timeout=timeout_s)


@pytest.fixture
def base_env(tmp_path: Path, embedder: Embedder, model_export_dir: Path) -> dict[str, str]:
    """The run's ONNX export of MiniLM (made by ``embedder``) is used: exported again under the
    temp KB root it took about a minute of the 120 s the banner is waited for."""
    kept = {name: value for name, value in os.environ.items() if not name.startswith("KB_")}
    return {
        **kept,
        "HF_HUB_OFFLINE": "1",
        "KB_KB_ROOT": str(tmp_path / "kbs"),
        "KB_EMBEDDING__MODEL": MINILM,
        "KB_EMBEDDING__DEVICE": "cpu",
        "KB_EMBEDDING__EXPORT_DIR": str(model_export_dir),
        "KB_OCR__ENABLED": "false",
    }


@pytest.fixture
def running() -> Iterator[list[Startup]]:
    """Startups a test began; any still running at the end are killed with their groups."""
    started: list[Startup] = []
    yield started
    for startup in started:
        if startup.process.poll() is None:
            startup.process.send_signal(signal.SIGTERM)
            try:
                startup.wait(30)
            except subprocess.TimeoutExpired:
                startup.process.kill()


def assert_stops(startup: Startup, signal_number: int) -> None:
    pids = startup.child_pids()
    started = time.monotonic()
    startup.process.send_signal(signal_number)
    assert startup.wait(30) == 0, startup.err
    assert time.monotonic() - started < 30
    assert pids
    assert not [label for label, pid in pids.items() if pid_alive(pid)]


def test_all_builds_kbs_then_serves_api_and_webui_until_sigterm(
    tmp_path: Path, base_env: dict[str, str], running: list[Startup]
) -> None:
    content = tmp_path / "kbs" / "notes" / "content"
    content.mkdir(parents=True)
    (content / "cats.txt").write_text("猫一天大部分时间都在睡觉。Cats sleep a lot.", "utf-8")
    script = tmp_path / "tiny_app.py"
    script.write_text(TINY_STREAMLIT_APP, "utf-8")
    api_port, webui_port = free_port(), free_port()
    env = {**base_env, "KB_WEBUI__PORT": str(webui_port)}
    startup = Startup(
        tmp_path, env, "-a", "--api-port", str(api_port), "--webui-script", str(script)
    )
    running.append(startup)

    out = startup.wait_for_banner(timeout_s=120)

    api = f"http://127.0.0.1:{api_port}"
    assert httpx.get(f"{api}/health", timeout=5).status_code == 200
    listed = httpx.get(f"{api}/knowledge_base/list_knowledge_bases", timeout=10).json()
    assert "notes" in listed["data"]
    webui_health = httpx.get(f"http://127.0.0.1:{webui_port}/_stcore/health", timeout=5)
    assert (webui_health.status_code, webui_health.text) == (200, "ok")
    assert f"{api}/docs" in out
    assert f"http://127.0.0.1:{webui_port}" in out
    assert MINILM in out
    assert set(startup.child_pids()) == {"the API", "the web UI"}
    assert_stops(startup, signal.SIGTERM)


def test_llm_worker_starts_before_api_and_both_stop_on_sigint(
    tmp_path: Path, base_env: dict[str, str], tiny_qwen_dir: Path, running: list[Startup]
) -> None:
    worker_port, api_port = free_port(), free_port()
    env = {
        **base_env,
        "KB_LOCAL_MODELS__TINY__PATH": str(tiny_qwen_dir),
        "KB_LOCAL_MODELS__TINY__PORT": str(worker_port),
        "KB_LOCAL_MODELS__TINY__DEVICE": "cpu",
    }
    startup = Startup(tmp_path, env, "--llm-api", "--api", "--api-port", str(api_port))
    running.append(startup)

    out = startup.wait_for_banner(timeout_s=120)

    worker_health = httpx.get(f"http://127.0.0.1:{worker_port}/health", timeout=5)
    assert worker_health.status_code == 200
    assert httpx.get(f"http://127.0.0.1:{api_port}/health", timeout=5).status_code == 200
    assert startup.err.index("the LLM worker 'tiny' is up") < startup.err.index("starting the API")
    assert f"http://127.0.0.1:{worker_port}/v1" in out
    assert_stops(startup, signal.SIGINT)


def test_busy_port_exits_2_with_one_line_naming_it(
    tmp_path: Path, base_env: dict[str, str], running: list[Startup]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        startup = Startup(tmp_path, {**base_env, "KB_API__PORT": str(port)}, "--api")
        running.append(startup)

        assert startup.wait(30) == 2
        assert time.monotonic() - started < 15
    lines = startup.err.splitlines()
    assert len(lines) == 1, lines
    assert str(port) in lines[0]
    assert "KB_API__PORT" in lines[0]
    assert "Traceback" not in lines[0]


def test_worker_exiting_at_start_fails_startup_before_the_api(
    tmp_path: Path, base_env: dict[str, str], running: list[Startup]
) -> None:
    env = {
        **base_env,
        "KB_LOCAL_MODELS__BROKEN__PATH": str(tmp_path / "no-such-model"),
        "KB_LOCAL_MODELS__BROKEN__PORT": str(free_port()),
    }
    startup = Startup(tmp_path, env, "-a", "--no-init", "--api-port", str(free_port()))
    running.append(startup)

    assert startup.wait(60) == 1
    assert "exited with code 2" in startup.err
    assert "starting the API" not in startup.err
    assert BANNER_RULE not in startup.out


def test_part_dying_while_running_exits_1(
    tmp_path: Path, base_env: dict[str, str], running: list[Startup]
) -> None:
    script = tmp_path / "tiny_app.py"
    script.write_text(TINY_STREAMLIT_APP, "utf-8")
    webui_port = free_port()
    startup = Startup(
        tmp_path,
        base_env,
        "--webui",
        "--webui-port",
        str(webui_port),
        "--webui-script",
        str(script),
    )
    running.append(startup)
    startup.wait_for_banner(timeout_s=60)

    os.kill(startup.child_pids()["the web UI"], signal.SIGKILL)

    assert startup.wait(30) == 1
    errors = [line for line in startup.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "the web UI" in errors[0]
    assert "exited with code" in errors[0]


def test_two_parts_on_one_port_are_refused() -> None:
    def spec(label: str) -> ChildSpec:
        return ChildSpec(label, ["true"], "127.0.0.1", 1, "/health", 1.0, "some.port")

    with pytest.raises(StartupError) as raised:
        check_ports([spec("the API"), spec("the web UI")])

    assert raised.value.exit_code == 2


def test_banner_reports_settings_without_loading_models(tmp_path: Path) -> None:
    settings = load_settings(
        kb_root=tmp_path,
        embedding={"model": MINILM, "device": "cpu"},
        llm_models={"qwen-vllm": {"base_url": "http://127.0.0.1:8000/v1"}},
        splitter={"chunk_size": 300, "chunk_overlap": 30, "zh_title_enhance": True},
    )
    api = ChildSpec("the API", ["true"], "0.0.0.0", 7861, "/health", 1.0, "api.port", "/docs")

    text = banner(settings, [api])

    assert "API: http://127.0.0.1:7861/docs" in text
    assert f"Embedding model: {MINILM} (device: cpu" in text
    assert "qwen-vllm (http://127.0.0.1:8000/v1)" in text
    assert "chunk_size 300, chunk_overlap 30, zh_title_enhance True" in text
    assert package_version(["no-such-distribution-kb"]) == "not installed"


def test_health_url_of_a_wildcard_or_ipv6_host_is_reachable_locally() -> None:
    def spec(host: str) -> ChildSpec:
        return ChildSpec("the API", ["true"], host, 7861, "/health", 1.0, "api.port")

    assert spec("0.0.0.0").health_url == "http://127.0.0.1:7861/health"
    assert spec("::").health_url == "http://[::1]:7861/health"
