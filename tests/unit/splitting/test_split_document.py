from __future__ import annotations

import pytest
from langchain_core.documents import Document

from kb_server.settings import SplitterSettings
from kb_server.splitting import ChineseDocumentSplitter, Chunk, Splitter, split_documents
from kb_server.splitting import split_document as split_document

POLICY = """员工信息安全管理办法

为了保护公司和客户的数据，规范员工在日常工作中处理信息的行为，特制定本办法。

第一章 总则
第一条 本办法适用于公司全体员工以及在公司工作的外包人员。
所有人员在入职时都必须签署保密协议，并参加信息安全培训。

第二章 数据处理
2.1 数据分级
公司数据分为公开、内部、机密三个级别。机密数据只能在指定的设备上处理，不得通过个人邮箱发送。
内部数据可以在公司网络中共享，但是不得上传到任何外部网站或者公共的网盘服务。
2.2 数据销毁
不再需要的机密数据应当在三十天内彻底删除，纸质文件必须使用碎纸机销毁。

第三章 附则
本办法自发布之日起施行，由信息安全部门负责解释。
"""


def _document(text: str = POLICY, **metadata: object) -> Document:
    return Document(page_content=text, metadata={"source": "policy.txt", "page": 1, **metadata})


def _body(chunk: Chunk) -> str:
    title = chunk.metadata.get("title")
    if title is not None and chunk.text.startswith(f"{title}\n"):
        return chunk.text.removeprefix(f"{title}\n")
    return chunk.text


@pytest.mark.parametrize("title_enhance", [False, True])
@pytest.mark.parametrize("chunk_size", [20, 50, 90, 250])
def test_every_chunk_fits_chunk_size(chunk_size: int, title_enhance: bool) -> None:
    options = SplitterSettings(
        chunk_size=chunk_size, chunk_overlap=chunk_size // 5, zh_title_enhance=title_enhance
    )

    chunks = split_document(_document(), options)

    assert chunks
    assert all(0 < len(chunk.text) <= chunk_size for chunk in chunks)


@pytest.mark.parametrize("title_enhance", [False, True])
@pytest.mark.parametrize("chunk_size", [20, 50, 90, 250])
def test_offsets_span_the_chunk_body_exactly(chunk_size: int, title_enhance: bool) -> None:
    options = SplitterSettings(
        chunk_size=chunk_size, chunk_overlap=chunk_size // 5, zh_title_enhance=title_enhance
    )

    for chunk in split_document(_document(), options):
        start, end = chunk.metadata["start_index"], chunk.metadata["end_index"]
        assert POLICY[start:end] == _body(chunk)


def test_chunks_copy_document_metadata_without_markup() -> None:
    document = _document("第一段。\n\n第二段。", markup="markdown", sheet="Sheet1")

    chunks = split_document(document, SplitterSettings(chunk_size=50, chunk_overlap=0))

    assert [chunk.metadata for chunk in chunks] == [
        {"source": "policy.txt", "page": 1, "sheet": "Sheet1", "start_index": 0, "end_index": 10}
    ]
    assert document.metadata["markup"] == "markdown"
    chunks[0].metadata["page"] = 2
    assert document.metadata["page"] == 1


def test_without_title_enhancement_no_title_is_added() -> None:
    chunks = split_document(_document(), SplitterSettings(chunk_size=60, chunk_overlap=0))

    assert not any("title" in chunk.metadata for chunk in chunks)
    assert chunks[0].text.startswith("员工信息安全管理办法\n")


def test_title_enhancement_prefixes_chunks_with_their_section_title() -> None:
    options = SplitterSettings(chunk_size=60, chunk_overlap=10, zh_title_enhance=True)

    chunks = split_document(_document(), options)

    titles = [chunk.metadata.get("title") for chunk in chunks]
    assert titles[0] == "员工信息安全管理办法"
    assert "第一章 总则 > 第一条 本办法适用于公司全体员工以及在公司工作的外包人员" not in titles
    assert {"第一章 总则", "第二章 数据处理 > 2.1 数据分级", "2.2 数据销毁", "第三章 附则"} <= set(
        titles
    )
    for chunk in chunks:
        title = chunk.metadata.get("title")
        if title is not None:
            assert chunk.text.startswith(f"{title}\n")
            assert not _body(chunk).startswith(title)
    grading = [chunk.text for chunk in chunks if chunk.metadata.get("title", "").endswith("分级")]
    assert len(grading) > 1
    assert grading[0] == "第二章 数据处理 > 2.1 数据分级\n公司数据分为公开、内部、机密三个级别。"


def test_loader_title_prefixes_text_without_titles_of_its_own() -> None:
    text = "所有数据都必须加密存储。访问日志至少保留一年。离职员工的账号应当在当天停用。"
    document = _document(text, title="附录 安全要求")
    options = SplitterSettings(chunk_size=32, chunk_overlap=0, zh_title_enhance=True)

    chunks = split_document(document, options)

    assert [chunk.text for chunk in chunks] == [
        "附录 安全要求\n所有数据都必须加密存储。访问日志至少保留一年。",
        "附录 安全要求\n离职员工的账号应当在当天停用。",
    ]
    assert all(chunk.metadata["title"] == "附录 安全要求" for chunk in chunks)


def test_split_documents_keeps_document_order() -> None:
    documents = [_document("第一页的内容。", page=1), _document("第二页的内容。", page=2)]

    chunks = split_documents(documents, SplitterSettings(chunk_size=50, chunk_overlap=0))

    assert [(chunk.text, chunk.metadata["page"]) for chunk in chunks] == [
        ("第一页的内容。", 1),
        ("第二页的内容。", 2),
    ]


def test_empty_document_gives_no_chunks() -> None:
    options = SplitterSettings(zh_title_enhance=True)

    assert split_document(_document(""), options) == []
    assert split_document(_document(" \n\n", markup="markdown"), options) == []


def test_document_splitter_implements_the_splitter_protocol() -> None:
    options = SplitterSettings(chunk_size=80, chunk_overlap=10)
    splitter: Splitter = ChineseDocumentSplitter(options)

    assert splitter.split(_document()) == split_document(_document(), options)
