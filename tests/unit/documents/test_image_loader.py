from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from kb_server.documents.base import LoaderContext
from kb_server.documents.image import ImageLoader
from kb_server.errors import DocumentLoadError, OcrUnavailableError
from kb_server.settings import Settings
from tests.unit.documents.rendering import render_text_image

LINES = ["图片中的文字", "Image loader 42"]


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp"])
def test_image_text_becomes_one_ocr_document(
    loader_context: LoaderContext, cjk_font_path: Path, tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"scan{suffix}"
    render_text_image(LINES, cjk_font_path).save(path)

    documents = ImageLoader(loader_context).load(path)

    assert len(documents) == 1
    assert documents[0].page_content.splitlines() == LINES
    assert documents[0].metadata == {"ocr": True}


def test_palette_image_with_transparency_is_read(
    loader_context: LoaderContext, cjk_font_path: Path, tmp_path: Path
) -> None:
    path = tmp_path / "logo.png"
    rgba = render_text_image(["调色板"], cjk_font_path, mode="RGBA", background=(0, 0, 0, 0))
    rgba.convert("P").save(path, transparency=0)

    documents = ImageLoader(loader_context).load(path)

    assert [document.page_content for document in documents] == ["调色板"]


def test_image_without_text_gives_no_documents(
    loader_context: LoaderContext, tmp_path: Path
) -> None:
    path = tmp_path / "blank.png"
    Image.new("RGB", (300, 200), "white").save(path)

    assert ImageLoader(loader_context).load(path) == []


def test_corrupt_image_raises_document_load_error(
    loader_context: LoaderContext, tmp_path: Path
) -> None:
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")

    with pytest.raises(DocumentLoadError) as raised:
        ImageLoader(loader_context).load(path)

    assert raised.value.code == "document_unreadable"
    assert raised.value.file_name == "broken.jpg"


def test_image_with_ocr_disabled_raises_ocr_unavailable(
    settings: Settings, cjk_font_path: Path, tmp_path: Path
) -> None:
    path = tmp_path / "scan.png"
    render_text_image(LINES, cjk_font_path).save(path)
    context = LoaderContext(documents=settings.documents, ocr=None)

    with pytest.raises(OcrUnavailableError) as raised:
        ImageLoader(context).load(path)

    assert raised.value.code == "ocr_unavailable"
