"""What passes from the reader thread of an ingest to its embedding thread, and its clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from kb_server.chunking import DocumentPipeline
from kb_server.db.models import KnowledgeFile
from kb_server.errors import KbError
from kb_server.knowledge.types import IngestProgress
from kb_server.retrieval.analyzer import KeywordAnalyzer
from kb_server.settings import SplitterSettings
from kb_server.splitting import split_documents
from kb_server.splitting.base import Chunk


def splitter_of(row: KnowledgeFile) -> SplitterSettings:
    return SplitterSettings(
        chunk_size=row.chunk_size,
        chunk_overlap=row.chunk_overlap,
        zh_title_enhance=row.zh_title_enhance,
    )


# Why a file that was read (with OCR) gave no chunks. Such a file is not read again until its
# bytes or its chunk settings change, or a rebuild is forced: it would give nothing again.
NO_TEXT_REASON = "no text could be extracted from this file"


@dataclass
class PreparedFile:
    """A changed or new file, read and split (in the reader thread), then embedded."""

    file_name: str
    sha256: str
    size: int
    mtime: float
    splitter: SplitterSettings
    previous: KnowledgeFile | None = None
    loader: str = ""
    chunks: list[Chunk] = field(default_factory=list)
    terms: list[list[str]] = field(default_factory=list)
    error: str = ""
    # One row per chunk, filled as chunks are embedded or their earlier vectors are kept.
    vectors: NDArray[np.float32] | None = None


@dataclass
class FileOutcome:
    """What the reader thread made of one file name: prepared, unchanged or failed."""

    file_name: str
    prepared: PreparedFile | None = None
    unchanged: KnowledgeFile | None = None
    unchanged_ids: list[int] = field(default_factory=list)
    # Why the file was not read: missing, or unchanged and known to hold no text
    # (NO_TEXT_REASON, not read again).
    failed: str = ""


class StageClock:
    """Busy seconds per ingest stage and images OCR'd, added to from both threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = {}
        self.images_ocred = 0

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def image_read(self, seconds: float) -> None:
        with self._lock:
            self.images_ocred += 1
            self.seconds["ocr"] = self.seconds.get("ocr", 0.0) + seconds

    @contextmanager
    def timing(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - started)


def read_and_split(
    prepared: PreparedFile,
    path: Path,
    *,
    pipeline: DocumentPipeline,
    content_root: Path,
    analyzer: KeywordAnalyzer,
    progress: IngestProgress,
    clock: StageClock,
) -> None:
    """Load (with OCR), split and analyze one file into ``prepared``; a file that cannot be
    read gets ``error`` instead. Runs in an ingest's reader thread."""
    name = prepared.file_name

    def on_ocr_page(number: int, total: int) -> None:
        progress.file_stage(name, "ocr", number, total)

    progress.file_stage(name, "loading", 0, 0)
    ocr_before = clock.seconds.get("ocr", 0.0)
    started = time.perf_counter()
    try:
        prepared.loader = pipeline.registry.loader_for(path).name
        with pipeline.context.progress.listening(on_ocr_page, clock.image_read):
            documents = pipeline.load(path, content_root=content_root)
    except KbError as exc:
        prepared.error = exc.message
        return
    finally:
        # OCR ran inside the load and is counted apart (this thread alone adds to it).
        ocr_seconds = clock.seconds.get("ocr", 0.0) - ocr_before
        clock.add("read", time.perf_counter() - started - ocr_seconds)
    progress.file_stage(name, "splitting", 0, 0)
    with clock.timing("split"):
        try:
            prepared.chunks = split_documents(documents, prepared.splitter)
        except KbError as exc:
            prepared.error = exc.message
            return
    del documents  # only the chunks wait for the embedding
    with clock.timing("analyze"):
        prepared.terms = [analyzer.terms(chunk.text) for chunk in prepared.chunks]
    if not prepared.chunks:
        # Read with OCR off, the file may hold text in images: that failure is not final.
        ocr_off = pipeline.context.ocr is None
        prepared.error = f"{NO_TEXT_REASON} (OCR is off)" if ocr_off else NO_TEXT_REASON
