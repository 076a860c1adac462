"""build_once: a derived folder is written aside and renamed into place, once."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb_server.model_exports import build_once


def _read(folder: Path) -> str | None:
    marker = folder / "done.txt"
    return marker.read_text(encoding="utf-8") if marker.is_file() else None


def test_a_folder_is_written_once_and_then_read(tmp_path: Path) -> None:
    folder = tmp_path / "exports" / "model-abc"
    writes = []

    def write(staging: Path) -> str:
        writes.append(staging)
        (staging / "done.txt").write_text("v1", encoding="utf-8")
        return "v1"

    first = build_once(folder, _read, write, lock_timeout_s=5)
    second = build_once(folder, _read, write, lock_timeout_s=5)

    assert (first, second) == ("v1", "v1")
    assert len(writes) == 1
    assert writes[0].parent == folder.parent
    assert sorted(path.name for path in folder.parent.iterdir()) == ["model-abc", "model-abc.lock"]


def test_leftovers_and_an_unusable_folder_are_replaced(tmp_path: Path) -> None:
    folder = tmp_path / "model-abc"
    (tmp_path / ".model-abc.dead.partial").mkdir()
    folder.mkdir()
    (folder / "half-written.bin").write_bytes(b"\0")

    def write(staging: Path) -> str:
        (staging / "done.txt").write_text("v2", encoding="utf-8")
        return "v2"

    assert build_once(folder, _read, write, lock_timeout_s=5) == "v2"
    assert sorted(path.name for path in folder.iterdir()) == ["done.txt"]
    assert not (tmp_path / ".model-abc.dead.partial").exists()


def test_a_failed_write_leaves_no_folder_behind(tmp_path: Path) -> None:
    folder = tmp_path / "model-abc"

    def write(staging: Path) -> str:
        (staging / "part.bin").write_bytes(b"\0")
        raise RuntimeError("export failed")

    with pytest.raises(RuntimeError, match="export failed"):
        build_once(folder, _read, write, lock_timeout_s=5)

    assert sorted(path.name for path in tmp_path.iterdir()) == ["model-abc.lock"]
