"""EPUB books -> one document per spine chapter, titled from the table of contents."""

from __future__ import annotations

import posixpath
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote

from ebooklib import epub
from langchain_core.documents import Document
from lxml import etree

from kb_server.documents.archives import check_archive
from kb_server.documents.base import LoaderContext, OcrUse, reject_empty
from kb_server.documents.html import html_to_text
from kb_server.errors import DocumentLoadError

# What ebooklib lets escape from a broken container: it indexes and dereferences parts of the
# OPF package without checking that they exist.
_BROKEN_BOOK_ERRORS = (
    epub.EpubException,
    zipfile.BadZipFile,
    etree.LxmlError,
    KeyError,
    ValueError,
    IndexError,
    AttributeError,
    TypeError,
)


class EpubLoader:
    name: ClassVar[str] = "epub"
    suffixes: ClassVar[frozenset[str]] = frozenset({".epub"})
    ocr_use: ClassVar[OcrUse] = "none"

    def __init__(self, context: LoaderContext) -> None:
        self._context = context

    def load(self, path: Path) -> list[Document]:
        book = _read_book(path, self._context.documents.max_unpacked_mb)
        toc_titles = _toc_titles(book.toc)
        documents: list[Document] = []
        seen: set[str] = set()
        for idref, *_ in book.spine:
            item = book.get_item_with_id(idref)
            if not _is_chapter(item) or item.get_id() in seen:
                continue
            seen.add(item.get_id())
            try:
                chapter = html_to_text(item.get_content())
            except RecursionError:
                raise DocumentLoadError(
                    path.name, f"chapter {item.get_name()!r} is nested too deeply to read"
                ) from None
            if not chapter.text:
                continue
            title = toc_titles.get(_href_key(item.get_name())) or chapter.first_heading
            metadata: dict[str, Any] = {"title": title} if title else {}
            if chapter.outline:
                metadata["outline"] = chapter.outline
            documents.append(Document(page_content=chapter.text, metadata=metadata))
        return documents


def _read_book(path: Path, max_unpacked_mb: float) -> epub.EpubBook:
    reject_empty(path)
    if not zipfile.is_zipfile(path):
        raise DocumentLoadError(path.name, "not a valid .epub file (it is not a zip archive)")
    check_archive(path, max_unpacked_mb)
    try:
        # ignore_ncx: the EPUB 3 nav document gives the TOC; ebooklib still reads the NCX
        # of an EPUB 2 book, and stating the option silences its deprecation warning.
        return epub.read_epub(str(path), options={"ignore_ncx": True})
    except _BROKEN_BOOK_ERRORS as error:
        raise DocumentLoadError(
            path.name, "not a valid .epub file (it may be corrupt or incomplete)"
        ) from error


def _is_chapter(item: object) -> bool:
    return (
        isinstance(item, epub.EpubHtml)
        and not isinstance(item, epub.EpubNav)
        and "nav" not in (item.properties or ())
    )


def _href_key(href: str) -> str:
    """A TOC link or a manifest name reduced to the file it points at."""
    return posixpath.normpath(unquote(href.split("#", 1)[0]))


def _toc_titles(toc: Iterable[object]) -> dict[str, str]:
    """File -> title of the first TOC entry that points into that file."""
    titles: dict[str, str] = {}
    pending: list[object] = list(toc)
    pending.reverse()
    while pending:
        entry = pending.pop()
        children: list[object] = []
        if isinstance(entry, tuple) and entry:
            entry, children = entry[0], list(entry[1]) if len(entry) > 1 else []
        href = getattr(entry, "href", None)
        title = getattr(entry, "title", None)
        if isinstance(href, str) and href and isinstance(title, str) and title.strip():
            titles.setdefault(_href_key(href), " ".join(title.split()))
        pending.extend(reversed(children))
    return titles
