from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import docx
import pptx
import pytest
from docx.shared import Cm
from docx.table import Table as WordTable
from pptx.table import Table as SlideTable
from pptx.util import Cm as SlideCm

from kb_server.documents.base import LoaderContext
from kb_server.documents.office import DocxLoader, PptxLoader
from kb_server.errors import DocumentLoadError
from kb_server.settings import Settings
from tests.unit.documents.rendering import image_bytes, render_text_image

OCR_PHRASE = "图片里的文字"
BLANK_LAYOUT = 6


@pytest.fixture
def plain_context(settings: Settings) -> LoaderContext:
    return LoaderContext(documents=settings.documents)


@pytest.fixture
def phrase_png(cjk_font_path: Path) -> bytes:
    return image_bytes(render_text_image([OCR_PHRASE], cjk_font_path, font_size=40), "PNG")


def fill(table: WordTable | SlideTable, rows: list[tuple[str, ...]]) -> None:
    for row_index, values in enumerate(rows):
        for column_index, value in enumerate(values):
            table.cell(row_index, column_index).text = value


def write_docx(path: Path) -> Path:
    word = docx.Document()
    word.add_heading("产品手册", level=1)
    word.add_paragraph("表格之前的说明。")
    table = word.add_table(rows=3, cols=2)
    fill(table, [("产品", "价格"), ("苹果", "3元"), ("香蕉", "5元")])
    word.add_paragraph("表格之后的说明。")
    word.save(str(path))
    return path


def write_pptx(path: Path) -> Path:
    presentation = pptx.Presentation()
    first = presentation.slides.add_slide(presentation.slide_layouts[BLANK_LAYOUT])
    # added bottom first: reading order must come from position, not insertion order
    first.shapes.add_textbox(SlideCm(2), SlideCm(10), SlideCm(10), SlideCm(2)).text = "下方文字"
    first.shapes.add_textbox(SlideCm(2), SlideCm(2), SlideCm(10), SlideCm(2)).text = "上方文字"
    group = first.shapes.add_group_shape()
    group.shapes.add_textbox(SlideCm(2), SlideCm(14), SlideCm(10), SlideCm(2)).text = "组内文字"
    presentation.slides.add_slide(presentation.slide_layouts[BLANK_LAYOUT])  # stays empty
    third = presentation.slides.add_slide(presentation.slide_layouts[BLANK_LAYOUT])
    frame = third.shapes.add_table(3, 2, SlideCm(2), SlideCm(2), SlideCm(12), SlideCm(4))
    fill(frame.table, [("城市", "人口"), ("北京", "2100万"), ("上海", "2400万")])
    notes_frame = third.notes_slide.notes_text_frame
    assert notes_frame is not None
    notes_frame.text = "讲者提示"
    presentation.save(str(path))
    return path


def lines_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


def test_docx_keeps_paragraphs_and_table_rows_in_document_order(
    tmp_path: Path, plain_context: LoaderContext
) -> None:
    documents = DocxLoader(plain_context).load(write_docx(tmp_path / "手册.docx"))

    assert len(documents) == 1
    assert lines_of(documents[0].page_content) == [
        "产品手册",
        "表格之前的说明。",
        "产品: 苹果; 价格: 3元",
        "产品: 香蕉; 价格: 5元",
        "表格之后的说明。",
    ]
    assert "page" not in documents[0].metadata
    assert "ocr" not in documents[0].metadata


def test_docx_merged_cell_is_read_once_per_row(
    tmp_path: Path, plain_context: LoaderContext
) -> None:
    word = docx.Document()
    table = word.add_table(rows=2, cols=3)
    fill(table, [("产品", "规格", "备注")])
    merged = table.cell(1, 0).merge(table.cell(1, 1))
    merged.text = "整箱"
    table.cell(1, 2).text = "无"
    word.save(str(tmp_path / "merged.docx"))

    documents = DocxLoader(plain_context).load(tmp_path / "merged.docx")

    assert lines_of(documents[0].page_content) == ["产品: 整箱; 备注: 无"]


