"""Start the whole application with one command: ``python startup.py -a``.

Parts start in order, each once the one before answers its health check: the local LLM
workers (one per ``local_models`` entry), the API, then the web UI. Exit codes: 0 after
Ctrl-C or SIGTERM, 1 when a part fails or exits, 2 for a configuration problem (a busy port,
a missing web UI script) found before anything starts.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import logging
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from kb_server.cli.processes import (
    Child,
    ChildSpec,
    StartupError,
    StopRequest,
    check_ports,
    run_to_end,
    spawn,
    stop_processes,
    wait_healthy,
    watch,
)
from kb_server.settings import CONFIG_FILE_ENV, PROJECT_ROOT, Settings, load_settings

logger = logging.getLogger("kb_server.startup")

DEFAULT_WEBUI_SCRIPT = PROJECT_ROOT / "webui" / "app.py"
# (label, distribution names tried in order)
BANNER_PACKAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("kb-server", ("kb-server",)),
    ("torch", ("torch",)),
    ("transformers", ("transformers",)),
    ("sentence-transformers", ("sentence-transformers",)),
    ("faiss", ("faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "faiss")),
    ("fastapi", ("fastapi",)),
    ("streamlit", ("streamlit",)),
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="startup.py", description="Start the LLM workers, the API and the web UI."
    )
    add = parser.add_argument
    add("-a", "--all", action="store_true", help="LLM workers (if configured), API and web UI")
    add("--llm-api", action="store_true", help="one worker per local_models entry")
    add("--api", action="store_true", help="the HTTP API")
    add("--webui", action="store_true", help="the Streamlit web UI")
    add("--no-init", action="store_true", help="with -a: do not build the knowledge bases first")
    add("--api-port", type=int, help="override api.port")
    add("--webui-port", type=int, help="override webui.port")
    add("--webui-script", type=Path, default=DEFAULT_WEBUI_SCRIPT, help="Streamlit script")
    add("--config", type=Path, help="settings file (default: configs/settings.yaml)")
    add("--worker-timeout", type=float, default=300.0, help="seconds for a worker to be up")
    add("--api-timeout", type=float, default=120.0, help="seconds for the API to be up")
    add("--webui-timeout", type=float, default=120.0, help="seconds for the web UI to be up")
    add("--stop-timeout", type=float, default=10.0, help="seconds to stop before SIGKILL")
    args = parser.parse_args(argv)
    if not (args.all or args.llm_api or args.api or args.webui):
        parser.error("choose what to start: -a, or any of --llm-api, --api, --webui")
    return args


def load(args: argparse.Namespace) -> Settings:
    try:
        settings = load_settings(args.config)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise StartupError(f"cannot load the settings: {exc}", exit_code=2) from exc
    if args.api_port is not None:
        settings.api = settings.api.model_copy(update={"port": args.api_port})
    if args.webui_port is not None:
        settings.webui = settings.webui.model_copy(update={"port": args.webui_port})
    return settings


def child_env(args: argparse.Namespace) -> dict[str, str]:
    """The environment every child gets: ours, plus what the flags changed."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if args.config is not None:
        env[CONFIG_FILE_ENV] = str(args.config.resolve())
    if args.api_port is not None:
        env["KB_API__PORT"] = str(args.api_port)
    if args.webui_port is not None:
        env["KB_WEBUI__PORT"] = str(args.webui_port)
    return env


def worker_specs(settings: Settings, timeout_s: float) -> list[ChildSpec]:
    specs = []
    for name, model in settings.local_models.items():
        command = [
            *(sys.executable, "-m", "kb_server.llm.worker", "--model-path", str(model.path)),
            *("--host", model.host, "--port", str(model.port), "--model-name", name),
            *("--device", model.device, "--dtype", model.dtype),
            *("--quantization", model.quantization),
            *("--max-new-tokens", str(model.max_new_tokens)),
        ]
        if model.trust_remote_code:
            command.append("--trust-remote-code")
        if model.context_window is not None:
            command += ["--context-window", str(model.context_window)]
        setting = (
            f"local_models.{name}.port in the settings file "
            f"(or env KB_LOCAL_MODELS__{name.upper()}__PORT)"
        )
        label = f"the LLM worker {name!r}"
        specs.append(
            ChildSpec(label, command, model.host, model.port, "/health", timeout_s, setting, "/v1")
        )
    return specs


def api_spec(settings: Settings, timeout_s: float) -> ChildSpec:
    host, port = settings.api.host, settings.api.port
    command = [sys.executable, "-m", "kb_server.api", "--host", host, "--port", str(port)]
    setting = "api.port in the settings file, env KB_API__PORT or --api-port"
    return ChildSpec("the API", command, host, port, "/health", timeout_s, setting, "/docs")


