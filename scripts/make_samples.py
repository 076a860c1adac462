"""Write the binary sample documents (docx, pdf, png) of knowledge_base/samples/content/.

The files are committed; this script records how they were made. Needs the dev extra
(reportlab) and a CJK TrueType font (Debian's fonts-wqy-zenhei).
Usage: .venv/bin/python scripts/make_samples.py
"""

from __future__ import annotations

from pathlib import Path

from docx import Document as DocxDocument
from PIL import Image, ImageDraw, ImageFont
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas

CONTENT = Path(__file__).resolve().parent.parent / "knowledge_base" / "samples" / "content"
FONT = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")

MANUAL_SECTIONS = [
    (
        "第一章 创建知识库",
        [
            "打开管理页面，点击“新建知识库”，填写名称和简介。名称只能包含中文、字母、数字、"
            "下划线和短横线。",
            "每个知识库可以选择自己的嵌入模型和切分参数，例如每段 250 个字符、重叠 50 个字符。",
        ],
    ),
    (
        "第二章 上传与更新文档",
        [
            "一次可以选择多个文件上传。系统按文件内容计算指纹，内容没有变化的文件不会重新计算向量。",
            "修改文档后重新上传同名文件并勾选“覆盖”，旧的段落会被删除，新的段落会被加入索引。",
        ],
    ),
]
MANUAL_TABLE = [
    ("操作", "命令", "说明"),
    ("重建向量库", "python init_database.py --recreate-vs", "按当前模型重新建立全部索引"),
    ("增量更新", "python init_database.py -i", "只处理新增或修改过的文件"),
    ("一致性检查", "python init_database.py --check", "比较数据库、索引和文件夹"),
]

RELEASE_PAGES = [
    [
        "灵犀知识库 1.0 发布说明",
        "新功能：支持扫描版 PDF 与图片的文字识别。",
        "新功能：检索结果标明文件名与页码。",
        "Performance: unchanged files are never embedded again.",
    ],
    [
        "已知问题",
        "暂不支持旧版 Office 格式（.doc、.xls、.ppt）。",
        "单个文件的大小上限默认为 200 MB，可以在设置中修改。",
    ],
]

SCREENSHOT_LINES = ["系统状态：运行中", "知识库数量：3", "嵌入模型：bge-small-zh-v1.5"]


def write_manual(path: Path) -> None:
    document = DocxDocument()
    document.add_heading("灵犀知识库用户手册", level=0)
    for title, paragraphs in MANUAL_SECTIONS:
        document.add_heading(title, level=1)
        for text in paragraphs:
            document.add_paragraph(text)
    document.add_heading("第三章 常用命令", level=1)
    table = document.add_table(rows=len(MANUAL_TABLE), cols=len(MANUAL_TABLE[0]))
    for row_cells, values in zip(table.rows, MANUAL_TABLE, strict=True):
        for cell, value in zip(row_cells.cells, values, strict=True):
            cell.text = value
    document.save(str(path))


def write_release_notes(path: Path) -> None:
    pdfmetrics.registerFont(TTFont("WQY", str(FONT), subfontIndex=0))
    pdf = canvas.Canvas(str(path), pagesize=A4)
    for lines in RELEASE_PAGES:
        y = 780.0
        for index, line in enumerate(lines):
            pdf.setFont("WQY", 18 if index == 0 else 12)
            pdf.drawString(60, y, line)
            y -= 32
        pdf.showPage()
    pdf.save()


def write_screenshot(path: Path) -> None:
    font = ImageFont.truetype(str(FONT), 32, index=0)
    image = Image.new("RGB", (720, 60 + 56 * len(SCREENSHOT_LINES)), "white")
    draw = ImageDraw.Draw(image)
    for index, line in enumerate(SCREENSHOT_LINES):
        draw.text((30, 30 + 56 * index), line, font=font, fill="black")
    image.save(path)


def main() -> None:
    write_manual(CONTENT / "用户手册.docx")
    write_release_notes(CONTENT / "发布说明.pdf")
    write_screenshot(CONTENT / "状态截图.png")


if __name__ == "__main__":
    main()
