"""Serve the API: ``python -m kb_server.api [--host HOST] [--port PORT]``."""

from __future__ import annotations

import argparse
import logging
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # The app checks the address it is served on (a warning for 0.0.0.0 with no API key).
    settings.api = settings.api.model_copy(update={"host": args.host, "port": args.port})
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
