"""Pinpoint citations: where a cited chunk is in its file, and the passage around it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

# The browsers' PDF viewers (pdf.js, Chrome's, Acrobat) open a PDF at the page a URL's
# "#page=N" fragment names (RFC 8118's open parameters).
PDF_PAGE_FRAGMENT = "#page="


def chunk_offsets(metadata: Mapping[str, Any]) -> tuple[int, int] | None:
    """``(start_index, end_index)`` of a chunk in its document's text, when it has both."""
    start, end = metadata.get("start_index"), metadata.get("end_index")
    if isinstance(start, int) and isinstance(end, int) and 0 <= start <= end:
        return start, end
    return None


def heading_path_of(metadata: Mapping[str, Any]) -> list[str]:
    path = metadata.get("heading_path")
    return [str(part) for part in path] if isinstance(path, list) else []


def page_url(file_name: str, page: object, download_url: str) -> str | None:
    """The file's preview URL opening at ``page``: PDFs with a known page only."""
    if not file_name.lower().endswith(".pdf") or not isinstance(page, int) or page < 1:
        return None
    separator = "&" if "?" in download_url else "?"
    return f"{download_url}{separator}preview=true{PDF_PAGE_FRAGMENT}{page}"


def citation_fields(metadata: Mapping[str, Any], file_name: str, url: str) -> dict[str, Any]:
    """The pinpoint fields of a source (SourceDoc) from its chunk's metadata."""
    offsets = chunk_offsets(metadata)
    return {
        "start_index": offsets[0] if offsets else None,
        "end_index": offsets[1] if offsets else None,
        "heading_path": heading_path_of(metadata),
        "page_url": page_url(file_name, metadata.get("page"), url),
    }


class ChunkContext(BaseModel):
    """A cited chunk in its context: the text around it on its page (or in its document)."""

    knowledge_base_name: str
    file_name: str
    chunk_id: int
    page: int | None = Field(None, description="PDF page or slide the chunk is on.")
    heading_path: list[str] = Field(
        default_factory=list, description="The headings the chunk is under, outermost first."
    )
    text: str = Field(
        description="The passage: the chunk and up to `window` characters either side, "
        "rebuilt from the file's stored chunks. A stretch no chunk holds (whitespace between "
        "chunks, a heading that title enhancement moved into the chunks' prefix) shows as one "
        "line break."
    )
    highlight_start: int = Field(description="Where the chunk's text starts in `text`.")
    highlight_end: int = Field(description="Where it ends in `text` (exclusive).")
    start_index: int | None = Field(
        None,
        description="Offset of `text` in the document's text (the page's for a PDF); null "
        "when the chunk has no offsets (indexed before they were stored, or edited).",
    )
    truncated_before: bool = Field(description="The document has text before `text`.")
    truncated_after: bool = Field(description="The document has text after `text`.")
