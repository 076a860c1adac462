from __future__ import annotations

from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from kb_server.documents.base import LoaderContext
from kb_server.documents.pdf import PdfLoader, normalize_text
from kb_server.errors import DocumentLoadError
from kb_server.settings import Settings
from tests.unit.documents.rendering import ScanPage, render_text_image, write_pdf

PAGE_ONE = [
    "第一章 知识库问答系统",
    "系统支持离线检索与生成。",
    "Offline retrieval augmented generation.",
]
PAGE_TWO = ["第二章 向量数据库", "关键词检索与向量检索可以结合使用。"]
SCAN_LINES = ["扫描页面的文字", "Scanned page 7"]


@pytest.fixture
def text_pdf(tmp_path: Path, cjk_font_path: Path) -> Path:
    return write_pdf(tmp_path / "manual.pdf", [PAGE_ONE, PAGE_TWO], cjk_font_path)


def _encrypted_copy(source: Path, target: Path, user_password: str) -> Path:
    writer = PdfWriter(clone_from=PdfReader(source))
    writer.encrypt(user_password, owner_password="owner-secret")
    with target.open("wb") as stream:
        writer.write(stream)
    return target


def test_text_pdf_gives_one_document_per_page(
    loader_context: LoaderContext, text_pdf: Path
) -> None:
    documents = PdfLoader(loader_context).load(text_pdf)

    assert [document.metadata for document in documents] == [{"page": 1}, {"page": 2}]
    # pypdf keeps reportlab's Chinese runs intact (no spaces between glyphs) and one line per
    # drawn line, so whole lines can be compared.
    assert documents[0].page_content.splitlines() == PAGE_ONE
    assert documents[1].page_content.splitlines() == PAGE_TWO


def test_image_only_pdf_is_read_by_ocr(
    loader_context: LoaderContext, cjk_font_path: Path, tmp_path: Path
) -> None:
    path = tmp_path / "scan.pdf"
    # Pillow writes each image as a JPEG (DCTDecode) page with no text layer.
    render_text_image(SCAN_LINES, cjk_font_path).save(path, resolution=100)

    documents = PdfLoader(loader_context).load(path)

    assert len(documents) == 1
    assert documents[0].page_content.splitlines() == SCAN_LINES
    assert documents[0].metadata == {"page": 1, "ocr": True}


def test_mixed_pdf_keeps_page_numbers_and_skips_empty_pages(
    loader_context: LoaderContext, cjk_font_path: Path, tmp_path: Path
) -> None:
    scan = ScanPage(render_text_image(SCAN_LINES, cjk_font_path), caption="图1")
    path = write_pdf(tmp_path / "mixed.pdf", [PAGE_ONE, [], scan], cjk_font_path)

    documents = PdfLoader(loader_context).load(path)

    assert [document.metadata for document in documents] == [
        {"page": 1},
        {"page": 3, "ocr": True},
    ]
    assert documents[0].page_content.splitlines() == PAGE_ONE
    # The caption from the text layer is kept ahead of the text read from the image.
    assert documents[1].page_content.splitlines() == ["图1", *SCAN_LINES]


def test_scanned_pages_without_ocr_give_no_documents(
    settings: Settings, cjk_font_path: Path, tmp_path: Path
) -> None:
    path = write_pdf(
        tmp_path / "mixed.pdf",
        [PAGE_ONE, ScanPage(render_text_image(SCAN_LINES, cjk_font_path))],
        cjk_font_path,
    )
    context = LoaderContext(documents=settings.documents, ocr=None)

    documents = PdfLoader(context).load(path)

    assert [document.metadata for document in documents] == [{"page": 1}]


def test_pdf_with_user_password_is_rejected(
    loader_context: LoaderContext, text_pdf: Path, tmp_path: Path
) -> None:
    locked = _encrypted_copy(text_pdf, tmp_path / "locked.pdf", user_password="secret")

    with pytest.raises(DocumentLoadError) as raised:
        PdfLoader(loader_context).load(locked)

    assert raised.value.code == "document_unreadable"
    assert raised.value.file_name == "locked.pdf"


def test_pdf_encrypted_with_empty_user_password_loads(
    loader_context: LoaderContext, text_pdf: Path, tmp_path: Path
) -> None:
    restricted = _encrypted_copy(text_pdf, tmp_path / "restricted.pdf", user_password="")

    documents = PdfLoader(loader_context).load(restricted)

    assert [document.metadata["page"] for document in documents] == [1, 2]
    assert "知识库问答系统" in documents[0].page_content


@pytest.mark.parametrize(
    "content",
    [b"", b"this is a text file renamed to pdf", b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog"],
)
def test_corrupt_pdf_raises_document_load_error(
    loader_context: LoaderContext, tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(content)

    with pytest.raises(DocumentLoadError) as raised:
        PdfLoader(loader_context).load(path)

    assert raised.value.file_name == "broken.pdf"


def test_truncated_pdf_raises_document_load_error(
    loader_context: LoaderContext, text_pdf: Path, tmp_path: Path
) -> None:
    path = tmp_path / "truncated.pdf"
    path.write_bytes(text_pdf.read_bytes()[:400])

    with pytest.raises(DocumentLoadError):
        PdfLoader(loader_context).load(path)


def test_normalize_text_trims_line_ends_and_blank_runs() -> None:
    raw = "标题  \n\n\n\n正文 第一行 \r\n第二行\t\n\n"

    assert normalize_text(raw) == "标题\n\n正文 第一行\n第二行"
