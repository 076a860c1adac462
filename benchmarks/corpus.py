"""A deterministic corpus shaped like Langchain-Chatchat's samples KB, for ingest benchmarks.

47 files and about 1,900 chunks at chunk_size 250 / overlap 50: Markdown guides, UI
screenshots with Chinese text (OCR), a few tiny icons (which OCR skips), an 8-page PDF with a
text layer and one scanned page, CSV / XLSX / JSON Lines tables and a plain text file. The
same seed gives the same files, byte for byte. ``CorpusSummary.rendered_text`` keeps the text
drawn into each image, to check what OCR reads.

    .venv/bin/python benchmarks/corpus.py DIR    # write it into DIR, print counts

benchmarks/ocr_check.py times the project's OCR reader on its images and checks what it reads.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import functools
import io
import json
import random
import re
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl
from corpus_text import (
    BUTTONS,
    CITIES,
    CONTEXTS,
    INDUSTRIES,
    MENU,
    NUMERALS,
    PRICES,
    PROBLEMS,
    SUBJECTS,
    Prose,
    markdown_document,
    text_document,
)
from PIL import Image, ImageDraw, ImageFont
from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

# (path, face index of the Simplified Chinese face in the collection)
CJK_FONTS = (
    (Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"), 0),
    (Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"), 2),
)
# Sizes of the parts, tuned so the whole lands near 2,000 chunks at chunk_size 250.
MARKDOWN_FILES = 6
MARKDOWN_CHARS = 17_000
SCREENSHOTS = 33
ICON_SIDES = (16, 24, 24)  # below ocr.min_image_side_px (32): never sent to OCR
PDF_PAGES = 8
PDF_SCANNED_PAGE = 5  # 1-based; an image of text only, without a text layer
TEXT_FILE_CHARS = 70_000
CSV_ROWS = 160
XLSX_ROWS = {"客户": 120, "工单": 100}
JSONL_ROWS = 130
_FIXED_ZIP_TIME = (2024, 1, 1, 0, 0, 0)


@dataclass
class CorpusSummary:
    """What ``generate_corpus`` wrote: counts per kind, and the text drawn into images."""

    # files, markdown, screenshots, icons, pdf_pages, pdf_scanned_pages, <table>_rows, text, bytes
    counts: Counter[str] = field(default_factory=Counter)
    # image file name (or "<pdf>#page=N" for the scanned page) -> strings drawn into it
    rendered_text: dict[str, list[str]] = field(default_factory=dict)


def cjk_font() -> tuple[Path, int]:
    """The first CJK font installed: (path, face index); fails with what to install."""
    for path, index in CJK_FONTS:
        if path.is_file():
            return path, index
    tried = ", ".join(str(path) for path, _ in CJK_FONTS)
    raise FileNotFoundError(
        f"no CJK font found (tried {tried}); install one: apt-get install fonts-wqy-zenhei "
        "(or fonts-noto-cjk)"
    )


# -- Images -----------------------------------------------------------------------------------


class _Painter:
    """Draws text with one font file at any size, recording what it drew."""

    def __init__(self, image: Image.Image, font: tuple[Path, int]) -> None:
        self.draw = ImageDraw.Draw(image)
        self.font_path, self.font_index = font
        self.fonts: dict[int, ImageFont.FreeTypeFont] = {}
        self.drawn: list[str] = []

    def font(self, size: int) -> ImageFont.FreeTypeFont:
        if size not in self.fonts:
            self.fonts[size] = ImageFont.truetype(str(self.font_path), size, index=self.font_index)
        return self.fonts[size]

    def text(self, xy: tuple[float, float], text: str, size: int, fill: str = "#222") -> None:
        self.draw.text(xy, text, font=self.font(size), fill=fill)
        self.drawn.append(text)

    def wrap(self, text: str, size: int, width: float) -> list[str]:
        return wrap(text, width, self.font(size).getlength)


def wrap(text: str, width: float, measure: Callable[[str], float]) -> list[str]:
    """``text`` cut into lines no wider than ``width``, character by character (Chinese has
    no spaces to break at)."""
    lines, line = [], ""
    for char in text:
        if measure(line + char) > width:
            lines.append(line)
            line = ""
        line += char
    return [*lines, line] if line else lines


def screenshot(prose: Prose, font: tuple[Path, int]) -> tuple[Image.Image, list[str]]:
    """A UI-like screenshot: title bar, optional sidebar, text, maybe a grid and buttons."""
    rng = prose.rng
    width = rng.randrange(1000, 1601, 20)
    height = min(900, max(600, int(width * rng.uniform(0.55, 0.62))))
    image = Image.new("RGB", (width, height), "white")
    paint = _Painter(image, font)
    bar = rng.choice(["#1f6feb", "#2d333b", "#0e7c66", "#8250df"])
    paint.draw.rectangle((0, 0, width, 46), fill=bar)
    title = f"{rng.choice(MENU)} - Knowledge Base Server v{rng.randint(1, 3)}.{rng.randint(0, 9)}"
    paint.text((18, 11), title, 20, "white")
    left = 30
    if rng.random() < 0.5:
        paint.draw.rectangle((0, 46, 210, height), fill="#f0f2f5")
        for row, item in enumerate(rng.sample(MENU, rng.randint(4, 7))):
            paint.text((24, 80 + row * 48), item, 20, "#333")
        left = 240
    size = rng.choice([20, 22, 24])
    y = 70.0
    paint.text((left, y), prose.heading(), size + 8, "#111")
    y += size + 30
    for _ in range(rng.randint(2, 3)):
        for line in paint.wrap(prose.paragraph(1, 3), size, width - left - 40):
            if y > height * 0.55:
                break
            paint.text((left, y), line, size)
            y += size * 1.6
        y += size * 0.6
    if rng.random() < 0.6 and y < height - 220:
        columns, rows = rng.randint(3, 4), rng.randint(3, 4)
        cell_w, cell_h = min(220, (width - left - 60) // columns), 40
        header = ["名称", "状态", "文件数", "更新时间"][:columns]
        for r in range(rows + 1):
            for col in range(columns):
                x0, y0 = left + col * cell_w, y + r * cell_h
                paint.draw.rectangle((x0, y0, x0 + cell_w, y0 + cell_h), outline="#999")
                cell = header[col] if r == 0 else _cell(rng, col)
                paint.text((x0 + 10, y0 + 9), cell, 18, "#222")
        y += (rows + 1) * cell_h + 30
    if rng.random() < 0.7 and y < height - 90:
        x = float(left)
        for label in rng.sample(BUTTONS, rng.randint(2, 4)):
            button_w = paint.font(20).getlength(label) + 40
            paint.draw.rounded_rectangle((x, y, x + button_w, y + 44), 8, fill="#1f6feb")
            paint.text((x + 20, y + 10), label, 20, "white")
            x += button_w + 20
    status = f"共 {rng.randint(3, 9999)} 个文件 | 已连接 127.0.0.1:{rng.randint(7000, 9000)}"
    paint.text((left, height - 34), status, 16, "#555")
    return image, paint.drawn


def _cell(rng: random.Random, column: int) -> str:
    if column < 2:
        return rng.choice((SUBJECTS, ["已完成", "处理中", "失败", "排队中"])[column])
    if column == 2:
        return str(rng.randint(1, 5000))
    return f"{rng.randint(2023, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def icon(rng: random.Random, side: int) -> Image.Image:
    image = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    color = (rng.randrange(256), rng.randrange(256), rng.randrange(256), 255)
    draw.ellipse((2, 2, side - 3, side - 3), fill=color)
    return image


def scanned_page(prose: Prose, font: tuple[Path, int]) -> tuple[Image.Image, list[str]]:
    """A page of Chinese text as a 150 dpi A4 scan: grey paper, dark text."""
    image = Image.new("L", (1240, 1754), 246)
    paint = _Painter(image, font)
    paint.text((120, 120), f"附录 {prose.heading()}（扫描件）", 40, "#111")
    y = 220.0
    while y < 1560:
        for line in paint.wrap(prose.paragraph(2, 4), 30, 1000):
            if y >= 1560:
                break
            paint.text((120, y), line, 30, "#1a1a1a")
            y += 52
        y += 26
    return image, paint.drawn


# -- PDF --------------------------------------------------------------------------------------


def _pdf_font(font: tuple[Path, int]) -> str:
    path, index = font
    try:
        pdfmetrics.registerFont(TTFont("CorpusCJK", str(path), subfontIndex=index))
        return "CorpusCJK"
    except Exception:  # TTFont reads TrueType outlines only, not CFF ones (Noto CJK)
        pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
        return "STSong-Light"


def write_pdf(path: Path, prose: Prose, font: tuple[Path, int], summary: CorpusSummary) -> None:
    font_name = _pdf_font(font)
    page_w, page_h = A4
    canvas = Canvas(str(path), pagesize=A4, invariant=True)
    canvas.setTitle("产品白皮书")
    width_of = functools.partial(pdfmetrics.stringWidth, fontName=font_name, fontSize=11)
    for number in range(1, PDF_PAGES + 1):
        if number == PDF_SCANNED_PAGE:
            image, drawn = scanned_page(prose, font)
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=85)
            canvas.drawImage(ImageReader(io.BytesIO(buffer.getvalue())), 0, 0, page_w, page_h)
            summary.rendered_text[f"{path.name}#page={number}"] = drawn
            summary.counts["pdf_scanned_pages"] += 1
        else:
            canvas.setFont(font_name, 16)
            canvas.drawString(56, page_h - 70, f"第{NUMERALS[number - 1]}章 {prose.heading()}")
            canvas.setFont(font_name, 11)
            y = page_h - 105
            while y > 70:
                paragraph = prose.paragraph(2, 4)
                for line in wrap(paragraph, page_w - 112, width_of):
                    canvas.drawString(56, y, line)
                    y -= 17
                    if y <= 70:
                        break
                y -= 8
        canvas.showPage()
        summary.counts["pdf_pages"] += 1
    canvas.save()


# -- Tables -----------------------------------------------------------------------------------


def write_tables(folder: Path, prose: Prose, summary: CorpusSummary) -> None:
    rng, choice = prose.rng, prose.rng.choice
    with (folder / "版本与价格.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["编号", "产品", "版本", "价格（元）", "发布日期", "说明"])
        for row in range(1, CSV_ROWS + 1):
            version, price = f"v{rng.randint(1, 4)}.{rng.randint(0, 12)}", choice(PRICES)
            cells = [f"P{row:04d}", choice(SUBJECTS), version, price]
            writer.writerow([*cells, prose.date(), prose.sentence()])
    summary.counts["csv_rows"] = CSV_ROWS

    workbook = openpyxl.Workbook()
    customers = workbook.active
    assert customers is not None
    customers.title = "客户"
    customers.append(["客户编号", "城市", "行业", "联系人", "年度合同额（万元）", "备注"])
    for row in range(1, XLSX_ROWS["客户"] + 1):
        place = [f"C{row:05d}", choice(CITIES), choice(INDUSTRIES), prose.name()]
        customers.append([*place, round(rng.uniform(5, 900), 1), prose.sentence()])
    tickets = workbook.create_sheet("工单")
    tickets.append(["工单号", "提交日期", "优先级", "状态", "问题描述"])
    for row in range(1, XLSX_ROWS["工单"] + 1):
        opened = dt.date(2024, 1, 1) + dt.timedelta(days=rng.randint(0, 365))
        state = [choice("高中低"), choice(["待处理", "处理中", "已关闭"])]
        tickets.append([f"T{row:05d}", opened, *state, prose.paragraph(1, 3)])
    xlsx = folder / "客户与工单.xlsx"
    workbook.save(xlsx)
    _freeze_zip(xlsx)
    summary.counts["xlsx_rows"] = sum(XLSX_ROWS.values())

    with (folder / "问题反馈.jsonl").open("w", encoding="utf-8") as handle:
        for row in range(1, JSONL_ROWS + 1):
            record = {
                "id": f"issue-{1000 + row}",
                "title": f"{choice(SUBJECTS)}{choice(CONTEXTS)}出现{choice(PROBLEMS)}",
                "author": prose.name(),
                "labels": rng.sample(["bug", "question", "ocr", "pdf", "性能", "文档"], 2),
                "body": prose.paragraph(3, 9),
                "reply": prose.paragraph(1, 4) if rng.random() < 0.7 else None,
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    summary.counts["jsonl_rows"] = JSONL_ROWS


def _freeze_zip(path: Path) -> None:
    """Rewrite a zip with fixed member times and document dates, so that bytes repeat."""
    with zipfile.ZipFile(path) as source:
        members = [(info.filename, source.read(info)) for info in source.infolist()]
    stamp = re.compile(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in members:
            if name == "docProps/core.xml":
                data = stamp.sub(rb"\g<1>2024-01-01T00:00:00Z", data)
            target.writestr(zipfile.ZipInfo(name, _FIXED_ZIP_TIME), data, zipfile.ZIP_DEFLATED)


# -- The whole corpus -------------------------------------------------------------------------

MARKDOWN_TITLES = ("部署指南", "检索原理", "常见问题解答", "版本说明", "接口文档", "运维手册")


def generate_corpus(folder: Path, seed: int = 7) -> CorpusSummary:
    """Write the corpus into ``folder`` (created if missing); the same seed, the same bytes."""
    font = cjk_font()
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    prose = Prose(rng)
    summary = CorpusSummary()
    for index in range(MARKDOWN_FILES):
        title = MARKDOWN_TITLES[index % len(MARKDOWN_TITLES)]
        chars = rng.randint(MARKDOWN_CHARS * 3 // 4, MARKDOWN_CHARS * 5 // 4)
        (folder / f"{title}.md").write_text(markdown_document(prose, title, chars), "utf-8")
        summary.counts["markdown"] += 1
    for index in range(1, SCREENSHOTS + 1):
        image, drawn = screenshot(prose, font)
        name = f"截图_{index:02d}.png"
        image.save(folder / name)
        summary.rendered_text[name] = drawn
        summary.counts["screenshots"] += 1
    for index, side in enumerate(ICON_SIDES, start=1):
        icon(rng, side).save(folder / f"icon_{index}_{side}px.png")
        summary.counts["icons"] += 1
    write_pdf(folder / "产品白皮书.pdf", prose, font, summary)
    write_tables(folder, prose, summary)
    (folder / "会议纪要.txt").write_text(text_document(prose, TEXT_FILE_CHARS), encoding="utf-8")
    summary.counts["text"] += 1
    files = [path for path in folder.iterdir() if path.is_file()]
    summary.counts.update(files=len(files), bytes=sum(path.stat().st_size for path in files))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the benchmark corpus into a folder.")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    summary = generate_corpus(args.folder, args.seed)
    seconds = time.perf_counter() - started
    counts = ", ".join(f"{kind} {count}" for kind, count in summary.counts.items())
    sys.stdout.write(f"{counts}\ngenerated in {seconds:.2f} s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
