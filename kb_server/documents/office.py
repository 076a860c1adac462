"""Word (.docx) and PowerPoint (.pptx) files -> text, tables row by row, pictures through OCR."""

from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import docx
import pptx
from docx.document import Document as WordDocument
from docx.opc.exceptions import OpcError
from docx.oxml.ns import nsmap as word_nsmap
from docx.oxml.ns import qn
from docx.oxml.table import CT_Tbl
from docx.oxml.text.paragraph import CT_P
from docx.table import Table as WordTable
from langchain_core.documents import Document
from lxml import etree
from pptx.exc import PythonPptxError
from pptx.shapes.autoshape import Shape
from pptx.shapes.base import BaseShape
from pptx.shapes.graphfrm import GraphicFrame
from pptx.shapes.group import GroupShape
from pptx.shapes.picture import Picture
from pptx.slide import Slide
from pptx.table import Table as SlideTable

from kb_server.documents.archives import check_archive
from kb_server.documents.base import LoaderContext, OcrReader, OcrUse, reject_empty, render_row
from kb_server.documents.ocr import UnreadableImageError, check_image_pixels
from kb_server.documents.outline import locate_headings
from kb_server.errors import DocumentLoadError

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_OLE_SIGNATURE = bytes.fromhex("d0cf11e0a1b11ae1")
# Raster formats only: vector pictures (EMF, WMF, SVG) cannot be OCR'd.
_OCR_IMAGE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/bmp", "image/gif", "image/tiff", "image/webp"}
)
_XPATH_NAMESPACES = {
    "w": word_nsmap["w"],
    "a": word_nsmap["a"],
    "r": word_nsmap["r"],
    "mc": "http://schemas.openxmlformats.org/markup-compatibility/2006",
}
# Runs anywhere in the paragraph (hyperlinks, content controls, text boxes), but not the
# legacy copy Word keeps in mc:Fallback next to the modern one.
_RUN_TEXT_NODES = etree.XPath(
    ".//w:r[not(ancestor::mc:Fallback)]/*[self::w:t or self::w:tab or self::w:br or self::w:cr]",
    namespaces=_XPATH_NAMESPACES,
)
_HEADING_STYLE = re.compile(r"heading\s*(\d)")
# Styles are based on styles; a loop in a broken file must end.
_MAX_STYLE_DEPTH = 16
_PICTURE_REL_IDS = etree.XPath(
    ".//a:blip[not(ancestor::mc:Fallback)]/@r:embed", namespaces=_XPATH_NAMESPACES
)


class DocxLoader:
    name: ClassVar[str] = "docx"
    suffixes: ClassVar[frozenset[str]] = frozenset({".docx"})
    ocr_use: ClassVar[OcrUse] = "embedded"

    def __init__(self, context: LoaderContext) -> None:
        self._context = context

    def load(self, path: Path) -> list[Document]:
        word = _open_package(path, docx.Document, self._context, suffix=".docx", legacy=".doc")
        reader = _WordReader(word, self._context)
        lines = reader.block_lines(word.element.body)
        text = "\n".join(lines)
        if not text:
            return []
        metadata: dict[str, Any] = {"ocr": True} if reader.used_ocr else {}
        outline = locate_headings(lines, _word_headings(word))
        if outline:
            metadata["outline"] = outline
        return [Document(page_content=text, metadata=metadata)]


class PptxLoader:
    name: ClassVar[str] = "pptx"
    suffixes: ClassVar[frozenset[str]] = frozenset({".pptx"})
    ocr_use: ClassVar[OcrUse] = "embedded"

    def __init__(self, context: LoaderContext) -> None:
        self._context = context

    def load(self, path: Path) -> list[Document]:
        presentation = _open_package(
            path, pptx.Presentation, self._context, suffix=".pptx", legacy=".ppt"
        )
        documents: list[Document] = []
        for number, slide in enumerate(presentation.slides, start=1):
            reader = _SlideReader(self._context)
            lines = reader.shape_lines(slide.shapes)
            notes = _notes_text(slide)
            if notes:
                lines.append(f"备注: {notes}")
            if not lines:
                continue
            metadata: dict[str, Any] = {"page": number}
            title = _slide_title(slide)
            if title:
                metadata["title"] = title
            if reader.used_ocr:
                metadata["ocr"] = True
            documents.append(Document(page_content="\n".join(lines), metadata=metadata))
        return documents


