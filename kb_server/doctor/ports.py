"""The ports the API, the web UI and the local LLM workers listen on."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import httpx

from kb_server.cli.processes import connect_host, port_is_free
from kb_server.doctor.base import CheckResult
from kb_server.settings import Settings

HEALTH_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Listener:
    label: str
    host: str
    port: int
    health_path: str
    setting: str


def listeners(settings: Settings) -> list[Listener]:
    """What startup.py starts, with the health path each answers once up."""
    parts = [
        Listener("API", settings.api.host, settings.api.port, "/health", "api.port"),
        Listener(
            "web UI", settings.webui.host, settings.webui.port, "/_stcore/health", "webui.port"
        ),
    ]
    for name, model in settings.local_models.items():
        parts.append(
            Listener(
                f"LLM worker {name}",
                model.host,
                model.port,
                "/health",
                f"local_models.{name}.port",
            )
        )
    return parts


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_ports(settings: Settings) -> list[CheckResult]:
    results = []
    claimed: dict[int, str] = {}
    for part in listeners(settings):
        check = f"port {part.label}"
        where = f"{part.host}:{part.port}"
        if part.port in claimed:
            results.append(
                CheckResult(
                    check,
                    "FAIL",
                    f"{where}: also configured for {claimed[part.port]}; change {part.setting}",
                )
            )
            continue
        claimed[part.port] = part.label
        if port_is_free(part.host, part.port):
            results.append(CheckResult(check, "ok", f"{where} free"))
        elif _answers_health(part):
            results.append(CheckResult(check, "ok", f"{where} in use by a running {part.label}"))
        else:
            results.append(
                CheckResult(
                    check,
                    "FAIL",
                    f"{where} is in use by another program; stop it or change {part.setting}",
                )
            )
    return results


def _answers_health(part: Listener) -> bool:
    """Whether our own part already runs there; asked only on loopback, with a short timeout."""
    host = connect_host(part.host)
    if not is_loopback(host):
        return False
    base = f"http://[{host}]:{part.port}" if ":" in host else f"http://{host}:{part.port}"
    try:
        response = httpx.get(base + part.health_path, timeout=HEALTH_TIMEOUT_S, trust_env=False)
    except httpx.HTTPError:
        return False
    return response.status_code == 200
