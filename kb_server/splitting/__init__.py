"""Document -> chunks: the splitting step of ingestion.

Every chunk's metadata is a copy of its document's metadata (without ``markup``) plus
``start_index``, ``header_path`` for Markdown sections under a header, and ``title`` when
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
    base_metadata = {key: value for key, value in document.metadata.items() if key != "markup"}
    loader_title = base_metadata.get("title")
    chunks: list[Chunk] = []
    for found in _sections(document, options):
        section = found
        if options.zh_title_enhance and section.title is None and loader_title:
            # No title in the text: the one the loader knows from the file's structure.
            section = dataclasses.replace(
                section, title=str(loader_title), heading=(str(loader_title),)
            )
        for placed in split_section(section, options, prefix_title=options.zh_title_enhance):
            metadata: dict[str, Any] = copy.deepcopy(base_metadata)
            metadata["start_index"] = placed.start
            if is_markdown and found.title:
                metadata["header_path"] = found.title
            if options.zh_title_enhance and section.title:
                metadata["title"] = section.title
            chunks.append(Chunk(placed.text, metadata))
    return chunks


def split_documents(documents: Iterable[Document], options: SplitterSettings) -> list[Chunk]:
    """Split each document in turn; chunks keep the order of documents and of their text."""
    return [chunk for document in documents for chunk in split_document(document, options)]


class ChineseDocumentSplitter:
    """The project's :class:`Splitter`: :func:`split_document` with fixed settings."""

    def __init__(self, options: SplitterSettings) -> None:
        self._options = options

    def split(self, document: Document) -> list[Chunk]:
        return split_document(document, self._options)
