"""Serve the API: ``python -m kb_server.api [--host HOST] [--port PORT] [--workers N]``.

With ``--workers N`` uvicorn starts N processes on one port. They share the KBs safely with
either backend (cross-process write locks; FAISS indexes reload after another process saves);
with the ``pg`` backend, processes on other machines can serve the same KBs too
(docs/DEPLOY.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import uvicorn

from kb_server.api.app import create_app
from kb_server.errors import KbError
from kb_server.settings import load_settings

logger = logging.getLogger("kb_server.api")


def main(argv: list[str] | None = None) -> int:
    settings = load_settings()
    parser = argparse.ArgumentParser(prog="python -m kb_server.api", description=__doc__)
    parser.add_argument("--host", default=settings.api.host)
    parser.add_argument("--port", type=int, default=settings.api.port)
    parser.add_argument(
        "--workers", type=int, default=1, help="API processes on this port (default 1)"
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # The app checks the address it is served on (a warning for 0.0.0.0 with no API key).
    settings.api = settings.api.model_copy(update={"host": args.host, "port": args.port})
    if args.workers > 1:
        # Each worker process builds its own app from the environment; the address goes with
        # it, so each warns (or not) about the bind like a single process does.
        os.environ["KB_API__HOST"] = args.host
        os.environ["KB_API__PORT"] = str(args.port)
        logger.info(
            "API docs at http://%s:%d/docs (%d workers)", args.host, args.port, args.workers
        )
        uvicorn.run(
            "kb_server.api.app:create_app_from_environment",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level="info",
            access_log=False,
        )
        return 0
    try:
        app = create_app(settings)
    except KbError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 2
    logger.info("API docs at http://%s:%d/docs", args.host, args.port)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
