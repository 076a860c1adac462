"""Serve a local Hugging Face chat model over the OpenAI API.

    python -m kb_server.llm.worker --model-path /models/Qwen2.5-7B-Instruct --port 20000

A directory that cannot be served ends the process at start with one error line and exit
status 2; nothing waits for the first request to find out.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from kb_server.settings import LocalModelSettings

logger = logging.getLogger(__name__)

PROG = "python -m kb_server.llm.worker"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Serve a local chat model over the OpenAI chat completions API."
    )
    parser.add_argument(
        "--model-path", dest="path", type=Path, required=True, help="HF model directory"
    )
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 20000)")
    parser.add_argument("--model-name", help="name clients ask for (default: directory name)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--dtype", choices=["auto", "float32", "float16", "bfloat16"])
    parser.add_argument("--quantization", choices=["none", "8bit", "4bit"])
    parser.add_argument("--trust-remote-code", action="store_true", default=None)
    parser.add_argument("--max-new-tokens", type=int, help="cap on max_tokens (default 1024)")
    parser.add_argument("--context-window", type=int, help="default: from config.json")
    parser.add_argument(
        "--cpu-threads", type=int, default=0, help="torch threads on CPU (0: torch's default)"
    )
    return parser


def _settings(args: argparse.Namespace) -> LocalModelSettings:
    # Options left out keep LocalModelSettings' defaults, the one place they are defined.
    given: dict[str, Any] = {
        name: value
        for name, value in vars(args).items()
        if name in LocalModelSettings.model_fields and value is not None
    }
    return LocalModelSettings(**given)


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"{PROG}: error: {' '.join(message.split())}\n")
    raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = _settings(args)
    except ValidationError as exc:
        _fail(f"invalid option: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}")
    # torch and transformers load in seconds; a mistyped option should fail before that.
    import torch
    import uvicorn

    from kb_server.llm.local_model import ModelLoadError, load_local_model
    from kb_server.llm.worker_app import create_worker_app

    if args.cpu_threads > 0:
        torch.set_num_threads(args.cpu_threads)
    try:
        model = load_local_model(settings, name=args.model_name)
    except ModelLoadError as exc:
        _fail(exc.message)
    logger.info(
        "serving model %r from %s on http://%s:%d/v1 (device %s, dtype %s, context window %d)",
        model.name,
        settings.path,
        settings.host,
        settings.port,
        model.device,
        model.dtype,
        model.context_window,
    )
    uvicorn.run(create_worker_app(model), host=settings.host, port=settings.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
