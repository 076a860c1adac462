"""Pinpoint offsets and heading paths of chunks, and passages stitched back from chunks."""

from __future__ import annotations

import itertools

import pytest
from langchain_core.documents import Document

from kb_server.documents.outline import Heading, locate_headings
from kb_server.settings import SplitterSettings
from kb_server.splitting import Chunk, split_document, split_documents
from kb_server.splitting.stitching import PlacedChunk, placed_chunk, stitch

REPORT = """年度安全检查报告

一、检查范围
本次检查覆盖总部和三个分公司的机房。检查组由信息安全部牵头，抽查了服务器、网络设备和门禁记录。
所有机房都配备了不间断电源和气体灭火装置。

二、发现的问题
部分服务器的系统补丁没有及时更新，最长的已经落后半年。
两个分公司的门禁记录保存不足九十天，不符合制度要求。
备份磁带存放在机房内部，没有异地保存。

三、整改要求
各单位应当在一个月内完成补丁更新。门禁记录至少保存一年。备份介质必须送到异地库房保存。
"""


def _body(chunk: Chunk) -> str:
    """The chunk's text without the title prefix: what its offsets span."""
    return chunk.text[
        len(chunk.text) - (chunk.metadata["end_index"] - chunk.metadata["start_index"]) :
    ]


def _placed(chunks: list[Chunk]) -> list[PlacedChunk]:
    return [found for chunk in chunks if (found := placed_chunk(chunk.text, chunk.metadata))]


@pytest.mark.parametrize("title_enhance", [False, True])
@pytest.mark.parametrize(("chunk_size", "chunk_overlap"), [(24, 8), (40, 15), (80, 30), (250, 50)])
def test_offsets_span_each_chunk_exactly_with_overlap(
    chunk_size: int, chunk_overlap: int, title_enhance: bool
) -> None:
    options = SplitterSettings(
        chunk_size=chunk_size, chunk_overlap=chunk_overlap, zh_title_enhance=title_enhance
    )

    chunks = split_document(Document(page_content=REPORT), options)

    for chunk in chunks:
        start, end = chunk.metadata["start_index"], chunk.metadata["end_index"]
        assert REPORT[start:end] == _body(chunk)
        prefix = chunk.text[: len(chunk.text) - (end - start)]
        assert prefix == (f"{chunk.metadata['title']}\n" if prefix else "")
    starts_and_ends = [(c.metadata["start_index"], c.metadata["end_index"]) for c in chunks]
    if chunk_size < len(REPORT):
        overlapping = [a for a, b in itertools.pairwise(starts_and_ends) if b[0] < a[1]]
        assert overlapping, "chunk_overlap should make neighbours share characters"


def test_title_enhancement_gives_the_titles_as_heading_path() -> None:
    options = SplitterSettings(chunk_size=40, chunk_overlap=10, zh_title_enhance=True)

    chunks = split_document(Document(page_content=REPORT), options)

    tape = next(chunk for chunk in chunks if "备份磁带" in chunk.text)
    assert tape.metadata["heading_path"] == ["二、发现的问题"]
    assert tape.text.startswith("二、发现的问题\n")
    assert "二、发现的问题" not in _body(tape)


def test_without_title_enhancement_plain_text_has_no_heading_path() -> None:
    chunks = split_document(Document(page_content=REPORT), SplitterSettings(chunk_size=60))

    assert all("heading_path" not in chunk.metadata for chunk in chunks)


def test_markdown_chunks_carry_the_header_path_as_a_list() -> None:
    text = "# 手册\n\n## 安装\n\n### 离线\n\n复制模型文件。\n\n## 使用\n\n上传文档。\n"
    document = Document(page_content=text, metadata={"markup": "markdown"})

    chunks = split_document(document, SplitterSettings(chunk_size=30, chunk_overlap=0))

    by_text = {_body(chunk).split("\n")[-1]: chunk.metadata for chunk in chunks}
    assert by_text["复制模型文件。"]["heading_path"] == ["手册", "安装", "离线"]
    assert by_text["复制模型文件。"]["header_path"] == "手册 > 安装 > 离线"
    assert by_text["上传文档。"]["heading_path"] == ["手册", "使用"]


