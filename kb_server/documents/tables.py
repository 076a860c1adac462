"""CSV and XLSX: one document per data row, each readable on its own as ``列名: 值; ...``.

The header is the first non-empty row. ``row`` is the 1-based row number a spreadsheet shows
(the header of a table starting at the top is row 1), so a cited row can be found in the file;
fully empty rows are skipped but still counted.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import openpyxl
from langchain_core.documents import Document
from openpyxl.utils.exceptions import InvalidFileException

from kb_server.documents.archives import check_archive
from kb_server.documents.base import LoaderContext, OcrUse, reject_empty, render_row
from kb_server.documents.encoding import decode_text
from kb_server.errors import DocumentLoadError

# Every OLE2 compound file starts with this: legacy .xls, and Office's encrypted container,
# which is what a password-protected .xlsx really is.
_OLE_SIGNATURE = bytes.fromhex("d0cf11e0a1b11ae1")
# What openpyxl raises, at open or while streaming rows, for a damaged or foreign file: bad or
# truncated zip, missing parts (KeyError, OSError), broken XML (SyntaxError), bad values.
_CORRUPT_WORKBOOK_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    KeyError,
    OSError,
    ValueError,
    SyntaxError,
    InvalidFileException,
)
_CSV_DELIMITERS = ",\t;"
_SNIFF_SAMPLE_CHARS = 64 * 1024


class CsvLoader:
    """Comma-, tab- or semicolon-separated text in any encoding ``decode_text`` detects."""

    name: ClassVar[str] = "csv"
    suffixes: ClassVar[frozenset[str]] = frozenset({".csv"})
    ocr_use: ClassVar[OcrUse] = "none"

    def __init__(self, context: LoaderContext) -> None:
        self.context = context

    def load(self, path: Path) -> list[Document]:
        text = decode_text(path.read_bytes(), path.name)
        reader = csv.reader(io.StringIO(text, newline=""), _sniff_dialect(text))
        try:
            return _rows_to_documents(reader, {})
        except csv.Error as error:
            raise DocumentLoadError(
                path.name, f"malformed CSV at line {reader.line_num}: {error}"
            ) from error


class XlsxLoader:
    """Every worksheet of an Excel workbook; formulas give the values Excel last saved."""

    name: ClassVar[str] = "xlsx"
    suffixes: ClassVar[frozenset[str]] = frozenset({".xlsx"})
    ocr_use: ClassVar[OcrUse] = "none"

    def __init__(self, context: LoaderContext) -> None:
        self.context = context

    def load(self, path: Path) -> list[Document]:
        reject_empty(path)
        with path.open("rb") as handle:
            if handle.read(len(_OLE_SIGNATURE)) == _OLE_SIGNATURE:
                raise DocumentLoadError(
                    path.name, "encrypted (password-protected) workbook or legacy .xls, not an xlsx"
                )
        if not zipfile.is_zipfile(path):
            raise DocumentLoadError(
                path.name, "not an xlsx workbook (not a zip archive: another format renamed?)"
            )
        check_archive(path, self.context.documents.max_unpacked_mb)
        try:
            workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except _CORRUPT_WORKBOOK_ERRORS as error:
            raise DocumentLoadError(path.name, f"not a valid xlsx workbook ({error})") from error
        documents: list[Document] = []
        try:
            for sheet in workbook.worksheets:
                # Read-only mode trusts the size the writer recorded, which some tools get
                # wrong; without it openpyxl reads every row that is actually there.
                sheet.reset_dimensions()
                rows = sheet.iter_rows(values_only=True)
                documents.extend(_rows_to_documents(rows, {"sheet": sheet.title}))
        except _CORRUPT_WORKBOOK_ERRORS as error:
            raise DocumentLoadError(path.name, f"damaged worksheet data ({error})") from error
        finally:
            workbook.close()
        return documents


def _sniff_dialect(text: str) -> type[csv.Dialect]:
    sample = text[:_SNIFF_SAMPLE_CHARS]
    if len(text) > len(sample) and "\n" in sample:
        # a line cut in half would skew the sniffer's per-line delimiter counts
        sample = sample[: sample.rindex("\n")]
    try:
        return csv.Sniffer().sniff(sample, delimiters=_CSV_DELIMITERS)
    except csv.Error:
        return csv.excel


def _rows_to_documents(
    rows: Iterable[Sequence[object]], metadata: Mapping[str, object]
) -> list[Document]:
    headers: list[str] | None = None
    documents: list[Document] = []
    for row_number, row in enumerate(rows, start=1):
        cells = [_cell_text(value) for value in row]
        if not any(cell.strip() for cell in cells):
            continue
        if headers is None:
            headers = cells
            continue
        documents.append(
            Document(
                page_content=render_row(headers, cells),
                metadata={**metadata, "row": row_number},
            )
        )
    return documents


def _cell_text(value: object) -> str:
    """A cell value as a spreadsheet would show it, without the display format."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="seconds" if not value.microsecond else "auto")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, float):
        # Excel keeps 15 significant digits: 3.0 -> "3", 0.1 + 0.2 -> "0.3"
        return f"{value:.15g}"
    return str(value)
