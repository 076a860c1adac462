"""Document -> chunks: the splitting step of ingestion.

Every chunk's metadata is a copy of its document's metadata (without ``markup`` and
``outline``) plus where the chunk is (the keys of a pinpoint citation):

    start_index     offset of the chunk's first character in its document's text (a PDF
                    page's text, a slide's, ...), title prefix not counted
    end_index       offset just past its last one: ``text[start_index:end_index]`` is the
                    chunk's text without the title prefix, exactly
    heading_path    the headings it is under, outermost first (a list; absent when none is
                    known): Markdown headers, the document's ``outline`` (docx heading styles,
                    HTML h1-h6), the loader's ``title`` (EPUB chapter, slide title, HTML
                    title), and with title enhancement the titles found in the text
    document_index  which of the file's documents (pages, chapters, sheets...) it comes
                    from, 0-based (``split_documents`` only)

plus ``header_path`` (" > "-joined) for Markdown sections under a header, and ``title`` when
title enhancement is on and the chunk belongs to a titled section.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable
from typing import Any

from langchain_core.documents import Document

from kb_server.settings import SplitterSettings
from kb_server.splitting.base import Chunk, Splitter
from kb_server.splitting.chinese_recursive import ChineseRecursiveTextSplitter, PlacedText
from kb_server.splitting.headings import outline_path, parse_outline, with_title
from kb_server.splitting.markdown import markdown_sections
from kb_server.splitting.title_enhance import Section, find_titled_sections, split_section

__all__ = [
    "ChineseDocumentSplitter",
    "ChineseRecursiveTextSplitter",
    "Chunk",
    "PlacedText",
    "Splitter",
    "split_document",
    "split_documents",
]

# Document metadata that tells the splitter how to read the text and is not copied to chunks.
_DOCUMENT_ONLY = frozenset({"markup", "outline"})


def _sections(document: Document, options: SplitterSettings) -> list[Section]:
    text = document.page_content
    if document.metadata.get("markup") == "markdown":
        return markdown_sections(text)
    if options.zh_title_enhance:
        return find_titled_sections(text, options.title_max_chars)
    return [Section(0, text)]


def split_document(document: Document, options: SplitterSettings) -> list[Chunk]:
    """Split one document into chunks of at most ``options.chunk_size`` characters."""
    is_markdown = document.metadata.get("markup") == "markdown"
    base_metadata = {
        key: value for key, value in document.metadata.items() if key not in _DOCUMENT_ONLY
    }
    loader_title = str(base_metadata["title"]) if base_metadata.get("title") else None
    outline = parse_outline(document.metadata.get("outline"))
    chunks: list[Chunk] = []
    for found in _sections(document, options):
        section = found
        if options.zh_title_enhance and section.title is None and loader_title:
            # No title in the text: the one the loader knows from the file's structure.
            section = dataclasses.replace(section, title=loader_title, heading=(loader_title,))
        for placed in split_section(section, options, prefix_title=options.zh_title_enhance):
            metadata: dict[str, Any] = copy.deepcopy(base_metadata)
            metadata["start_index"] = placed.start
            metadata["end_index"] = placed.end
            if is_markdown:
                path = found.path
                if found.title:
                    metadata["header_path"] = found.title
            elif outline:
                path = outline_path(outline, placed.start)
            else:
                path = found.path if options.zh_title_enhance else ()
            heading_path = with_title(loader_title, path)
            if heading_path:
                metadata["heading_path"] = heading_path
            if options.zh_title_enhance and section.title:
                metadata["title"] = section.title
            chunks.append(Chunk(placed.text, metadata))
    return chunks


def split_documents(documents: Iterable[Document], options: SplitterSettings) -> list[Chunk]:
    """Split each document in turn; chunks keep the order of documents and of their text."""
    chunks: list[Chunk] = []
    for index, document in enumerate(documents):
        for chunk in split_document(document, options):
            chunk.metadata["document_index"] = index
            chunks.append(chunk)
    return chunks


class ChineseDocumentSplitter:
    """The project's :class:`Splitter`: :func:`split_document` with fixed settings."""

    def __init__(self, options: SplitterSettings) -> None:
        self._options = options

    def split(self, document: Document) -> list[Chunk]:
        return split_document(document, self._options)
