"""``python -m kb_server.cli doctor``: a table of checks of this install (kb_server.doctor).

Exit codes: 0 nothing failed (warnings allowed), 1 a check failed, 2 the settings cannot be
loaded.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from kb_server.doctor.report import failed, format_json, format_table, run_checks
from kb_server.settings import load_settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_NO_SETTINGS = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kb_server.cli doctor",
        description="Check Python, packages, devices, models, database, knowledge bases, disk "
        "and ports; exit 1 when a check fails.",
    )
    parser.add_argument(
        "--config", type=Path, help="settings file (default: configs/settings.yaml)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except (ValidationError, ValueError, OSError) as error:
        sys.stderr.write(f"error: the settings cannot be loaded: {error}\n")
        return EXIT_NO_SETTINGS
    results = run_checks(settings)
    sys.stdout.write(format_json(results) if args.json else format_table(results))
    return EXIT_FAILED if failed(results) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
