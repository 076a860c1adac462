"""The loader contract: one file on disk -> a list of documents with metadata.

Metadata keys a loader may set (all optional):
    page     1-based PDF page or PowerPoint slide number
    sheet    spreadsheet sheet name
    row      1-based row number as a spreadsheet shows it (the header row is row 1);
             for JSON Lines the 1-based line number
    markup   "markdown" when the text is Markdown (the splitter then splits on headers)
    ocr      True when the text was read from an image
    title    a section or chapter title known from the file's structure
    outline  headings known from the file's structure with their offsets in the text
             (kb_server.documents.outline; the splitter makes chunks' heading_path of it)
The ingest pipeline adds ``source`` (path relative to the KB's content folder) and ``loader``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal, Protocol

from langchain_core.documents import Document

from kb_server.errors import DocumentLoadError
from kb_server.settings import DocumentSettings


class OcrReader(Protocol):
    """Reads the text in one image; lines in reading order joined by newlines."""

    def read_image(self, image: bytes | Path) -> str: ...


# Called with (n, m) as a loader starts OCR of the n-th of the m scanned pages of a file.
OcrPageCallback = Callable[[int, int], None]
# Called with the seconds one image took, after OCR read it.
OcrImageCallback = Callable[[float], None]


class LoadProgress:
    """Where loaders report the slow steps inside one file (OCR of page n of m, each image).

    Loaders are shared by every thread of the process, so whoever loads a file listens for
    the duration of its own load, on its own thread.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    @contextmanager
    def listening(
        self, on_ocr_page: OcrPageCallback, on_ocr_image: OcrImageCallback | None = None
    ) -> Iterator[None]:
        previous = (
            getattr(self._local, "on_ocr_page", None),
            getattr(self._local, "on_ocr_image", None),
        )
        self._local.on_ocr_page, self._local.on_ocr_image = on_ocr_page, on_ocr_image
        try:
            yield
        finally:
            self._local.on_ocr_page, self._local.on_ocr_image = previous

    def ocr_page(self, number: int, total: int) -> None:
        callback: OcrPageCallback | None = getattr(self._local, "on_ocr_page", None)
        if callback is not None:
            callback(number, total)

    def ocr_image(self, seconds: float) -> None:
        callback: OcrImageCallback | None = getattr(self._local, "on_ocr_image", None)
        if callback is not None:
            callback(seconds)


class MeteredOcrReader:
    """An OcrReader that tells the current thread's listener how long each image took, so
    an ingest can count the images it had read and the time OCR cost it."""

    def __init__(self, reader: OcrReader, progress: LoadProgress) -> None:
        self._reader = reader
        self._progress = progress

    def read_image(self, image: bytes | Path) -> str:
        started = time.perf_counter()
        try:
            return self._reader.read_image(image)
        finally:
            self._progress.ocr_image(time.perf_counter() - started)


@dataclass(frozen=True)
class LoaderContext:
    """What loaders share: document settings, the process's OCR reader (None = OCR off) and
    where they report progress inside a file."""

    documents: DocumentSettings
    ocr: OcrReader | None = None
    progress: LoadProgress = field(default_factory=LoadProgress, compare=False)


# How much of a format's reading can be OCR: none; images embedded in the file (scanned PDF
# pages, pictures in Word or PowerPoint files); or the whole file (an image). An ingest reads
# files in this order, so that embedding starts early and OCR, the slow part, runs beside it.
OcrUse = Literal["none", "embedded", "whole"]


class Loader(Protocol):
    name: ClassVar[str]
    suffixes: ClassVar[frozenset[str]]
    ocr_use: ClassVar[OcrUse]

    def __init__(self, context: LoaderContext) -> None: ...

    def load(self, path: Path) -> list[Document]: ...


def reject_empty(path: Path) -> None:
    """Fail a 0-byte file with that reason, before a parser reports it as merely corrupt.

    Binary formats call this; text formats give no documents instead (whitespace too), which
    the ingest reports as a file with no text.
    """
    if path.stat().st_size == 0:
        raise DocumentLoadError(path.name, "the file is empty (0 bytes)")


def render_row(headers: Sequence[str], cells: Sequence[object]) -> str:
    """One table row as text that reads on its own: ``列名: 值; 列名: 值``.

    Empty cells are left out; a missing or blank header becomes ``列N`` (1-based).
    """
    parts = []
    for index, cell in enumerate(cells):
        value = "" if cell is None else str(cell).strip()
        if not value:
            continue
        header = headers[index].strip() if index < len(headers) and headers[index] else ""
        parts.append(f"{header or f'列{index + 1}'}: {value}")
    return "; ".join(parts)
