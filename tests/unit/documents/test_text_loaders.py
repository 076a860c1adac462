from __future__ import annotations

import random
from pathlib import Path

import pytest

from kb_server.documents.base import LoaderContext
from kb_server.documents.text import MarkdownLoader, TextLoader
from kb_server.errors import DocumentLoadError
from kb_server.settings import Settings

NOTICE = "关于春节放假的通知\n\n全体员工：春节假期为2月9日至2月17日，共9天。\n"


@pytest.fixture
def context(settings: Settings) -> LoaderContext:
    return LoaderContext(documents=settings.documents)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("encoded", "text"),
    [
        (NOTICE.encode("utf-8"), NOTICE),
        (b"\xef\xbb\xbf" + NOTICE.encode("utf-8"), NOTICE),
        (NOTICE.encode("gbk"), NOTICE),
        ("请假需提前三天申请。".encode("gbk"), "请假需提前三天申请。"),
        ("南汉皇帝刘䶮，古字𠀀。".encode("gb18030"), "南汉皇帝刘䶮，古字𠀀。"),
    ],
    ids=["utf8", "utf8-bom", "gbk", "gbk-one-sentence", "gb18030-beyond-gbk"],
)
def test_text_file_loads_to_original_text(
    context: LoaderContext, tmp_path: Path, encoded: bytes, text: str
) -> None:
    path = _write(tmp_path / "notice.txt", encoded)

    documents = TextLoader(context).load(path)

    assert [document.page_content for document in documents] == [text]
    assert documents[0].metadata == {}


def test_windows_newlines_become_unix(context: LoaderContext, tmp_path: Path) -> None:
    path = _write(tmp_path / "crlf.txt", NOTICE.replace("\n", "\r\n").encode("gbk"))

    assert TextLoader(context).load(path)[0].page_content == NOTICE


@pytest.mark.parametrize("data", [b"", b"  \n\r\n\t"], ids=["empty", "blank"])
def test_empty_text_file_gives_no_documents(
    context: LoaderContext, tmp_path: Path, data: bytes
) -> None:
    assert TextLoader(context).load(_write(tmp_path / "empty.txt", data)) == []


def test_random_bytes_text_file_is_unreadable(context: LoaderContext, tmp_path: Path) -> None:
    path = _write(tmp_path / "noise.txt", random.Random(3).randbytes(2048))

    with pytest.raises(DocumentLoadError) as caught:
        TextLoader(context).load(path)
    assert caught.value.code == "document_unreadable"
    assert caught.value.file_name == "noise.txt"


def test_markdown_is_marked_as_markdown(context: LoaderContext, tmp_path: Path) -> None:
    markdown = "# 员工手册\n\n## 第一章 总则\n\n- 适用于全体员工\n"
    path = _write(tmp_path / "handbook.md", markdown.encode("utf-8"))

    documents = MarkdownLoader(context).load(path)

    assert len(documents) == 1
    assert documents[0].page_content == markdown
    assert documents[0].metadata == {"markup": "markdown"}


def test_loaders_declare_their_names_and_suffixes() -> None:
    assert (TextLoader.name, TextLoader.suffixes) == ("text", frozenset({".txt"}))
    assert (MarkdownLoader.name, MarkdownLoader.suffixes) == ("markdown", frozenset({".md"}))
