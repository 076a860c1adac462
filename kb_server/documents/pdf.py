"""PDF files through pypdf: one document per page, scanned pages read by OCR.

A page whose text layer has fewer than ``documents.pdf_min_text_chars`` visible characters
is taken for a scan: its embedded images go through OCR (when enabled) and the text found
is added to whatever little text the page had. The text layers are read first, so that OCR
progress can be reported as "page n of m scanned pages" (``LoaderContext.progress``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, ClassVar

from langchain_core.documents import Document
from pypdf import PageObject, PasswordType, PdfReader
from pypdf.errors import PyPdfError
from pypdf.generic import DictionaryObject

from kb_server.documents.base import LoaderContext, OcrReader, OcrUse, reject_empty
from kb_server.documents.ocr import ImageTooLargeError, UnreadableImageError, check_image_pixels
from kb_server.errors import DocumentLoadError
from kb_server.settings import DocumentSettings

logger = logging.getLogger(__name__)

# pypdf reports damaged structure through its own errors and, deeper down, these builtins.
_PDF_ERRORS = (PyPdfError, ValueError, KeyError, TypeError, IndexError, AttributeError)
_BLANK_LINE_RUNS = re.compile(r"\n{3,}")
# Readers accept junk before the header (as Acrobat does) within the first kilobyte.
_HEADER_SEARCH_BYTES = 1024


class PdfLoader:
    """Pages in order with metadata ``page`` (1-based) and ``ocr=True`` for scanned pages."""

    name: ClassVar[str] = "pdf"
    suffixes: ClassVar[frozenset[str]] = frozenset({".pdf"})
    ocr_use: ClassVar[OcrUse] = "embedded"

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
        texts = [_page_text(page, path.name, number) for number, page in enumerate(pages, 1)]
        scans = [index for index, text in enumerate(texts) if _visible_chars(text) < min_chars]
        ocr_pages: set[int] = set()
        if ocr is not None:
            for done, index in enumerate(scans, start=1):
                self._context.progress.ocr_page(done, len(scans))
                scanned = _ocr_page(
                    pages[index], ocr, self._context.documents, path.name, index + 1
                )
                if scanned:
                    texts[index] = f"{texts[index]}\n{scanned}" if texts[index] else scanned
                    ocr_pages.add(index)
        unread_scans = 0 if ocr is not None else len(scans)
        documents = []
        for index, text in enumerate(texts):
            metadata: dict[str, Any] = {"page": index + 1}
            if index in ocr_pages:
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
    reject_empty(path)
    with path.open("rb") as handle:
        head = handle.read(_HEADER_SEARCH_BYTES)
    if b"%PDF-" not in head:
        raise DocumentLoadError(
            path.name, "not a PDF (no %PDF- header: another kind of file renamed?)"
        )
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


def _ocr_page(
    page: PageObject, ocr: OcrReader, documents: DocumentSettings, file_name: str, number: int
) -> str:
    texts = []
    try:
        # Listing the ids decodes inline images only (small, part of the content stream).
        image_ids = page.images.keys()
    except (*_PDF_ERRORS, NotImplementedError) as exc:
        logger.warning("%s page %d: images unreadable (%s)", file_name, number, exc)
        return ""
    for image_id in image_ids:
        try:
            # pypdf decodes an image when it is fetched: check its declared size first.
            _check_declared_pixels(page, image_id, documents.max_image_pixels)
            image = page.images[image_id]
            check_image_pixels(image.data, documents.max_image_pixels)
            text = ocr.read_image(image.data)
        except (*_PDF_ERRORS, NotImplementedError, UnreadableImageError) as exc:
            # One undecodable or oversized image (an odd filter, a broken stream, a huge
            # canvas) must not lose the file.
            logger.warning("%s page %d: skipped image %s (%s)", file_name, number, image_id, exc)
            continue
        if text:
            texts.append(text)
    return normalize_text("\n".join(texts))


def _check_declared_pixels(page: PageObject, image_id: str | list[str], max_pixels: int) -> None:
    """Raise ``ImageTooLargeError`` for an image XObject whose /Width x /Height is too large.

    ``image_id`` is pypdf's: ``/Name`` on the page, a list of names through nested forms, or
    ``~N~`` for an inline image (already decoded; its data is checked afterwards).
    """
    names = [image_id] if isinstance(image_id, str) else list(image_id)
    if not names or names[0].startswith("~"):
        return
    xobject: DictionaryObject = page
    for name in names:
        resources = _entry(xobject, "/Resources")
        xobjects = _entry(resources, "/XObject") if resources is not None else None
        found = _entry(xobjects, name) if xobjects is not None else None
        if found is None:
            return
        xobject = found
    width = _number(xobject, "/Width")
    height = _number(xobject, "/Height")
    if width * height > max_pixels:
        raise ImageTooLargeError(width, height, max_pixels)


def _entry(dictionary: DictionaryObject, key: str) -> DictionaryObject | None:
    value = dictionary.get(key)
    value = value.get_object() if value is not None else None
    return value if isinstance(value, DictionaryObject) else None


def _number(dictionary: DictionaryObject, key: str) -> int:
    value = dictionary.get(key)
    value = value.get_object() if value is not None else None
    return value if isinstance(value, int) else 0


def normalize_text(text: str) -> str:
    """Drop trailing spaces on each line and collapse runs of blank lines into one."""
    lines = (line.rstrip() for line in text.splitlines())
    return _BLANK_LINE_RUNS.sub("\n\n", "\n".join(lines)).strip()


def _visible_chars(text: str) -> int:
    return sum(not char.isspace() for char in text)