def _open_package(
    path: Path, opener: Callable[[str], _T], context: LoaderContext, *, suffix: str, legacy: str
) -> _T:
    reject_empty(path)
    check_archive(path, context.documents.max_unpacked_mb)
    try:
        return opener(str(path))
    except (OpcError, PythonPptxError, zipfile.BadZipFile, KeyError, ValueError, etree.LxmlError):
        raise DocumentLoadError(path.name, _package_problem(path, suffix, legacy)) from None


def _package_problem(path: Path, suffix: str, legacy: str) -> str:
    try:
        with path.open("rb") as handle:
            signature = handle.read(len(_OLE_SIGNATURE))
    except OSError as error:
        return f"the file cannot be opened ({error.strerror or error})"
    if signature == _OLE_SIGNATURE:
        # Password-protected Office files are wrapped in the same container as legacy ones.
        return (
            f"it is a password-protected Office file or a legacy {legacy} file; "
            f"save it as {suffix} without a password"
        )
    return f"not a valid {suffix} file (it may be corrupt or another format renamed)"


def _table_lines(rows: Sequence[Sequence[str]]) -> list[str]:
    """First row = headers; each later row one line that names its columns."""
    rows = [row for row in rows if any(row)]
    if not rows:
        return []
    if len(rows) == 1:
        # a single row is layout (a boxed note), not data under headers
        return [value for value in rows[0] if value]
    headers, *body = rows
    return [line for row in body if (line := render_row(headers, row))]


def _clean_lines(text: str) -> list[str]:
    # PowerPoint soft line breaks come back as vertical tabs
    return [line.strip() for line in text.replace("\v", "\n").splitlines() if line.strip()]


class _OcrCollector:
    def __init__(self, context: LoaderContext) -> None:
        self._ocr: OcrReader | None = context.ocr
        self._max_image_pixels = context.documents.max_image_pixels
        self.used_ocr = False

    def read(self, blob: bytes, content_type: str) -> list[str]:
        if self._ocr is None or content_type not in _OCR_IMAGE_TYPES:
            return []
        try:
            check_image_pixels(blob, self._max_image_pixels)
            lines = _clean_lines(self._ocr.read_image(blob))
        except UnreadableImageError as exc:
            # One broken or oversized picture should not make the whole file unreadable.
            logger.warning("Skipping an embedded %s picture: %s", content_type, exc)
            return []
        self.used_ocr = self.used_ocr or bool(lines)
        return lines


class _WordReader(_OcrCollector):
    def __init__(self, word: WordDocument, context: LoaderContext) -> None:
        super().__init__(context)
        self._word = word
        self._read_pictures: set[str] = set()

    def block_lines(self, container: etree._Element) -> list[str]:
        """Paragraphs and tables of a body or table cell, in document order."""
        lines: list[str] = []
        for child in container.iterchildren():
            if isinstance(child, CT_P):
                lines.extend(_clean_lines(_paragraph_text(child)))
                lines.extend(self._picture_lines(child))
            elif isinstance(child, CT_Tbl):
                lines.extend(self._word_table_lines(WordTable(child, self._word)))
            elif child.tag == qn("w:sdt"):  # a content control wrapping blocks
                content = child.find(qn("w:sdtContent"))
                if content is not None:
                    lines.extend(self.block_lines(content))
        return lines

    def _word_table_lines(self, table: WordTable) -> list[str]:
        rows: list[list[str]] = []
        for row_index, row in enumerate(table.rows):
            cells = row.cells
            values: list[str] = []
            for index, cell in enumerate(cells):
                # python-docx yields a horizontally merged cell once per spanned column;
                # the header keeps it for every column it names, data rows only once.
                if row_index > 0 and index > 0 and cell is cells[index - 1]:
                    values.append("")
                else:
                    values.append(" ".join(self.block_lines(cell._tc)))
            rows.append(values)
        return _table_lines(rows)

    def _picture_lines(self, paragraph: CT_P) -> list[str]:
        if self._ocr is None:
            return []
        lines: list[str] = []
        related_parts = self._word.part.related_parts
        for rel_id in map(str, _xpath_nodes(_PICTURE_REL_IDS, paragraph)):
            if rel_id in self._read_pictures or rel_id not in related_parts:
                continue  # already read (the same picture used twice) or linked, not embedded
            self._read_pictures.add(rel_id)
            part = related_parts[rel_id]
            lines.extend(self.read(part.blob, part.content_type))
        return lines


