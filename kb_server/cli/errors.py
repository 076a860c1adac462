"""How a command-line entry point reports failures: one line on stderr, exit status 2."""

from __future__ import annotations

import sys
from collections.abc import Callable

from kb_server.errors import KbError

EXIT_FATAL = 2


def exit_status_of(command: Callable[[], int]) -> int:
    """Run ``command``; a bad input or a failed operation prints ``error: ...``, no traceback."""
    try:
        return command()
    except KbError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
    return EXIT_FATAL