def webui_spec(settings: Settings, script: Path, timeout_s: float) -> ChildSpec:
    if importlib.util.find_spec("streamlit") is None:
        raise StartupError("streamlit is not installed; pip install -e '.[ui]'", exit_code=2)
    if not script.is_file():
        raise StartupError(f"web UI script not found: {script}", exit_code=2)
    host, port = settings.webui.host, settings.webui.port
    command = [
        *(sys.executable, "-m", "streamlit", "run", str(script)),
        *("--server.address", host, "--server.port", str(port), "--server.headless", "true"),
        *("--browser.gatherUsageStats", "false"),
    ]
    setting = "webui.port in the settings file, env KB_WEBUI__PORT or --webui-port"
    return ChildSpec("the web UI", command, host, port, "/_stcore/health", timeout_s, setting)


def plan(args: argparse.Namespace, settings: Settings) -> list[ChildSpec]:
    """The parts to start, in start order."""
    specs: list[ChildSpec] = []
    if args.all or args.llm_api:
        if args.llm_api and not settings.local_models:
            raise StartupError(
                "--llm-api: no local_models are configured in the settings", exit_code=2
            )
        specs += worker_specs(settings, args.worker_timeout)
    if args.all or args.api:
        specs.append(api_spec(settings, args.api_timeout))
    if args.all or args.webui:
        specs.append(webui_spec(settings, args.webui_script, args.webui_timeout))
    return specs


def package_version(candidates: Sequence[str]) -> str:
    for name in candidates:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "not installed"


def banner(settings: Settings, specs: Sequence[ChildSpec]) -> str:
    embedding = settings.embedding
    splitter = settings.splitter
    remote = ", ".join(f"{name} ({m.base_url})" for name, m in settings.llm_models.items())
    local = ", ".join(f"{name} ({m.path})" for name, m in settings.local_models.items())
    rule = "=" * 72
    lines = [
        rule,
        "kb-server is up",
        f"OS: {platform.platform()}",
        f"Python: {platform.python_version()} ({sys.executable})",
        *(f"{label}: {package_version(names)}" for label, names in BANNER_PACKAGES),
        f"Embedding model: {embedding.model} (device: {embedding.device}, "
        f"fallback: {embedding.fallback_model or 'none'})",
        f"Default LLM: {settings.default_llm_model}",
        f"Local LLMs: {local or 'none'}",
        f"Remote LLMs: {remote or 'none'}",
        f"Text splitter: chunk_size {splitter.chunk_size}, chunk_overlap "
        f"{splitter.chunk_overlap}, zh_title_enhance {splitter.zh_title_enhance}",
        f"Knowledge bases: {settings.kb_root}",
        *(f"{spec.label.removeprefix('the ')}: {spec.base_url}{spec.url_path}" for spec in specs),
        rule,
    ]
    return "\n".join(lines) + "\n"


def build_knowledge_bases(env: dict[str, str], stop: StopRequest) -> None:
    logger.info("building the knowledge bases (init_database.py --recreate-vs)")
    command = [sys.executable, "-m", "kb_server.cli.init_database", "--recreate-vs"]
    code = run_to_end(command, env, stop)
    if code is not None and code != 0:
        raise StartupError(
            f"building the knowledge bases failed (exit code {code}); fix the error above "
            "or start with --no-init",
            exit_code=1,
        )


def start_and_watch(args: argparse.Namespace, children: list[Child], stop: StopRequest) -> None:
    """Start every part in order, show the banner, and run until a signal or a failure."""
    settings = load(args)
    specs = plan(args, settings)
    check_ports(specs)
    env = child_env(args)
    if args.all and not args.no_init:
        build_knowledge_bases(env, stop)
    for spec in specs:
        if stop.requested:
            return
        children.append(spawn(spec, env))
        if not wait_healthy(children[-1], stop):
            return
    sys.stdout.write(banner(settings, specs))
    sys.stdout.flush()
    watch(children, stop)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="startup: %(message)s")
    logger.setLevel(logging.INFO)
    stop = StopRequest()
    stop.install()
    children: list[Child] = []
    try:
        start_and_watch(args, children, stop)
    except StartupError as exc:
        stopping = "; stopping the other parts" if len(children) > 1 else ""
        sys.stderr.write(f"error: {exc.message}{stopping}\n")
        return exc.exit_code
    finally:
        if children:
            logger.info("stopping %d process(es)", len(children))
        stop_processes([child.process for child in reversed(children)], args.stop_timeout)
    logger.info("stopped (signal %s)", stop.signal_number)
    return 0
