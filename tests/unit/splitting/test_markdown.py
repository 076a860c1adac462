from __future__ import annotations

import pytest
from langchain_core.documents import Document

from kb_server.settings import SplitterSettings
from kb_server.splitting import split_document
from kb_server.splitting.markdown import markdown_sections

GUIDE = """本文介绍知识库系统的安装与使用。

# 安装

系统支持在线和离线两种安装方式。

```bash
# 这一行是注释，不是标题
    pip install kb-server
```

## 离线安装

离线安装前，请把模型文件复制到 models 目录，然后运行安装脚本。

~~~
## 这一行也在代码块里
~~~

# 使用
## 查询
### 高级语法
高级语法支持按文件名过滤，也支持限定返回的片段数量。
"""


def _markdown(text: str) -> Document:
    return Document(page_content=text, metadata={"source": "guide.md", "markup": "markdown"})


def test_sections_follow_headers_with_their_header_path() -> None:
    sections = markdown_sections(GUIDE)

    assert [section.title for section in sections] == [
        None,
        "安装",
        "安装 > 离线安装",
        "使用 > 查询 > 高级语法",
    ]
    assert sections[1].text.startswith("# 安装\n")
    assert sections[3].heading == ("# 使用", "## 查询", "### 高级语法")
    assert "".join(section.text for section in sections) == GUIDE


def test_hash_lines_inside_code_blocks_are_not_headers() -> None:
    chunks = split_document(_markdown(GUIDE), SplitterSettings(chunk_size=250, chunk_overlap=0))

    paths = {chunk.metadata.get("header_path") for chunk in chunks}
    assert paths == {None, "安装", "安装 > 离线安装", "使用 > 查询 > 高级语法"}
    comment_chunk = next(chunk for chunk in chunks if "这一行是注释" in chunk.text)
    assert comment_chunk.metadata["header_path"] == "安装"
    assert "\n    pip install kb-server\n" in comment_chunk.text
    fenced_chunk = next(chunk for chunk in chunks if "这一行也在代码块里" in chunk.text)
    assert fenced_chunk.metadata["header_path"] == "安装 > 离线安装"


def test_header_lines_stay_in_the_text() -> None:
    chunks = split_document(_markdown(GUIDE), SplitterSettings(chunk_size=250, chunk_overlap=0))

    assert chunks[1].text.startswith("# 安装\n\n系统支持")
    assert chunks[-1].text.startswith("# 使用\n## 查询\n### 高级语法\n")
    assert "markup" not in chunks[0].metadata
    assert "header_path" not in chunks[0].metadata


@pytest.mark.parametrize("chunk_size", [20, 45, 80, 250])
def test_every_chunk_fits_and_points_into_the_document(chunk_size: int) -> None:
    for title_enhance in (False, True):
        options = SplitterSettings(
            chunk_size=chunk_size, chunk_overlap=chunk_size // 4, zh_title_enhance=title_enhance
        )
        for chunk in split_document(_markdown(GUIDE), options):
            assert len(chunk.text) <= chunk_size
            body = chunk.text
            title = chunk.metadata.get("title")
            if title is not None and body.startswith(f"{title}\n"):
                body = body.removeprefix(f"{title}\n")
            first_line = body.split("\n", 1)[0]
            start = chunk.metadata["start_index"]
            assert GUIDE[start : start + len(first_line)] == first_line


def test_with_title_enhancement_the_header_path_prefixes_each_chunk() -> None:
    options = SplitterSettings(chunk_size=40, chunk_overlap=0, zh_title_enhance=True)

    chunks = split_document(_markdown(GUIDE), options)

    for chunk in chunks:
        path = chunk.metadata.get("header_path")
        assert chunk.metadata.get("title") == path
        if path is not None:
            assert chunk.text.startswith(f"{path}\n")
            assert not chunk.text.removeprefix(f"{path}\n").startswith("#")
    offline = [
        chunk.text for chunk in chunks if chunk.metadata.get("header_path") == "安装 > 离线安装"
    ]
    assert offline[0] == "安装 > 离线安装\n离线安装前，请把模型文件复制到 models 目录，"


def test_document_without_headers_is_one_section() -> None:
    text = "没有标题的说明文字。\n\n第二段。"

    chunks = split_document(_markdown(text), SplitterSettings(chunk_size=100, chunk_overlap=0))

    assert [chunk.text for chunk in chunks] == [text]
    assert "header_path" not in chunks[0].metadata
