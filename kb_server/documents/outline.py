"""A document's outline: its headings and where they are in its text.

Loaders that know headings from the file's structure (docx heading styles, HTML h1-h6) put
the outline in the document's ``outline`` metadata; the splitter turns it into each chunk's
``heading_path`` and does not copy it to the chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class Heading(NamedTuple):
    """A heading: the offset of its line in the document text, its level (1 = outermost)."""

    offset: int
    level: int
    text: str


def locate_headings(lines: Sequence[str], headings: Sequence[tuple[int, str]]) -> list[Heading]:
    """Place ``(level, text)`` headings, in document order, on the ``lines`` joined by "\\n".

    Each heading is the next line equal to its text; one that is not found (its text was
    rendered differently, say inside a table) is left out, and the search goes on from where
    the last one was found.
    """
    offsets: list[int] = []
    offset = 0
    for line in lines:
        offsets.append(offset)
        offset += len(line) + 1
    placed: list[Heading] = []
    next_line = 0
    for level, text in headings:
        text = text.strip()
        if not text:
            continue
        found = next((i for i in range(next_line, len(lines)) if lines[i] == text), None)
        if found is not None:
            placed.append(Heading(offsets[found], level, text))
            next_line = found + 1
    return placed
