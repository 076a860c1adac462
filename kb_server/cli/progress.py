"""tqdm bars for ingest progress: one for files, one for embedded chunks."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


class TqdmProgress:
    """Implements knowledge.types.IngestProgress on stderr."""

    def __init__(self, label: str, *, enabled: bool = True) -> None:
        self.label = label
        self.enabled = enabled
        self._files: tqdm[Any] | None = None
        self._chunks: tqdm[Any] | None = None

    def files_planned(self, total: int) -> None:
        self._close(self._files)
        self._close(self._chunks)
        self._chunks = None
        self._files = tqdm(
            total=total,
            desc=f"{self.label} files",
            unit="file",
            file=sys.stderr,
            disable=not self.enabled,
            leave=True,
        )

    def file_stage(self, file_name: str, stage: str, done: int, total: int) -> None:
        if self._files is not None:
            shown = f"{stage} {done}/{total}" if total else stage
            # OCR is slow enough per page to be worth redrawing the bar for.
            self._files.set_postfix_str(f"{shown}: {file_name}"[-60:], refresh=stage == "ocr")

    def file_done(self, file_name: str, status: str, reason: str = "", chunks: int = 0) -> None:
        if self._files is not None:
            self._files.set_postfix_str(f"{status}: {file_name}"[-60:], refresh=False)
            self._files.update(1)

    def embedding_planned(self, total_chunks: int) -> None:
        if self._chunks is not None:
            # Files arrive while earlier ones embed: the total grows as they do.
            self._chunks.total = (self._chunks.total or 0) + total_chunks
            self._chunks.refresh()
            return
        self._chunks = tqdm(
            total=total_chunks,
            desc=f"{self.label} embedding",
            unit="chunk",
            file=sys.stderr,
            disable=not self.enabled,
            leave=False,
        )

    def chunks_embedded(self, count: int) -> None:
        if self._chunks is not None:
            self._chunks.update(count)

    def close(self) -> None:
        self._close(self._chunks)
        self._close(self._files)
        self._chunks = self._files = None

    @staticmethod
    def _close(bar: tqdm[Any] | None) -> None:
        if bar is not None:
            bar.close()