def test_pptx_gives_one_document_per_non_empty_slide_with_its_number(
    tmp_path: Path, plain_context: LoaderContext
) -> None:
    documents = PptxLoader(plain_context).load(write_pptx(tmp_path / "slides.pptx"))

    assert [document.metadata["page"] for document in documents] == [1, 3]
    assert lines_of(documents[0].page_content) == ["上方文字", "下方文字", "组内文字"]
    assert lines_of(documents[1].page_content) == [
        "城市: 北京; 人口: 2100万",
        "城市: 上海; 人口: 2400万",
        "备注: 讲者提示",
    ]


def test_pptx_slide_title_becomes_metadata(tmp_path: Path, plain_context: LoaderContext) -> None:
    presentation = pptx.Presentation()
    slide = presentation.slides.add_slide(presentation.slide_layouts[1])  # title and content
    assert slide.shapes.title is not None
    slide.shapes.title.text = "季度总结"
    presentation.save(str(tmp_path / "titled.pptx"))

    documents = PptxLoader(plain_context).load(tmp_path / "titled.pptx")

    assert documents[0].metadata["title"] == "季度总结"


def zip_without_main_part(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not an office document")
    return path


def ole_container(path: Path) -> Path:
    # the signature that password-protected Office files (and legacy .doc/.ppt) start with
    path.write_bytes(bytes.fromhex("d0cf11e0a1b11ae1") + b"\0" * 504)
    return path


def plain_text(path: Path) -> Path:
    path.write_text("这不是一个 Office 文件", encoding="utf-8")
    return path


@pytest.mark.parametrize("make_file", [plain_text, ole_container, zip_without_main_part])
@pytest.mark.parametrize("loader_class", [DocxLoader, PptxLoader])
def test_unreadable_office_file_raises_document_load_error(
    tmp_path: Path,
    plain_context: LoaderContext,
    make_file: Callable[[Path], Path],
    loader_class: type[DocxLoader] | type[PptxLoader],
) -> None:
    path = make_file(tmp_path / f"broken{next(iter(loader_class.suffixes))}")

    with pytest.raises(DocumentLoadError) as raised:
        loader_class(plain_context).load(path)

    assert raised.value.file_name == path.name


def test_pptx_renamed_to_docx_raises_document_load_error(
    tmp_path: Path, plain_context: LoaderContext
) -> None:
    renamed = tmp_path / "slides.docx"
    renamed.write_bytes(write_pptx(tmp_path / "slides.pptx").read_bytes())

    with pytest.raises(DocumentLoadError):
        DocxLoader(plain_context).load(renamed)


def test_docx_picture_text_is_read_with_ocr(
    tmp_path: Path, loader_context: LoaderContext, phrase_png: bytes
) -> None:
    word = docx.Document()
    word.add_paragraph("图片之前")
    word.add_picture(io.BytesIO(phrase_png), width=Cm(8))
    word.add_paragraph("图片之后")
    word.save(str(tmp_path / "picture.docx"))

    documents = DocxLoader(loader_context).load(tmp_path / "picture.docx")

    assert lines_of(documents[0].page_content) == ["图片之前", OCR_PHRASE, "图片之后"]
    assert documents[0].metadata["ocr"] is True


def test_pptx_picture_text_is_read_with_ocr(
    tmp_path: Path, loader_context: LoaderContext, phrase_png: bytes
) -> None:
    presentation = pptx.Presentation()
    slide = presentation.slides.add_slide(presentation.slide_layouts[BLANK_LAYOUT])
    slide.shapes.add_textbox(SlideCm(2), SlideCm(1), SlideCm(10), SlideCm(2)).text = "说明"
    slide.shapes.add_picture(io.BytesIO(phrase_png), SlideCm(2), SlideCm(5), width=SlideCm(10))
    presentation.save(str(tmp_path / "picture.pptx"))

    documents = PptxLoader(loader_context).load(tmp_path / "picture.pptx")

    assert lines_of(documents[0].page_content) == ["说明", OCR_PHRASE]
    assert documents[0].metadata["ocr"] is True