def test_outline_headings_give_the_path_in_force_where_a_chunk_starts() -> None:
    lines = [
        *("员工手册", "第一章 考勤", "每天上午九点之前必须到岗打卡签到。"),
        *("第二章 报销", "2.1 材料", "附上发票原件和行程单以及审批单。"),
    ]
    outline = locate_headings(
        lines, [(0, "员工手册"), (1, "第一章 考勤"), (1, "第二章 报销"), (2, "2.1 材料")]
    )
    document = Document(page_content="\n".join(lines), metadata={"outline": outline})

    chunks = split_document(document, SplitterSettings(chunk_size=20, chunk_overlap=0))

    paths = {_body(chunk): chunk.metadata.get("heading_path") for chunk in chunks}
    assert paths["每天上午九点之前必须到岗打卡签到。"] == ["员工手册", "第一章 考勤"]
    assert paths["附上发票原件和行程单以及审批单。"] == ["员工手册", "第二章 报销", "2.1 材料"]
    assert all("outline" not in chunk.metadata for chunk in chunks)


def test_locate_headings_skips_what_is_not_a_line_of_its_own() -> None:
    lines = ["概述", "表头: 概述; 值: 1", "概述", "细节"]

    outline = locate_headings(lines, [(1, "概述"), (2, "不在文中"), (2, "细节")])

    assert outline == [
        Heading(0, 1, "概述"),
        Heading(len("概述\n表头: 概述; 值: 1\n概述\n"), 2, "细节"),
    ]


def test_the_loader_title_heads_the_path_once() -> None:
    slide = Document(
        page_content="季度目标\n收入增长百分之十。", metadata={"title": "季度目标", "page": 3}
    )
    chapter = Document(
        page_content="起源\n很久以前。",
        metadata={"title": "第一章", "outline": [Heading(0, 1, "起源")]},
    )
    options = SplitterSettings(chunk_size=50, chunk_overlap=0)

    (slide_chunk,) = split_document(slide, options)
    (chapter_chunk,) = split_document(chapter, options)

    assert slide_chunk.metadata["heading_path"] == ["季度目标"]
    assert slide_chunk.metadata["page"] == 3
    assert chapter_chunk.metadata["heading_path"] == ["第一章", "起源"]


def test_split_documents_numbers_the_documents_offsets_count_in() -> None:
    pages = [Document(page_content=f"第{n}页的内容。", metadata={"page": n}) for n in (1, 2)]

    chunks = split_documents(pages, SplitterSettings(chunk_size=50, chunk_overlap=0))

    assert [(c.metadata["document_index"], c.metadata["start_index"]) for c in chunks] == [
        (0, 0),
        (1, 0),
    ]


def test_stitching_overlapping_chunks_gives_back_the_text() -> None:
    text = "".join(f"第{n}句话写在这里。" for n in "一二三四五六")
    chunks = split_document(
        Document(page_content=text), SplitterSettings(chunk_size=20, chunk_overlap=10)
    )
    placed = _placed(chunks)
    assert len(placed) > 2
    target = placed[1]

    passage = stitch(target, placed, window=len(text))

    assert passage.text == text
    assert passage.text[passage.highlight_start : passage.highlight_end] == target.body
    assert (passage.start, passage.more_before, passage.more_after) == (0, False, False)


def test_stitching_marks_gaps_and_keeps_to_the_window() -> None:
    chunks = [
        PlacedChunk(0, 4, "甲乙丙丁"),
        PlacedChunk(6, 10, "戊己庚辛"),
        PlacedChunk(8, 14, "庚辛壬癸子丑"),
    ]

    near = stitch(chunks[1], chunks, window=1)
    wide = stitch(chunks[1], chunks, window=100)

    assert (near.text, near.highlight_start, near.highlight_end) == ("戊己庚辛壬", 0, 4)
    assert (near.start, near.more_before, near.more_after) == (6, True, True)
    assert (wide.text, wide.highlight_start, wide.highlight_end) == (
        "甲乙丙丁\n戊己庚辛壬癸子丑",
        5,
        9,
    )


def test_a_chunk_whose_text_no_longer_matches_its_offsets_is_not_placed() -> None:
    offsets = {"start_index": 10, "end_index": 14}

    assert placed_chunk("标题\n正文内容", offsets) == PlacedChunk(10, 14, "正文内容")
    assert placed_chunk("标题正文内容", offsets) is None  # no title line before the body
    assert placed_chunk("正文", offsets) is None  # shorter than its span
    assert placed_chunk("标题\n正文内容", {**offsets, "edited": True}) is None
    assert placed_chunk("正文内容", {"start_index": 10}) is None
