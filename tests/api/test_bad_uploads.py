"""Bad uploads through the real API: each gets its 413 or a per-file failure with the reason,
the rest of its batch is indexed, earlier files stay searchable and nothing outside the KB
root is touched. The app runs with small limits so that the inputs stay a few KB on disk."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docx
import openpyxl
import pptx
import pytest
from fastapi.testclient import TestClient
from pypdf import PdfWriter

from kb_server.settings import Settings
from tests.fs_snapshot import tree_snapshot
from tests.unit.documents.rendering import png_declaring_size, zeros_mb, zip_bytes

KB = "docs"
UPLOAD = "/knowledge_base/upload_docs"
UPLOAD_TEMP = "/knowledge_base/upload_temp_docs"
EARLIER = ("earlier.txt", b"Cats are small pets. A cat purrs, sleeps all day and hunts mice.")
IN_BATCH = ("batch.md", b"# Rockets\n\nA rocket engine burns propellant to launch spacecraft.")
LIMITS = {
    "max_file_mb": 0.1,
    "max_request_mb": 0.3,
    "max_unpacked_mb": 5,
    "max_image_pixels": 1_000_000,
}
OLE_HEADER = bytes.fromhex("d0cf11e0a1b11ae1") + bytes(504)
FileSpec = tuple[str, bytes]


@pytest.fixture
def api_settings(api_settings: Settings) -> Settings:
    documents = api_settings.documents.model_copy(update=LIMITS)
    return api_settings.model_copy(update={"documents": documents})


def _saved(save: Callable[[io.BytesIO], object]) -> bytes:
    buffer = io.BytesIO()
    save(buffer)
    return buffer.getvalue()


def _docx() -> bytes:
    word = docx.Document()
    word.add_paragraph("A real document.")
    return _saved(word.save)


def _xlsx() -> bytes:
    workbook = openpyxl.Workbook()
    workbook.worksheets[0].append(["name", "value"])
    return _saved(workbook.save)


def _pptx() -> bytes:
    return _saved(pptx.Presentation().save)


def _encrypted_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    writer.encrypt("secret")
    return _saved(writer.write)


def _bomb(base: bytes) -> bytes:
    """A real file of its format plus a member of 8 MB of zeros (about 8 KB compressed)."""
    return zip_bytes({"media/padding.bin": zeros_mb(8)}, base)


def _epub_bomb() -> bytes:
    return zip_bytes({"mimetype": b"application/epub+zip", "OEBPS/ch1.xhtml": zeros_mb(8)})


@dataclass(frozen=True)
class Case:
    """One bad request. ``status`` 413: refused whole. Otherwise ``failed`` maps each bad file
    to a substring of its reason, and ``IN_BATCH`` (sent along) must be indexed."""

    files: list[FileSpec]
    status: int = 200
    reason: str = ""
    failed: dict[str, str] = field(default_factory=dict)
    route: str = UPLOAD
    chunked: bool = False


def _failing(name: str, data: bytes, reason: str, route: str = UPLOAD) -> Case:
    return Case([(name, data), IN_BATCH], failed={name: reason}, route=route)


def _refused(files: list[FileSpec], reason: str, **extra: Any) -> Case:
    return Case([*files, IN_BATCH], status=413, reason=reason, **extra)


BIG_FILE = ("big.txt", b"x" * 150_000)
MANY_FILES = [(f"part{index}.txt", b"y" * 90_000) for index in range(4)]
CASES = {
    "oversize-file": _refused([BIG_FILE], "documents.max_file_mb"),
    "oversize-request": _refused(MANY_FILES, "documents.max_request_mb"),
    "oversize-request-chunked": _refused(MANY_FILES, "request is larger", chunked=True),
    "temp-oversize-file": _refused([BIG_FILE], "documents.max_file_mb", route=UPLOAD_TEMP),
    "temp-oversize-request": _refused(MANY_FILES, "max_request_mb", route=UPLOAD_TEMP),
    "empty-txt": _failing("empty.txt", b"", "no text"),
    "blank-txt": _failing("blank.txt", b" \n\t \r\n", "no text"),
    "empty-pdf": _failing("empty.pdf", b"", "empty"),
    "empty-docx": _failing("empty.docx", b"", "empty"),
    "corrupt-pdf": _failing("corrupt.pdf", b"%PDF-1.7\n1 0 obj <<", "not a readable PDF"),
    "encrypted-pdf": _failing("secret.pdf", _encrypted_pdf(), "password-protected"),
    "corrupt-docx": _failing("corrupt.docx", b"PK\x03\x04 not really", "not a valid .docx"),
    "encrypted-docx": _failing("secret.docx", OLE_HEADER, "password-protected"),
    "encrypted-xlsx": _failing("secret.xlsx", OLE_HEADER, "password-protected"),
    "text-as-pdf": _failing("text.pdf", b"plain text, renamed", "not a PDF"),
    "text-as-png": _failing("text.png", b"plain text, renamed", "not an image"),
    "csv-as-xlsx": _failing("table.xlsx", b"name,value\ncat,3\n", "not an xlsx"),
    "text-as-epub": _failing("book.epub", b"plain text, renamed", "not a valid .epub"),
    "zip-bomb-docx": _failing("bomb.docx", _bomb(_docx()), "zip bomb"),
    "zip-bomb-xlsx": _failing("bomb.xlsx", _bomb(_xlsx()), "zip bomb"),
    "zip-bomb-pptx": _failing("bomb.pptx", _bomb(_pptx()), "zip bomb"),
    "zip-bomb-epub": _failing("bomb.epub", _epub_bomb(), "zip bomb"),
    "unpacked-over-limit": _failing(
        "many.docx",
        zip_bytes({f"word/p{index}.xml": zeros_mb(2) for index in range(3)}),
        "documents.max_unpacked_mb",
    ),
    "huge-image": _failing("huge.png", png_declaring_size(2_000, 1_000), "max_image_pixels"),
    "pillow-bomb-image": _failing(
        "bomb.png", png_declaring_size(20_000, 20_000), "max_image_pixels"
    ),
    "temp-zip-bomb": _failing("bomb.docx", _bomb(_docx()), "zip bomb", route=UPLOAD_TEMP),
}


def _post(client: TestClient, case: Case) -> tuple[int, dict[str, Any]]:
    form = {"knowledge_base_name": KB} if case.route == UPLOAD else {}
    parts = [("files", (name, data, "application/octet-stream")) for name, data in case.files]
    if not case.chunked:
        response = client.post(case.route, data=form, files=parts)
    else:
        # No Content-Length: the limit is enforced by counting the body as it arrives.
        request = client.build_request("POST", case.route, data=form, files=parts)
        body = request.read()
        response = client.post(
            case.route,
            content=iter([body[:1000], body[1000:]]),
            headers={"content-type": request.headers["content-type"]},
        )
    json: dict[str, Any] = response.json()
    return response.status_code, json


def _search(client: TestClient, query: str) -> list[str]:
    response = client.post(
        "/knowledge_base/search_docs", json={"knowledge_base_name": KB, "query": query}
    )
    assert response.status_code == 200, response.text
    return [hit["metadata"]["source"] for hit in response.json()]


def _listed(client: TestClient) -> list[str]:
    response = client.get("/knowledge_base/list_files", params={"knowledge_base_name": KB})
    names: list[str] = response.json()["data"]
    return names


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_upload_fails_alone_and_touches_nothing_else(
    client: TestClient, api_settings: Settings, tmp_path: Path, case: Case
) -> None:
    created = client.post("/knowledge_base/create_knowledge_base", json={"knowledge_base_name": KB})
    assert created.status_code == 200
    earlier = client.post(UPLOAD, data={"knowledge_base_name": KB}, files=[("files", EARLIER)])
    assert earlier.json()["data"]["files"][0]["status"] == "indexed"
    kb_root = api_settings.kb_root
    outside = tree_snapshot(tmp_path.parent, kb_root)
    stored = tree_snapshot(kb_root, kb_root / "no such folder")

    status, body = _post(client, case)

    assert status == case.status, body
    if case.status == 413:
        assert body["detail"]["code"] == "upload_too_large"
        assert case.reason in body["detail"]["message"]
        if case.route == UPLOAD:  # the Chatchat envelope, code equal to the status
            assert (body["code"], body["data"]) == (413, None)
        if "max_file_mb" in case.reason:
            assert "big.txt" in body["detail"]["message"]
        assert tree_snapshot(kb_root, kb_root / "no such folder") == stored
        assert _listed(client) == [EARLIER[0]]
    else:
        failed = body["data"]["failed_files"]
        assert failed.keys() == case.failed.keys()
        for name, reason in case.failed.items():
            assert reason in failed[name], failed[name]
        if case.route == UPLOAD:
            results = {item["file_name"]: item["status"] for item in body["data"]["files"]}
            assert results[IN_BATCH[0]] == "indexed"
            assert _search(client, "rocket propellant spacecraft launch")[0] == IN_BATCH[0]

    assert _search(client, "Which pet purrs and hunts mice?")[0] == EARLIER[0]
    assert tree_snapshot(tmp_path.parent, kb_root) == outside
