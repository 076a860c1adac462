from __future__ import annotations

import pytest

from kb_server.settings import SplitterSettings
from kb_server.splitting.title_enhance import Section, find_titled_sections, split_section

BODY = "本节说明系统在离线环境中的部署方式，包括模型文件的准备和服务的启动顺序。"
LONG_BODY = (
    "部署前需要准备嵌入模型和向量索引所需的全部文件。"
    "管理员应当先检查磁盘空间，再初始化数据库。"
    "初始化完成后，依次启动接口服务和网页界面。"
    "如果启动失败，请查看日志中的错误信息并逐项排查。"
    "所有步骤完成后，用户就可以在网页上创建知识库并上传文档了。"
)


def _titles(text: str, title_max_chars: int = 30) -> list[str | None]:
    return [section.title for section in find_titled_sections(text, title_max_chars)]


@pytest.mark.parametrize(
    "title",
    [
        "一、总则",
        "（一）适用范围",
        "第三章 安装部署",
        "第三章",
        "第2节 配置文件",
        "第十条 数据安全",
        "1. 概述",
        "1.1 背景",
        "1.1.2 模型文件",
        "2、离线安装",
        "Chapter 3 Installation",
    ],
)
def test_numbered_headings_are_titles(title: str) -> None:
    text = f"前言内容。\n{title}\n{BODY}"

    sections = find_titled_sections(text, 30)

    assert [section.title for section in sections] == [None, title]
    assert sections[1].text == f"{title}\n{BODY}"
    assert sections[1].start == text.index(title)


def test_short_standalone_line_before_a_longer_line_is_a_title() -> None:
    assert _titles(f"简介\n{BODY}") == ["简介"]
    assert _titles(f"第一段结束了。\n\n部署方式\n{BODY}") == [None, "部署方式"]


@pytest.mark.parametrize(
    "line",
    [
        "本办法适用于全体员工。",  # a sentence
        "部署前请检查以下事项：",  # ends like a clause
        "1. 系统需要在完全离线的环境中运行并且支持多个知识库同时进行检索问答",  # too long
        "3.14",  # only a number
        "2024",
        "部署方式，注意事项",  # punctuation inside a short line
    ],
)
def test_sentences_long_lines_and_numbers_are_not_titles(line: str) -> None:
    assert _titles(f"{line}\n{BODY}") == [None]


def test_a_wrapped_line_in_a_paragraph_is_not_a_title() -> None:
    text = "这一段文字从PDF中提取出来，被按行\n断开了的内容\n然后继续写下去，直到这一段结束为止。"

    assert _titles(text) == [None]


def test_numbered_list_items_are_not_titles() -> None:
    text = f"操作步骤如下。\n1. 打开设置\n2. 点击网络\n3. 保存配置\n{BODY}"

    assert _titles(text) == [None]


def test_adjacent_titles_form_one_heading() -> None:
    text = f"第三章 安装\n\n3.1 离线安装\n{BODY}\n3.2 在线安装\n{BODY}"

    sections = find_titled_sections(text, 30)

    assert [section.title for section in sections] == ["第三章 安装 > 3.1 离线安装", "3.2 在线安装"]
    assert sections[0].heading == ("第三章 安装", "3.1 离线安装")


@pytest.mark.parametrize("chunk_size", [40, 60, 100])
def test_every_chunk_of_a_section_carries_its_title(chunk_size: int) -> None:
    text = f"前言。\n二、部署步骤\n{LONG_BODY}"
    section = find_titled_sections(text, 30)[1]
    options = SplitterSettings(chunk_size=chunk_size, chunk_overlap=10)

    chunks = split_section(section, options, prefix_title=True)

    assert len(chunks) > 1
    assert chunks[0].text.startswith("二、部署步骤\n")
    assert not chunks[0].text.startswith("二、部署步骤\n二、部署步骤")
    for chunk in chunks[1:]:
        assert chunk.text.startswith("二、部署步骤\n")
        body = chunk.text.removeprefix("二、部署步骤\n")
        assert text[chunk.start : chunk.start + len(body)] == body


@pytest.mark.parametrize("chunk_size", [20, 33, 60, 250])
def test_prefixed_chunks_still_fit_chunk_size(chunk_size: int) -> None:
    section = Section(0, LONG_BODY * 3, title="第二章 部署", heading=("第二章 部署",))
    options = SplitterSettings(chunk_size=chunk_size, chunk_overlap=chunk_size // 3)

    chunks = split_section(section, options, prefix_title=True)

    assert all(len(chunk.text) <= chunk_size for chunk in chunks)
    assert all(chunk.text.startswith("第二章 部署\n") for chunk in chunks)


def test_title_longer_than_half_a_chunk_is_not_prefixed() -> None:
    section = Section(0, LONG_BODY, title="附录三 离线部署常见问题与解答", heading=())
    options = SplitterSettings(chunk_size=24, chunk_overlap=0)

    chunks = split_section(section, options, prefix_title=True)

    assert all(len(chunk.text) <= 24 for chunk in chunks)
    assert not any(chunk.text.startswith("附录三") for chunk in chunks)


def test_without_prefixing_chunks_are_plain() -> None:
    section = Section(5, LONG_BODY, title="二、部署步骤", heading=("二、部署步骤",))
    options = SplitterSettings(chunk_size=40, chunk_overlap=0)

    chunks = split_section(section, options, prefix_title=False)

    assert "".join(chunk.text for chunk in chunks) == LONG_BODY
    assert chunks[0].start == 5
