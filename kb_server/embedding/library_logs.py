"""Keeping libraries' routine log records out of ours while they run."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_logs_from(path_part: str) -> Iterator[None]:
    """Drop records below ERROR logged from source files under ``path_part``, only here.

    ONNX Runtime's quantizer logs through the root logger itself (logging.info) and its
    optimizer through loggers of its own; a filter on the root logger catches the first and
    filters on the root's handlers the records the others pass up.
    """
    chatter = _BelowErrorFrom(path_part)
    root_logger = logging.getLogger()
    filtered = [root_logger, *root_logger.handlers]
    for target in filtered:
        target.addFilter(chatter)
    try:
        yield
    finally:
        for target in filtered:
            target.removeFilter(chatter)


class _BelowErrorFrom(logging.Filter):
    """Drops records below ERROR logged from source files under ``path_part``."""

    def __init__(self, path_part: str) -> None:
        super().__init__()
        self._path_part = path_part

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or self._path_part not in record.pathname
