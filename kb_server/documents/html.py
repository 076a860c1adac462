"""HTML pages -> text: one line per block element, tables row by row, scripts and styles dropped.

``html_to_text`` is shared with the EPUB loader, whose chapters are XHTML pages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from bs4 import BeautifulSoup, Comment, Declaration, Doctype, ProcessingInstruction, Tag
from bs4.dammit import EncodingDetector
from bs4.element import NavigableString, PageElement
from langchain_core.documents import Document

from kb_server.documents.base import LoaderContext, OcrUse, render_row
from kb_server.documents.outline import Heading, locate_headings
from kb_server.errors import DocumentLoadError

SKIPPED_TAGS = frozenset(
    {"script", "style", "noscript", "template", "head", "svg", "canvas", "iframe", "object"}
)
HEADING_TAGS = ("h1", "h2", "h3", "h4", "h5", "h6")
BLOCK_TAGS = frozenset(
    {
        *HEADING_TAGS,
        *("address", "article", "aside", "blockquote", "body", "caption", "center", "dd"),
        *("details", "dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure"),
        *("footer", "form", "header", "hgroup", "hr", "html", "legend", "li", "main", "nav"),
        *("ol", "option", "p", "section", "summary", "td", "th", "tr", "ul"),
    }
)
_NON_TEXT_STRINGS = (Comment, Declaration, Doctype, ProcessingInstruction)
# Pages that declare GB2312/GBK often contain characters only GB18030 (a superset) can decode.
_GB_FAMILY = frozenset({"gb2312", "gb_2312-80", "csgb2312", "euc-cn", "gbk", "x-gbk", "cp936"})
_MAX_COLSPAN = 64
_WHITESPACE = re.compile(r"\s+")
# A source line break between two Chinese characters is no space (CSS Text 3 segment breaks).
_CJK = "\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef"
_CJK_LINE_BREAK = re.compile(rf"(?<=[{_CJK}])[ \t\r]*\n\s*(?=[{_CJK}])")


@dataclass(frozen=True)
class HtmlText:
    text: str
    title: str | None
    first_heading: str | None
    # h1-h6 and where their lines are in ``text``
    outline: list[Heading] = field(default_factory=list)


def html_to_text(markup: bytes) -> HtmlText:
    """The readable text of an HTML page; bytes so the declared or BOM encoding is honoured.

    Raises RecursionError for pathologically nested markup.
    """
    soup = BeautifulSoup(markup, "lxml", from_encoding=_encoding_override(markup))
    title = _squash(soup.title.get_text()) if soup.title else ""
    headings: list[tuple[int, str]] = []
    for element in soup.find_all(HEADING_TAGS):
        if isinstance(element, Tag) and (heading_lines := _element_lines(element)):
            headings.append((int(element.name[1]), heading_lines[0]))
    heading = soup.find(HEADING_TAGS)
    heading_text = " ".join(_element_lines(heading)) if isinstance(heading, Tag) else ""
    lines = _element_lines(soup)
    return HtmlText(
        "\n".join(lines), title or None, heading_text or None, locate_headings(lines, headings)
    )


class HtmlLoader:
    name: ClassVar[str] = "html"
    suffixes: ClassVar[frozenset[str]] = frozenset({".html", ".htm"})
    ocr_use: ClassVar[OcrUse] = "none"

    def __init__(self, context: LoaderContext) -> None:
        self._context = context

    def load(self, path: Path) -> list[Document]:
        try:
            page = html_to_text(path.read_bytes())
        except RecursionError:
            raise DocumentLoadError(path.name, "the HTML is nested too deeply to read") from None
        if not page.text:
            return []
        metadata: dict[str, Any] = {"title": page.title} if page.title else {}
        if page.outline:
            metadata["outline"] = page.outline
        return [Document(page_content=page.text, metadata=metadata)]


def _encoding_override(markup: bytes) -> str | None:
    if EncodingDetector.strip_byte_order_mark(markup)[1] is not None:
        return None
    declared = EncodingDetector.find_declared_encoding(markup, is_html=True)
    return "gb18030" if declared and declared.lower() in _GB_FAMILY else None


def _squash(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


class _LineBuffer:
    """Collects inline text into the current line; a block boundary ends the line."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._inline: list[str] = []

    def add_inline(self, text: str) -> None:
        self._inline.append(text)

    def end_line(self) -> None:
        line = _squash(_CJK_LINE_BREAK.sub("", "".join(self._inline)))
        self._inline.clear()
        if line:
            self.lines.append(line)

    def add_line(self, line: str) -> None:
        self.end_line()
        if line.strip():
            self.lines.append(line)


