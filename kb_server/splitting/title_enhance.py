"""Title enhancement: find title lines, split the text under each title, prefix the title.

A chunk cut from the middle of a section loses the heading that says what it is about; putting
the heading in front of every chunk of its section gives the embedder that context back.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from kb_server.settings import SplitterSettings
from kb_server.splitting.chinese_recursive import (
    CLOSING_MARKS,
    ChineseRecursiveTextSplitter,
    PlacedText,
)

_ZH_NUMERAL = "[一二三四五六七八九十百千零〇两]+"
_ENDS_LIKE_SENTENCE = re.compile(rf"[。！？；，,.!?;：:…、][{CLOSING_MARKS}]*$")
_HAS_LETTER = re.compile(r"[^\W\d_]")
_ENDS_PARAGRAPH = re.compile(rf"[。！？；.!?;：:…][{CLOSING_MARKS}]*$")
_DIGITS = re.compile(r"\d+")

# A numbered heading and the "kind" of numbering it uses. Adjacent lines of the same kind are
# a list, not headings. Each pattern requires words after the number unless noted. The
# "level" group tells levels of one scheme apart: 第一章 vs 第一条, 1.1 vs 1.1.2.
_NUMBERED_HEADINGS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("zh-dun", re.compile(rf"{_ZH_NUMERAL}、\s*\S")),
    ("zh-paren", re.compile(rf"[（(]{_ZH_NUMERAL}[）)]\s*\S")),
    ("arabic-paren", re.compile(r"[（(]\d{1,3}[）)]\s*\S")),
    # 第三章 / 第2节 / 第十条 are headings even without words after them.
    ("zh-ordinal", re.compile(rf"第(?:{_ZH_NUMERAL}|\d{{1,4}})(?P<level>[章节条篇部编卷款回])")),
    ("arabic", re.compile(r"(?P<level>\d{1,3}(?:[.．]\d{1,3})*)(?:[.．、]|\s)\s*[^\W\d_]")),
    ("arabic", re.compile(r"(?P<level>\d{1,3}(?:[.．]\d{1,3})+)[^\W\d_]")),
    (
        "english",
        re.compile(r"(?:chapter|section|part|article|appendix)\s+(?:\d+|[ivxlc]+|[a-z])\b", re.I),
    ),
)


@dataclass(frozen=True, slots=True)
class Section:
    """A stretch of a document that is split on its own.

    Attributes:
        start: offset of ``text`` in the document text.
        text: the section's text, its heading lines included.
        title: the text to put in front of its chunks (None: no title).
        heading: the stripped lines at the top of ``text`` that the title stands for; when
            the title is prefixed they are left out of the text that gets split, so the
            first chunk does not carry its title twice.
        path: the headings the section is under, outermost first (its chunks'
            ``heading_path``); the title joins them with " > ".
    """

    start: int
    text: str
    title: str | None = None
    heading: tuple[str, ...] = ()
    path: tuple[str, ...] = ()


def numbered_heading_kind(line: str) -> str | None:
    """The numbering kind of a numbered heading ("zh-dun", "zh-ordinal-章", ...), else None."""
    for kind, pattern in _NUMBERED_HEADINGS:
        match = pattern.match(line)
        if match is None:
            continue
        level = match.groupdict().get("level")
        return kind if level is None else f"{kind}-{_DIGITS.sub('', level)}"
    return None


def is_title_like(line: str, title_max_chars: int) -> bool:
    """Whether a stripped line could be a title at all: short, not a sentence, not a number."""
    return (
        0 < len(line) <= title_max_chars
        and not _ENDS_LIKE_SENTENCE.search(line)
        and _HAS_LETTER.search(line) is not None
    )


def _is_short_standalone(line: str, next_line: str | None, title_max_chars: int) -> bool:
    return (
        len(line) <= max(2, title_max_chars // 2)
        and not any(unicodedata.category(char).startswith("P") for char in line)
        and next_line is not None
        and len(next_line) > len(line)
    )


def _title_lines(lines: list[str], after_blank: list[bool], title_max_chars: int) -> list[bool]:
    """Mark the stripped, non-blank ``lines`` that are titles."""
    kinds = [numbered_heading_kind(line) for line in lines]
    is_title = [False] * len(lines)
    for index, line in enumerate(lines):
        if not is_title_like(line, title_max_chars):
            continue
        previous = lines[index - 1] if index > 0 else None
        following = lines[index + 1] if index + 1 < len(lines) else None
        kind = kinds[index]
        if kind is not None:
            neighbours = {kinds[i] for i in (index - 1, index + 1) if 0 <= i < len(lines)}
            is_title[index] = kind not in neighbours
        else:
            # A short line is only a title where a new block can begin, not where a wrapped
            # paragraph goes on.
            starts_block = (
                previous is None
                or after_blank[index]
                or is_title[index - 1]
                or _ENDS_PARAGRAPH.search(previous) is not None
            )
            is_title[index] = starts_block and _is_short_standalone(
                line, following, title_max_chars
            )
    return is_title


def find_titled_sections(text: str, title_max_chars: int) -> list[Section]:
    """Cut ``text`` into sections, each starting at a block of title lines.

    Adjacent title lines ("第三章 安装" then "3.1 离线安装") form one heading; the section's
    title joins them with " > ". Text before the first title is a section without a title.
    """
    # (offset, stripped text) of every non-blank line, and whether a blank line precedes it
    lines: list[tuple[int, str]] = []
    after_blank: list[bool] = []
    offset = 0
    blank_seen = False
    for raw_line in text.split("\n"):
        if raw_line.strip():
            lines.append((offset + len(raw_line) - len(raw_line.lstrip()), raw_line.strip()))
            after_blank.append(blank_seen)
        blank_seen = not raw_line.strip()
        offset += len(raw_line) + 1
    is_title = _title_lines([line for _, line in lines], after_blank, title_max_chars)

    # (start offset, heading lines) of each section
    starts: list[tuple[int, list[str]]] = [(0, [])]
    for index, (line_start, line) in enumerate(lines):
        if not is_title[index]:
            continue
        if index > 0 and is_title[index - 1]:
            starts[-1][1].append(line)
        else:
            starts.append((line_start, [line]))

    sections: list[Section] = []
    for position, (start, heading) in enumerate(starts):
        end = starts[position + 1][0] if position + 1 < len(starts) else len(text)
        if not text[start:end].strip():
            continue
        title = " > ".join(heading) if heading else None
        sections.append(Section(start, text[start:end], title, tuple(heading), tuple(heading)))
    return sections


def _heading_end(text: str, heading: tuple[str, ...]) -> int:
    """Offset just past the ``heading`` lines at the top of ``text`` (0 if they are not there)."""
    offset = 0
    remaining = list(heading)
    for line in text.split("\n"):
        if not remaining:
            break
        offset += len(line) + 1
        if line.strip() and line.strip() != remaining.pop(0):
            return 0
    return min(offset, len(text)) if heading and not remaining else 0


def split_section(
    section: Section, options: SplitterSettings, *, prefix_title: bool
) -> list[PlacedText]:
    """Split one section; with ``prefix_title``, put its title in front of every chunk.

    The heading lines are replaced by the prefix, and the rest is split with ``chunk_size``
    minus the prefix length, so prefixed chunks still fit ``chunk_size``. A title longer than
    half a chunk is not prefixed. Offsets are relative to the document (``section.start``
    added) and span the chunk's text after the prefix.
    """
    prefix = f"{section.title}\n" if prefix_title and section.title else ""
    if prefix and len(prefix) <= options.chunk_size // 2:
        body_start = _heading_end(section.text, section.heading)
        chunks = _split(section.text[body_start:], options, len(prefix))
        if chunks:
            return [
                PlacedText(
                    section.start + body_start + chunk.start, prefix + chunk.text, len(prefix)
                )
                for chunk in chunks
            ]
    # No title, or a heading with nothing under it: the text as it is.
    return [
        PlacedText(section.start + chunk.start, chunk.text)
        for chunk in _split(section.text, options, 0)
    ]


def _split(text: str, options: SplitterSettings, reserved: int) -> list[PlacedText]:
    chunk_size = options.chunk_size - reserved
    overlap = options.chunk_overlap if options.chunk_overlap < chunk_size else chunk_size // 2
    splitter = ChineseRecursiveTextSplitter(chunk_size=chunk_size, chunk_overlap=overlap)
    return splitter.split_with_offsets(text)
