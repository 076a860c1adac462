"""A chunk's heading path from its document's outline and the loader's title."""

from __future__ import annotations

from collections.abc import Sequence

from kb_server.documents.outline import Heading


def parse_outline(value: object) -> list[Heading]:
    """The ``outline`` metadata as headings in offset order (anything else: none)."""
    if not isinstance(value, list | tuple):
        return []
    headings = [
        Heading(int(item[0]), int(item[1]), str(item[2]))
        for item in value
        if isinstance(item, list | tuple) and len(item) == 3
    ]
    return sorted(headings, key=lambda heading: heading.offset)


def outline_path(outline: Sequence[Heading], offset: int) -> tuple[str, ...]:
    """The headings in force at ``offset``: the last one at each level above the next."""
    stack: list[Heading] = []
    for heading in outline:
        if heading.offset > offset:
            break
        while stack and stack[-1].level >= heading.level:
            stack.pop()
        stack.append(heading)
    return tuple(heading.text for heading in stack)


def with_title(title: str | None, path: Sequence[str]) -> list[str]:
    """``path`` under the loader's ``title`` (a chapter, a slide), unless it starts with it."""
    parts = list(path)
    if title and (not parts or parts[0] != title):
        parts.insert(0, title)
    return parts
