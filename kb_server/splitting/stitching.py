"""Chunks back into a passage: the text around one chunk, rebuilt from its neighbours.

Chunks carry their exact place in their document's text (``start_index``/``end_index``), so
overlapping neighbours can be laid side by side without repeating or losing a character.
What no chunk holds (whitespace stripped between chunks, heading lines that title
enhancement moved into a prefix) is shown as one line break.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

GAP = "\n"


class PlacedChunk(NamedTuple):
    """A chunk's body (its text without the title prefix) and its span in the document."""

    start: int
    end: int
    body: str


@dataclass(frozen=True)
class Passage:
    """``text`` with the cited chunk at ``text[highlight_start:highlight_end]``.

    ``start`` is the document offset ``text`` begins at; ``more_before``/``more_after`` say
    whether stored chunks go on beyond it.
    """

    text: str
    highlight_start: int
    highlight_end: int
    start: int
    more_before: bool
    more_after: bool


def placed_chunk(text: str, metadata: Mapping[str, Any]) -> PlacedChunk | None:
    """Where a stored chunk is, or None when that is unknown or no longer true.

    The body is the last ``end - start`` characters of the text; what comes before it must
    be a title prefix (a line of its own). An edited chunk no longer matches its offsets.
    """
    start, end = metadata.get("start_index"), metadata.get("end_index")
    if metadata.get("edited") or not isinstance(start, int) or not isinstance(end, int):
        return None
    length = end - start
    if start < 0 or length <= 0 or length > len(text):
        return None
    prefix = text[: len(text) - length]
    if prefix and not prefix.endswith("\n"):
        return None
    return PlacedChunk(start, end, text[len(text) - length :])


def stitch(target: PlacedChunk, neighbours: Iterable[PlacedChunk], window: int) -> Passage:
    """The text from ``window`` characters before ``target`` to ``window`` after it.

    ``neighbours`` are the other chunks of the same document (any order; ``target`` may be
    among them). The result never holds more than ``2 * window + len(target.body)``
    characters of chunk text.
    """
    low, high = max(0, target.start - window), target.end + window
    chunks = sorted({*neighbours, target}, key=lambda chunk: (chunk.start, chunk.end))
    parts: list[str] = []
    # (document offset, text offset, length) of each stretch copied from a chunk
    stretches: list[tuple[int, int, int]] = []
    length = 0
    position: int | None = None
    for chunk in chunks:
        start, end = max(chunk.start, low), min(chunk.end, high)
        if end <= start or (position is not None and end <= position):
            continue
        if position is not None and start > position:
            parts.append(GAP)
            length += len(GAP)
        copy_from = start if position is None else max(start, position)
        piece = chunk.body[copy_from - chunk.start : end - chunk.start]
        stretches.append((copy_from, length, len(piece)))
        parts.append(piece)
        length += len(piece)
        position = end
    first = stretches[0][0]
    return Passage(
        text="".join(parts),
        highlight_start=_text_offset(stretches, target.start, at_end=False),
        highlight_end=_text_offset(stretches, target.end, at_end=True),
        start=first,
        more_before=any(chunk.start < first for chunk in chunks),
        more_after=any(chunk.end > (position or 0) for chunk in chunks),
    )


def _text_offset(stretches: list[tuple[int, int, int]], offset: int, *, at_end: bool) -> int:
    for document_start, text_start, length in stretches:
        inside = (
            document_start < offset <= document_start + length
            if at_end
            else document_start <= offset < document_start + length
        )
        if inside:
            return text_start + offset - document_start
    raise ValueError(f"offset {offset} is not in the passage")
