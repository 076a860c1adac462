"""documents.max_image_pixels: images too large to decode fail or are skipped, never decoded."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb_server.documents.base import LoaderContext, OcrReader
from kb_server.documents.image import ImageLoader
from kb_server.documents.ocr import ImageTooLargeError, UnreadableImageError, check_image_pixels
from kb_server.documents.pdf import PdfLoader
from kb_server.errors import DocumentLoadError
from kb_server.settings import DocumentSettings
from tests.unit.documents.rendering import (
    ScanPage,
    png_declaring_size,
    render_text_image,
    write_pdf,
)


def test_image_within_the_limit_passes() -> None:
    check_image_pixels(png_declaring_size(100, 50), max_pixels=5000)


@pytest.mark.parametrize("as_path", [False, True])
def test_image_over_the_limit_is_refused_from_its_header(tmp_path: Path, as_path: bool) -> None:
    data = png_declaring_size(10_000, 6_000)  # 60 million pixels in a file of a few bytes
    assert len(data) < 100
    image: bytes | Path = data
    if as_path:
        image = tmp_path / "huge.png"
        image.write_bytes(data)
    with pytest.raises(ImageTooLargeError, match="10000x6000") as caught:
        check_image_pixels(image, max_pixels=50_000_000)
    assert (caught.value.pixels, caught.value.max_pixels) == (60_000_000, 50_000_000)


def test_pillow_decompression_bomb_error_is_an_unreadable_image() -> None:
    # Past twice Pillow's own limit, Image.open itself refuses before our check can run.
    with pytest.raises(UnreadableImageError, match="max_image_pixels"):
        check_image_pixels(png_declaring_size(20_000, 20_000), max_pixels=10**12)


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_pillow_decompression_bomb_warning_as_error_is_an_unreadable_image() -> None:
    with pytest.raises(UnreadableImageError, match="too large to decode"):
        check_image_pixels(png_declaring_size(10_000, 10_000), max_pixels=10**12)


def test_not_an_image_is_unreadable_without_naming_the_server_path(tmp_path: Path) -> None:
    path = tmp_path / "text.png"
    path.write_bytes(b"plain text, renamed")
    with pytest.raises(UnreadableImageError) as caught:
        check_image_pixels(path, max_pixels=1000)
    assert str(tmp_path) not in str(caught.value)


@pytest.mark.parametrize("ocr_enabled", [True, False])
def test_image_loader_fails_a_huge_image_with_the_setting(
    tmp_path: Path, ocr_reader: OcrReader, ocr_enabled: bool
) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(png_declaring_size(2_000, 1_000))
    context = LoaderContext(
        DocumentSettings(max_image_pixels=1_000_000), ocr_reader if ocr_enabled else None
    )
    with pytest.raises(DocumentLoadError, match=r"2,000,000 pixels.*max_image_pixels") as caught:
        ImageLoader(context).load(path)
    assert caught.value.file_name == "huge.png"


def test_pdf_scan_over_the_limit_is_skipped_and_the_rest_is_read(
    tmp_path: Path, ocr_reader: OcrReader, cjk_font_path: Path
) -> None:
    scan = render_text_image(["扫描页的文字"], cjk_font_path)
    path = write_pdf(
        tmp_path / "mixed.pdf",
        [["A text page that needs no OCR at all."], ScanPage(scan)],
        cjk_font_path,
    )
    pixels = scan.width * scan.height

    small = LoaderContext(DocumentSettings(max_image_pixels=pixels - 1), ocr_reader)
    documents = PdfLoader(small).load(path)
    assert [document.metadata["page"] for document in documents] == [1]

    enough = LoaderContext(DocumentSettings(max_image_pixels=pixels), ocr_reader)
    scanned = PdfLoader(enough).load(path)
    assert scanned[-1].metadata == {"page": 2, "ocr": True}
    assert "扫描页的文字" in scanned[-1].page_content
