"""Serve the API for the length of a test on a free loopback port: an ASGI app with uvicorn in
a thread, or ``python -m kb_server.api`` as a process of its own."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from kb_server.settings import PROJECT_ROOT

API_PROCESS_START_TIMEOUT_S = 120


def _answers_health(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def serve_on_loopback(app: Any, *, name: str, start_timeout_s: float = 30) -> Iterator[str]:
    """Run ``app`` in a background thread; yields ``http://127.0.0.1:PORT`` once /health
    answers, and stops the server (bounded) on exit."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, name=name, daemon=True
    )
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while not _answers_health(f"{base}/health"):
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start on {base}")
            time.sleep(0.05)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        listener.close()


@contextmanager
def api_process(env: Mapping[str, str], log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``python -m kb_server.api`` with ``env`` added to this environment, on a free loopback
    port; yields the process and ``http://127.0.0.1:PORT`` once /health answers. Its output is
    appended to ``log``; on exit it is stopped (killed if it will not stop), unless it ended
    by itself."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with log.open("a") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "kb_server.api", "--host", "127.0.0.1", "--port", str(port)],
            env={**os.environ, **env},
            cwd=PROJECT_ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + API_PROCESS_START_TIMEOUT_S
            while not _answers_health(f"{base}/health"):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the API on port {port} did not start:\n{log.read_text()}")
                time.sleep(0.2)
            yield process, base
        finally:
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
