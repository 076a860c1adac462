"""Plain text and Markdown: the whole file as one document, in whatever encoding it was saved."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from langchain_core.documents import Document

from kb_server.documents.base import LoaderContext, OcrUse
from kb_server.documents.encoding import decode_text


def _load_text(path: Path, metadata: dict[str, object]) -> list[Document]:
    text = decode_text(path.read_bytes(), path.name)
    if not text.strip():
        return []
    return [Document(page_content=text, metadata=metadata)]


class TextLoader:
    name: ClassVar[str] = "text"
    suffixes: ClassVar[frozenset[str]] = frozenset({".txt"})
    ocr_use: ClassVar[OcrUse] = "none"

    def __init__(self, context: LoaderContext) -> None:
        self.context = context

    def load(self, path: Path) -> list[Document]:
        return _load_text(path, {})


class MarkdownLoader:
    """Markdown stays as written; ``markup`` tells the splitter to split on its headers."""

    name: ClassVar[str] = "markdown"
    suffixes: ClassVar[frozenset[str]] = frozenset({".md"})
    ocr_use: ClassVar[OcrUse] = "none"

    def __init__(self, context: LoaderContext) -> None:
        self.context = context

    def load(self, path: Path) -> list[Document]:
        return _load_text(path, {"markup": "markdown"})
