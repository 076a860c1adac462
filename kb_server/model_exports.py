"""Folders of files derived from models (ONNX exports, optimized OCR models), made once.

A folder is filled in a hidden staging folder beside it and renamed into place under a file
lock, so a folder that exists is complete and two processes never build it twice.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from filelock import FileLock

T = TypeVar("T")


def build_once(
    folder: Path,
    read: Callable[[Path], T | None],
    write: Callable[[Path], T],
    *,
    lock_timeout_s: float,
) -> T:
    """``read(folder)`` when the folder is complete; else ``write(staging)``, renamed to it.

    ``read`` returns None for a missing or unusable folder (an unusable one is replaced as a
    whole); ``write`` fills the staging folder and returns what ``read`` would for the
    finished one. Raises filelock.Timeout when another process held the lock for over
    ``lock_timeout_s``, OSError when the folder cannot be written, and whatever ``write`` raises.
    """
    existing = read(folder)
    if existing is not None:
        return existing
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{folder}.lock", timeout=lock_timeout_s):
        # Another process may have finished it while this one waited.
        existing = read(folder)
        if existing is not None:
            return existing
        # Staging folders of a process that died while building; only the lock holder makes one.
        for leftover in folder.parent.glob(f".{folder.name}.*.partial"):
            shutil.rmtree(leftover, ignore_errors=True)
        staging = Path(
            tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent)
        )
        try:
            built = write(staging)
            if folder.exists():
                shutil.rmtree(folder)
            # mkdtemp made it private (0700); the folder is readable like any model folder.
            staging.chmod(0o755)
            staging.rename(folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return built
