"""PDF files through pypdf: one document per page, scanned pages read by OCR.

A page whose text layer has fewer than ``documents.pdf_min_text_chars`` visible characters
is taken for a scan: its embedded images go through OCR (when enabled) and the text found
is added to whatever little text the page had.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, ClassVar

from langchain_core.documents import Document
from pypdf import PageObject, PasswordType, PdfReader
from pypdf.errors import PyPdfError

from kb_server.documents.base import LoaderContext, OcrReader
from kb_server.documents.ocr import UnreadableImageError
from kb_server.errors import DocumentLoadError

logger = logging.getLogger(__name__)

# pypdf reports damaged structure through its own errors and, deeper down, these builtins.
_PDF_ERRORS = (PyPdfError, ValueError, KeyError, TypeError, IndexError, AttributeError)
_BLANK_LINE_RUNS = re.compile(r"\n{3,}")


class PdfLoader:
    """Pages in order with metadata ``page`` (1-based) and ``ocr=True`` for scanned pages."""

    name: ClassVar[str] = "pdf"
    suffixes: ClassVar[frozenset[str]] = frozenset({".pdf"})

    def __init__(self, context: LoaderContext) -> None:
        self._context = context

    def load(self, path: Path) -> list[Document]:
        reader = _open_pdf(path)
        try:
            pages = list(reader.pages)
        except _PDF_ERRORS as exc:
            raise DocumentLoadError(path.name, f"broken page tree ({exc})") from exc
        min_chars = self._context.documents.pdf_min_text_chars
        ocr = self._context.ocr
        documents = []
        unread_scans = 0
        for number, page in enumerate(pages, start=1):
            text = _page_text(page, path.name, number)
            metadata: dict[str, Any] = {"page": number}
            if _visible_chars(text) < min_chars:
                if ocr is None:
                    unread_scans += 1
                else:
                    scanned = _ocr_page(page, ocr, path.name, number)
                    if scanned:
                        text = f"{text}\n{scanned}" if text else scanned
                        metadata["ocr"] = True
            if text:
                documents.append(Document(page_content=text, metadata=metadata))
        if unread_scans:
            logger.warning(
                "%s: %d page(s) have little or no text layer and may be scans; "
                "OCR is disabled, so their images were not read",
                path.name,
                unread_scans,
            )
        return documents


def _open_pdf(path: Path) -> PdfReader:
    try:
        reader = PdfReader(path, strict=False)
    except _PDF_ERRORS as exc:
        raise DocumentLoadError(path.name, f"not a readable PDF ({exc})") from exc
    if not reader.is_encrypted:
        return reader
    # Many PDFs are encrypted only to set permissions, with an empty user password.
    try:
        outcome = reader.decrypt("")
    except (*_PDF_ERRORS, NotImplementedError) as exc:
        raise DocumentLoadError(
            path.name, f"encrypted in a way that cannot be opened ({exc})"
        ) from exc
    if outcome == PasswordType.NOT_DECRYPTED:
        raise DocumentLoadError(path.name, "password-protected; remove the password and retry")
    return reader


def _page_text(page: PageObject, file_name: str, number: int) -> str:
    try:
        raw = page.extract_text()
    except _PDF_ERRORS as exc:
        logger.warning("%s page %d: text layer unreadable (%s)", file_name, number, exc)
        return ""
    return normalize_text(raw)


def _ocr_page(page: PageObject, ocr: OcrReader, file_name: str, number: int) -> str:
    texts = []
    try:
        images = list(page.images)
    except (*_PDF_ERRORS, NotImplementedError) as exc:
        logger.warning("%s page %d: images unreadable (%s)", file_name, number, exc)
        return ""
    for image in images:
        try:
            text = ocr.read_image(image.data)
        except (*_PDF_ERRORS, NotImplementedError, UnreadableImageError) as exc:
            # One undecodable image (an odd filter, a broken stream) must not lose the file.
            logger.warning("%s page %d: skipped image %s (%s)", file_name, number, image.name, exc)
            continue
        if text:
            texts.append(text)
    return normalize_text("\n".join(texts))


def normalize_text(text: str) -> str:
    """Drop trailing spaces on each line and collapse runs of blank lines into one."""
    lines = (line.rstrip() for line in text.splitlines())
    return _BLANK_LINE_RUNS.sub("\n\n", "\n".join(lines)).strip()


def _visible_chars(text: str) -> int:
    return sum(not char.isspace() for char in text)
