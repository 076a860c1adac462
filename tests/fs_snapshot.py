"""What a folder tree looks like, to prove a request changed nothing outside the KB root."""

from __future__ import annotations

from pathlib import Path


def tree_snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root`` but ``skip``: size and modification time."""
    entries: dict[str, tuple[int, int]] = {}
    for path in root.rglob("*"):
        if path == skip or skip in path.parents:
            continue
        stat = path.stat()
        entries[str(path.relative_to(root))] = (
            stat.st_size if path.is_file() else 0,
            stat.st_mtime_ns,
        )
    return entries
