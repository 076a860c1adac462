"""Image files: the text OCR finds in them, as one document."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

from langchain_core.documents import Document

from kb_server.documents.base import LoaderContext, OcrUse, reject_empty
from kb_server.documents.ocr import UnreadableImageError, check_image_pixels
from kb_server.errors import DocumentLoadError, OcrUnavailableError

logger = logging.getLogger(__name__)


class ImageLoader:
    """One document with the image's text (metadata ``ocr=True``); no text gives no document.

    An image with more than ``documents.max_image_pixels`` pixels fails before it is decoded.
    """

    name: ClassVar[str] = "image"
    suffixes: ClassVar[frozenset[str]] = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
    ocr_use: ClassVar[OcrUse] = "whole"

    def __init__(self, context: LoaderContext) -> None:
        self._context = context

    def load(self, path: Path) -> list[Document]:
        reject_empty(path)
        try:
            # A huge image fails whether or not OCR is on: that is the file's problem.
            check_image_pixels(path, self._context.documents.max_image_pixels)
        except UnreadableImageError as exc:
            raise DocumentLoadError(path.name, str(exc)) from exc
        reader = self._context.ocr
        if reader is None:
            raise OcrUnavailableError(
                f"Cannot read {path.name!r}: image files need OCR, which is disabled "
                "(ocr.enabled=false). Enable it in the settings to load images."
            )
        try:
            text = reader.read_image(path)
        except UnreadableImageError as exc:
            raise DocumentLoadError(path.name, str(exc)) from exc
        if not text.strip():
            logger.info("No text found in image %s", path.name)
            return []
        return [Document(page_content=text, metadata={"ocr": True})]