def _word_headings(word: WordDocument) -> list[tuple[int, str]]:
    """(level, first line) of the body's heading paragraphs, in document order."""
    headings: list[tuple[int, str]] = []
    for paragraph in word.element.body.iterchildren(qn("w:p")):
        lines = _clean_lines(_paragraph_text(paragraph))
        level = _heading_level(paragraph, word) if lines else None
        if level is not None:
            headings.append((level, lines[0]))
    return headings


def _heading_level(paragraph: CT_P, word: WordDocument) -> int | None:
    """1 for "Heading 1" (or outline level 1), ...; 0 for "Title"; None for body text.

    The paragraph's own outline level wins, then its style's and those the style is based on.
    Word saves built-in style names in English whatever the interface language.
    """
    level = _outline_level(paragraph.find(qn("w:pPr")))
    if level is not None:
        return level
    style_id = paragraph.style
    style = word.styles.element.get_by_id(style_id) if style_id else None
    for _ in range(_MAX_STYLE_DEPTH):
        if style is None:
            return None
        level = _outline_level(style.find(qn("w:pPr")))
        if level is not None:
            return level
        name = (style.name_val or "").strip().lower()
        match = _HEADING_STYLE.fullmatch(name)
        if match:
            return int(match.group(1))
        if name == "title":
            return 0
        style = style.base_style
    return None


def _outline_level(properties: etree._Element | None) -> int | None:
    element = properties.find(qn("w:outlineLvl")) if properties is not None else None
    value = element.get(qn("w:val")) if element is not None else None
    if value is None or not value.isdigit():
        return None
    # Levels are 0-based; 9 means body text.
    return int(value) + 1 if int(value) < 9 else None


def _xpath_nodes(xpath: etree.XPath, element: etree._Element) -> list[object]:
    result = xpath(element)
    return list(result) if isinstance(result, list) else []


def _paragraph_text(paragraph: CT_P) -> str:
    parts: list[str] = []
    for node in _xpath_nodes(_RUN_TEXT_NODES, paragraph):
        if not isinstance(node, etree._Element):
            continue
        local_name = etree.QName(node).localname
        if local_name == "t":
            parts.append(node.text or "")
        else:
            parts.append("\t" if local_name == "tab" else "\n")
    return "".join(parts)


class _SlideReader(_OcrCollector):
    def shape_lines(self, shapes: Iterable[BaseShape]) -> list[str]:
        """Text of the shapes top to bottom, then left to right; groups read the same way."""
        lines: list[str] = []
        for shape in sorted(shapes, key=lambda s: (s.top or 0, s.left or 0)):
            if isinstance(shape, GroupShape):
                lines.extend(self.shape_lines(shape.shapes))
            elif isinstance(shape, GraphicFrame) and shape.has_table:
                lines.extend(_slide_table_lines(shape.table))
            elif isinstance(shape, Picture):
                lines.extend(self._picture_lines(shape))
            elif isinstance(shape, Shape) and shape.has_text_frame:
                lines.extend(_clean_lines(shape.text_frame.text))
        return lines

    def _picture_lines(self, picture: Picture) -> list[str]:
        if self._ocr is None:
            return []
        try:
            image = picture.image
        except (ValueError, KeyError):  # linked rather than embedded: no bytes to read
            return []
        return self.read(image.blob, image.content_type)


def _slide_table_lines(table: SlideTable) -> list[str]:
    rows = [
        ["" if cell.is_spanned else " ".join(_clean_lines(cell.text)) for cell in row.cells]
        for row in table.rows
    ]
    return _table_lines(rows)


def _notes_text(slide: Slide) -> str:
    # has_notes_slide first: reading slide.notes_slide would create an empty one
    if not slide.has_notes_slide:
        return ""
    frame = slide.notes_slide.notes_text_frame
    return "\n".join(_clean_lines(frame.text)) if frame is not None else ""


def _slide_title(slide: Slide) -> str:
    title = slide.shapes.title
    if title is None or not title.has_text_frame:
        return ""
    return " ".join(_clean_lines(title.text_frame.text))
