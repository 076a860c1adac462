"""The splitter contract: one document -> chunks of text with metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from langchain_core.documents import Document


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document small enough to embed and to quote.

    ``metadata`` carries the document's metadata (source, page, sheet, row, ...) plus what the
    splitter knows: ``start_index`` and ``end_index`` (the span of the chunk's text, title
    prefix excluded, in the document text), ``heading_path`` (["安装", "离线安装"]),
    ``header_path`` for Markdown ("安装 > 离线安装") and ``title`` when title enhancement
    prefixed the chunk. The keys are described in ``kb_server.splitting``.
    """

    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


class Splitter(Protocol):
    def split(self, document: Document) -> list[Chunk]: ...
