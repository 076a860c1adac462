"""Markdown: cut at headers (# .. ######) first, then split each section as plain text.

LangChain's MarkdownHeaderTextSplitter decides where sections begin and which headers are in
force (it skips "#" lines inside ``` and ~~~ fences). Its section text is rebuilt line by line
(stripped, blank lines dropped), which would lose code indentation and every offset, so each
section's text is taken from the original document instead, from the line the section
starts at.
"""

from __future__ import annotations

import re

from langchain_text_splitters import MarkdownHeaderTextSplitter

from kb_server.splitting.title_enhance import Section

HEADER_PATH_SEPARATOR = " > "
_HEADER_KEYS = tuple(f"h{level}" for level in range(1, 7))
_HEADERS_TO_SPLIT_ON = [("#" * level, key) for level, key in enumerate(_HEADER_KEYS, start=1)]
_HEADER_LINE = re.compile(r"#{1,6}(?:\s.*)?")


def _as_splitter_sees(line: str) -> str:
    # MarkdownHeaderTextSplitter strips each line and drops non-printable characters.
    return "".join(filter(str.isprintable, line.strip())).strip()


def _leading_headers(section_text: str) -> tuple[str, ...]:
    """The header lines at the top of a section, stripped, up to the first other line."""
    headers: list[str] = []
    for line in section_text.split("\n"):
        stripped = line.strip()
        if not stripped:
            continue
        if not _HEADER_LINE.fullmatch(stripped):
            break
        headers.append(stripped)
    return tuple(headers)


def markdown_sections(text: str) -> list[Section]:
    """Cut Markdown ``text`` into sections, one per header, with the header path as title.

    A section's ``title`` is its header path ("安装 > 离线安装"); ``heading`` holds the
    header lines at its top, which that path stands for when titles are prefixed.
    """
    splitter = MarkdownHeaderTextSplitter(_HEADERS_TO_SPLIT_ON, strip_headers=False)
    parts = splitter.split_text(text)
    lines = text.split("\n")
    line_offsets: list[int] = []
    offset = 0
    for line in lines:
        line_offsets.append(offset)
        offset += len(line) + 1
    seen_as = [_as_splitter_sees(line) for line in lines]

    # (first line index, header path parts) per section; the first section starts at line 0
    # so that nothing before it is lost.
    starts: list[tuple[int, list[str]]] = []
    for part in parts:
        path = [str(part.metadata[key]) for key in _HEADER_KEYS if part.metadata.get(key)]
        if not starts:
            starts.append((0, path))
            continue
        first_line = part.page_content.split("\n", 1)[0].strip()
        line_index = next(
            (i for i in range(starts[-1][0] + 1, len(lines)) if seen_as[i] == first_line), None
        )
        # Not found cannot happen with the splitter's current rules; keeping the text in the
        # previous section is safer than guessing an offset.
        if line_index is not None:
            starts.append((line_index, path))

    sections: list[Section] = []
    for position, (line_index, path) in enumerate(starts):
        start = line_offsets[line_index]
        end = line_offsets[starts[position + 1][0]] if position + 1 < len(starts) else len(text)
        section_text = text[start:end]
        if not section_text.strip():
            continue
        title = HEADER_PATH_SEPARATOR.join(path) if path else None
        sections.append(
            Section(start, section_text, title, _leading_headers(section_text), tuple(path))
        )
    return sections
