"""JSON and JSON Lines: records rendered as ``key: value`` lines, one document per record.

Nested objects are flattened to dotted paths (``address.city: 北京``). A list of scalars is
joined on one line (``tags: a, b``); a list holding objects or lists gives one path per item,
0-based as in JSONPath (``items[0].name: ...``). Nulls and empty strings are left out, as
empty spreadsheet cells are.

What counts as a record:
- JSON whose top level is a list: each item (``row`` = 1-based index);
- JSON whose top level is an object with a single key holding a list of objects, the common
  ``{"data": [...]}`` wrapper: each object in that list (``row`` = 1-based index);
- any other JSON: the whole value, one document without ``row``;
- JSON Lines: each non-empty line (``row`` = 1-based line number).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import ClassVar

from langchain_core.documents import Document

from kb_server.documents.base import LoaderContext, OcrUse
from kb_server.documents.encoding import decode_text
from kb_server.errors import DocumentLoadError


class JsonLoader:
    name: ClassVar[str] = "json"
    suffixes: ClassVar[frozenset[str]] = frozenset({".json"})
    ocr_use: ClassVar[OcrUse] = "none"

    def __init__(self, context: LoaderContext) -> None:
        self.context = context

    def load(self, path: Path) -> list[Document]:
        text = decode_text(path.read_bytes(), path.name)
        if not text.strip():
            return []
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise DocumentLoadError(
                path.name, f"invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"
            ) from error
        records = _records(value)
        if records is None:
            return _documents([(None, value)])
        return _documents(enumerate(records, start=1))


class JsonlLoader:
    name: ClassVar[str] = "jsonl"
    suffixes: ClassVar[frozenset[str]] = frozenset({".jsonl"})
    ocr_use: ClassVar[OcrUse] = "none"

    def __init__(self, context: LoaderContext) -> None:
        self.context = context

    def load(self, path: Path) -> list[Document]:
        text = decode_text(path.read_bytes(), path.name)
        records: list[tuple[int | None, object]] = []
        for line_number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                records.append((line_number, json.loads(line)))
            except json.JSONDecodeError as error:
                raise DocumentLoadError(
                    path.name,
                    f"invalid JSON on line {line_number} column {error.colno}: {error.msg}",
                ) from error
        return _documents(records)


def _records(value: object) -> list[object] | None:
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (inner,) = value.values()
        if isinstance(inner, list) and inner and all(isinstance(item, dict) for item in inner):
            return inner
    return None


def _documents(records: Iterable[tuple[int | None, object]]) -> list[Document]:
    documents: list[Document] = []
    for row, record in records:
        text = "\n".join(_lines(record, ""))
        if not text:
            continue
        metadata: dict[str, object] = {} if row is None else {"row": row}
        documents.append(Document(page_content=text, metadata=metadata))
    return documents


def _lines(value: object, path: str) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _lines(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        if all(not isinstance(item, dict | list) for item in value):
            joined = ", ".join(text for text in map(_scalar_text, value) if text)
            if joined:
                yield f"{path}: {joined}" if path else joined
        else:
            for index, item in enumerate(value):
                yield from _lines(item, f"{path}[{index}]")
    else:
        text = _scalar_text(value)
        if text:
            yield f"{path}: {text}" if path else text


def _scalar_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    # true/false/numbers as JSON writes them; ensure_ascii off keeps any text readable
    return json.dumps(value, ensure_ascii=False)
