"""Small inputs for loader tests: text rendered into images and PDFs with a real CJK font."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas

PDF_FONT_NAME = "TestCJK"


@dataclass(frozen=True)
class ScanPage:
    """A PDF page that is an image, optionally with a short caption in the text layer."""

    image: Image.Image
    caption: str = ""


# A page is either lines of text for the text layer, or a scanned image.
PdfPage = Sequence[str] | ScanPage


def render_text_image(
    lines: Sequence[str],
    font_path: Path,
    *,
    font_size: int = 40,
    margin: int = 30,
    background: tuple[int, ...] = (255, 255, 255),
    mode: str = "RGB",
) -> Image.Image:
    """Black text lines on a plain background, sized to fit with a margin."""
    font = ImageFont.truetype(str(font_path), font_size)
    line_height = int(font_size * 1.5)
    width = max(int(font.getlength(line)) for line in lines) + 2 * margin
    height = line_height * len(lines) + 2 * margin
    image = Image.new(mode, (width, height), background)
    draw = ImageDraw.Draw(image)
    for index, line in enumerate(lines):
        draw.text((margin, margin + index * line_height), line, font=font, fill="black")
    return image


def image_bytes(image: Image.Image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def write_pdf(path: Path, pages: Sequence[PdfPage], font_path: Path) -> Path:
    """A PDF through reportlab: text pages get a real text layer, image pages only pixels."""
    pdfmetrics.registerFont(TTFont(PDF_FONT_NAME, str(font_path), subfontIndex=0))
    pdf = canvas.Canvas(str(path), pagesize=A4)
    top = A4[1] - 72
    for page in pages:
        pdf.setFont(PDF_FONT_NAME, 14)
        if isinstance(page, ScanPage):
            # The image keeps its pixels; only its size on the page shrinks to fit.
            scale = min(1.0, (A4[0] - 144) / page.image.width)
            width, height = page.image.width * scale, page.image.height * scale
            pdf.drawImage(ImageReader(page.image), 72, top - height, width, height)
            if page.caption:
                pdf.drawString(72, top - height - 24, page.caption)
        else:
            for index, line in enumerate(page):
                pdf.drawString(72, top - 24 * index, line)
        pdf.showPage()
    pdf.save()
    return path


def png_declaring_size(width: int, height: int) -> bytes:
    """A tiny 1-bit PNG whose header declares ``width`` x ``height``: cheap to store, and
    anything that decodes it would allocate the whole canvas."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )


def zip_bytes(members: Mapping[str, bytes], base: bytes = b"") -> bytes:
    """A deflated zip of ``members``, added to the members of the zip ``base`` if given."""
    buffer = io.BytesIO(base)
    with zipfile.ZipFile(buffer, "a" if base else "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def zeros_mb(size_mb: float) -> bytes:
    """Zeros that deflate about 1000:1: a zip bomb's payload, a few KB once compressed."""
    return bytes(int(size_mb * 1024 * 1024))
