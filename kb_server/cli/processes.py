"""Child processes for startup.py: port checks, start, health waits, supervision and stop.

Each child runs in its own session (so its own process group): a Ctrl-C in the terminal
reaches only startup.py, which then stops every group itself, children of children included.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

import httpx

logger = logging.getLogger("kb_server.startup")

POLL_INTERVAL_S = 0.2


@dataclass(frozen=True)
class ChildSpec:
    """One part to start: what it is, where it listens and how it says it is ready."""

    label: str
    command: Sequence[str]
    host: str
    port: int
    health_path: str
    start_timeout_s: float
    # Where the port is configured, for the "port in use" message.
    port_setting: str
    # What the banner shows: the base URL plus this path.
    url_path: str = ""

    @property
    def base_url(self) -> str:
        host = connect_host(self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def health_url(self) -> str:
        return self.base_url + self.health_path


@dataclass
class Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes]


class StartupError(Exception):
    """Startup cannot go on; ``exit_code`` is what startup.py exits with."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class StopRequest:
    """Records SIGINT/SIGTERM; the wait loops check it, so a signal never interrupts a spawn."""

    def __init__(self) -> None:
        self.signal_number: int | None = None

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._record)
        signal.signal(signal.SIGTERM, self._record)

    def _record(self, signal_number: int, frame: FrameType | None) -> None:
        self.signal_number = signal_number

    @property
    def requested(self) -> bool:
        return self.signal_number is not None


def connect_host(host: str) -> str:
    """The address a local client uses for a server listening on ``host``."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port now (the same bind the server will do)."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return True  # an unknown host name is the child's error to report, not a busy port
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # uvicorn sets SO_REUSEADDR too, so a port in TIME_WAIT after a restart counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError:
            return False
    return True


def check_ports(specs: Sequence[ChildSpec]) -> None:
    """Raise StartupError (exit 2) for the first port that is taken or claimed twice."""
    claimed: dict[int, str] = {}
    for spec in specs:
        if spec.port in claimed:
            raise StartupError(
                f"{spec.label} and {claimed[spec.port]} are both configured on port "
                f"{spec.port}; change {spec.port_setting}",
                exit_code=2,
            )
        claimed[spec.port] = spec.label
        if not port_is_free(spec.host, spec.port):
            raise StartupError(
                f"port {spec.port} on {spec.host} for {spec.label} is already in use; "
                f"stop the program using it or change {spec.port_setting}",
                exit_code=2,
            )


def spawn(spec: ChildSpec, env: Mapping[str, str]) -> Child:
    logger.info("starting %s: %s", spec.label, " ".join(spec.command))
    process = subprocess.Popen(list(spec.command), env=dict(env), start_new_session=True)
    return Child(spec, process)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def exited_error(child: Child, when: str) -> StartupError:
    code = child.process.returncode
    return StartupError(
        f"{child.spec.label} (pid {child.process.pid}) exited with code {code} {when}",
        exit_code=1,
    )


def wait_healthy(child: Child, stop: StopRequest) -> bool:
    """Poll the child's health URL; False when a stop was requested meanwhile."""
    deadline = time.monotonic() + child.spec.start_timeout_s
    while not stop.requested:
        if child.process.poll() is not None:
            raise exited_error(child, f"before answering {child.spec.health_url}")
        if _answers(child.spec.health_url):
            logger.info("%s is up (pid %d)", child.spec.label, child.process.pid)
            return True
        if time.monotonic() > deadline:
            raise StartupError(
                f"{child.spec.label} did not answer {child.spec.health_url} within "
                f"{child.spec.start_timeout_s:.0f} s",
                exit_code=1,
            )
        time.sleep(POLL_INTERVAL_S)
    return False


def run_to_end(command: Sequence[str], env: Mapping[str, str], stop: StopRequest) -> int | None:
    """Run a one-off command to its end; None when a stop was requested (it is then stopped)."""
    process = subprocess.Popen(list(command), env=dict(env), start_new_session=True)
    while process.poll() is None:
        if stop.requested:
            stop_processes([process], timeout_s=10.0)
            return None
        time.sleep(POLL_INTERVAL_S)
    return process.returncode


def watch(children: Sequence[Child], stop: StopRequest) -> None:
    """Return when a stop is requested; raise StartupError when a child exits first."""
    while not stop.requested:
        for child in children:
            if child.process.poll() is not None:
                raise exited_error(child, "while running")
        time.sleep(POLL_INTERVAL_S)


def _signal_group(process: subprocess.Popen[bytes], signal_number: int) -> None:
    # The group may be gone already.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal_number)


def stop_processes(processes: Sequence[subprocess.Popen[bytes]], timeout_s: float) -> None:
    """SIGTERM every process group, wait up to ``timeout_s`` in all, then SIGKILL the rest."""
    for process in processes:
        if process.poll() is None:
            _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning("pid %d did not stop within %.0f s; killing it", process.pid, timeout_s)
            _signal_group(process, signal.SIGKILL)
            process.wait()
