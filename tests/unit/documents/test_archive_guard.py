"""The zip-bomb guard alone and in the four loaders that read zip archives."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import docx
import pytest

from kb_server.documents.archives import check_archive
from kb_server.documents.base import Loader, LoaderContext
from kb_server.documents.epub import EpubLoader
from kb_server.documents.office import DocxLoader, PptxLoader
from kb_server.documents.tables import XlsxLoader
from kb_server.errors import DocumentLoadError
from kb_server.settings import DocumentSettings
from tests.unit.documents.rendering import zeros_mb, zip_bytes


def _docx_bytes(text: str) -> bytes:
    word = docx.Document()
    word.add_paragraph(text)
    buffer = io.BytesIO()
    word.save(buffer)
    return buffer.getvalue()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_real_docx_within_the_limit_passes(tmp_path: Path) -> None:
    path = _write(tmp_path / "fine.docx", _docx_bytes("正常的文档"))
    check_archive(path, max_unpacked_mb=1)
    documents = DocxLoader(LoaderContext(DocumentSettings(max_unpacked_mb=1))).load(path)
    assert [document.page_content for document in documents] == ["正常的文档"]


def test_members_over_the_unpacked_limit_fail(tmp_path: Path) -> None:
    # Each member is below the size the ratio check looks at; together they are too much.
    members = {f"word/part{index}.xml": zeros_mb(1.5) for index in range(3)}
    path = _write(tmp_path / "big.docx", zip_bytes(members))
    check_archive(path, max_unpacked_mb=5)
    with pytest.raises(DocumentLoadError, match=r"unpack to 4\.5 MB.*max_unpacked_mb \(4 MB\)"):
        check_archive(path, max_unpacked_mb=4)


def test_highly_compressed_large_member_fails_under_any_limit(tmp_path: Path) -> None:
    path = _write(tmp_path / "bomb.docx", zip_bytes({"word/media/pad.bin": zeros_mb(8)}))
    assert path.stat().st_size < 64 * 1024
    with pytest.raises(DocumentLoadError, match="zip bomb") as caught:
        check_archive(path, max_unpacked_mb=10_000)
    assert caught.value.file_name == "bomb.docx"
    assert "word/media/pad.bin" in caught.value.reason


def test_a_file_that_is_not_a_zip_is_left_to_its_loader(tmp_path: Path) -> None:
    check_archive(_write(tmp_path / "text.docx", b"plain text, renamed"), max_unpacked_mb=1)


def test_a_member_that_understates_its_size_cannot_unpack_more(tmp_path: Path) -> None:
    data = bytearray(zip_bytes({"word/document.xml": zeros_mb(8)}))
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, 22, 1000)  # uncompressed size, local header
    struct.pack_into("<I", data, central + 24, 1000)  # and central directory
    path = _write(tmp_path / "liar.docx", bytes(data))

    check_archive(path, max_unpacked_mb=1)  # the declared 1000 bytes pass
    with zipfile.ZipFile(path) as archive, pytest.raises(zipfile.BadZipFile):
        archive.read("word/document.xml")  # reading stops at 1000 bytes, and the CRC fails
    with pytest.raises(DocumentLoadError):
        DocxLoader(LoaderContext(DocumentSettings(max_unpacked_mb=1))).load(path)


@pytest.mark.parametrize(
    ("loader_class", "suffix"),
    [(DocxLoader, ".docx"), (XlsxLoader, ".xlsx"), (PptxLoader, ".pptx"), (EpubLoader, ".epub")],
)
def test_zip_loaders_refuse_a_bomb(tmp_path: Path, loader_class: type[Loader], suffix: str) -> None:
    members = {"mimetype": b"application/epub+zip", "payload.xml": zeros_mb(6)}
    path = _write(tmp_path / f"bomb{suffix}", zip_bytes(members))
    loader = loader_class(LoaderContext(DocumentSettings(max_unpacked_mb=1000)))
    with pytest.raises(DocumentLoadError, match="zip bomb"):
        loader.load(path)
