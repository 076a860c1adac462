"""Pinpoint citations: a cited chunk shown within its page or paragraph.

Sources (chat, /v1, file chat) carry each chunk's page, offsets and heading path; this route
gives a UI the passage around one of them with the span to highlight.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from kb_server.api.deps import KbServiceDep
from kb_server.api.schemas.citations import ChunkContext, heading_path_of
from kb_server.knowledge.types import ChunkInfo, ChunkNotFoundError
from kb_server.splitting.stitching import Passage, placed_chunk, stitch

router = APIRouter(prefix="/knowledge_base", tags=["citations"])

MAX_WINDOW_CHARS = 5000


@router.get(
    "/chunk_context",
    description="The text around a chunk on its page (PDF, slide) or in its document, "
    "rebuilt from the file's stored chunks, and where the chunk is in it.",
)
def chunk_context(
    knowledge_base_name: str,
    file_name: str,
    chunk_id: int,
    service: KbServiceDep,
    window: Annotated[
        int, Query(ge=0, le=MAX_WINDOW_CHARS, description="Characters shown either side.")
    ] = 300,
) -> ChunkContext:
    chunks = service.list_chunks(knowledge_base_name, file_name)
    target = next((chunk for chunk in chunks if chunk.id == chunk_id), None)
    if target is None:
        kb_name = service.paths(knowledge_base_name).name
        raise ChunkNotFoundError(f"chunk {chunk_id} is not in {file_name!r} of {kb_name!r}")
    passage = _passage(target, chunks, window)
    page = target.metadata.get("page")
    return ChunkContext(
        knowledge_base_name=service.paths(knowledge_base_name).name,
        file_name=target.file_name,
        chunk_id=target.id,
        page=page if isinstance(page, int) else None,
        heading_path=heading_path_of(target.metadata),
        text=passage.text,
        highlight_start=passage.highlight_start,
        highlight_end=passage.highlight_end,
        start_index=passage.start if placed_chunk(target.text, target.metadata) else None,
        truncated_before=passage.more_before,
        truncated_after=passage.more_after,
    )


def _passage(target: ChunkInfo, chunks: list[ChunkInfo], window: int) -> Passage:
    placed = placed_chunk(target.text, target.metadata)
    if placed is None:
        # No offsets to place it among the others by: the chunk alone.
        return Passage(target.text, 0, len(target.text), 0, more_before=False, more_after=False)
    document = _document_key(target.metadata)
    neighbours = [
        found
        for chunk in chunks
        if _document_key(chunk.metadata) == document
        and (found := placed_chunk(chunk.text, chunk.metadata)) is not None
    ]
    return stitch(placed, neighbours, window)


def _document_key(metadata: dict[str, Any]) -> tuple[Any, Any]:
    """Which loaded document (page, chapter, ...) of the file a chunk is from: offsets
    count within it."""
    return metadata.get("document_index"), metadata.get("page")