def _element_lines(root: Tag) -> list[str]:
    buffer = _LineBuffer()
    # An explicit stack instead of recursion: deeply nested pages are common enough.
    # ``None`` marks the end of a block element.
    stack: list[PageElement | None] = [root]
    while stack:
        node = stack.pop()
        if node is None:
            buffer.end_line()
        elif isinstance(node, NavigableString):
            if not isinstance(node, _NON_TEXT_STRINGS):
                buffer.add_inline(str(node))
        elif isinstance(node, Tag):
            name = node.name.lower()
            if name in SKIPPED_TAGS:
                continue
            if name in ("br", "hr"):
                buffer.end_line()
            elif name == "pre":
                buffer.end_line()
                for line in node.get_text().splitlines():
                    buffer.add_line(line.rstrip())
            elif name == "table":
                buffer.end_line()
                for line in _table_lines(node):
                    buffer.add_line(line)
            else:
                if name in BLOCK_TAGS:
                    buffer.end_line()
                    stack.append(None)
                stack.extend(reversed(node.contents))
    buffer.end_line()
    return buffer.lines


def _table_lines(table: Tag) -> list[str]:
    rows: list[list[str]] = []
    header_rows = 0
    for tr in table.find_all("tr"):
        if not isinstance(tr, Tag) or tr.find_parent("table") is not table:
            continue  # a row of a nested table; the cell holding that table renders it
        cells = [
            cell for cell in tr.find_all(("td", "th"), recursive=False) if isinstance(cell, Tag)
        ]
        is_header = bool(cells) and (
            _in_thead(tr, table) or all(cell.name == "th" for cell in cells)
        )
        values = _row_values(cells, repeat_spans=is_header)
        if not any(values):
            continue
        if is_header and header_rows == len(rows):
            header_rows += 1
        rows.append(values)
    if not rows:
        return []
    if header_rows == 0:
        if len(rows) == 1:
            # a single row is layout (a boxed note, a nav bar), not data under headers
            return [line for value in rows[0] for line in value.split("\n") if line]
        header_rows = 1
    headers = _merge_header_rows(rows[:header_rows])
    body = rows[header_rows:]
    if not body:
        return ["; ".join(header for header in headers if header)]
    return [line for row in body if (line := render_row(_one_line(headers), _one_line(row)))]


def _one_line(values: list[str]) -> list[str]:
    return [value.replace("\n", " ") for value in values]


def _in_thead(tr: Tag, table: Tag) -> bool:
    section = tr.parent
    return isinstance(section, Tag) and section.name == "thead" and section.parent is table


def _row_values(cells: list[Tag], *, repeat_spans: bool) -> list[str]:
    """Cell texts, one per grid column: a header spanning columns names each of them."""
    values: list[str] = []
    for cell in cells:
        text = "\n".join(_element_lines(cell))
        values.append(text)
        values.extend([text if repeat_spans else ""] * (_colspan(cell) - 1))
    return values


def _colspan(cell: Tag) -> int:
    try:
        span = int(str(cell.get("colspan", "1")).strip())
    except ValueError:
        return 1
    return max(1, min(span, _MAX_COLSPAN))


def _merge_header_rows(rows: list[list[str]]) -> list[str]:
    width = max(len(row) for row in rows)
    merged: list[str] = []
    for column in range(width):
        parts: list[str] = []
        for row in rows:
            value = row[column] if column < len(row) else ""
            if value and value not in parts:
                parts.append(value)
        merged.append(" ".join(parts))
    return merged
