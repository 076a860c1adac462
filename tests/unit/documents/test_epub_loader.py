from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from ebooklib import epub

from kb_server.documents.base import LoaderContext
from kb_server.documents.epub import EpubLoader
from kb_server.documents.outline import Heading
from kb_server.errors import DocumentLoadError
from kb_server.settings import Settings


@pytest.fixture
def loader(settings: Settings) -> EpubLoader:
    return EpubLoader(LoaderContext(documents=settings.documents))


def chapter(file_name: str, body: str) -> epub.EpubHtml:
    item = epub.EpubHtml(title=file_name, file_name=file_name, lang="zh")
    item.content = f"<html><body>{body}</body></html>"
    return item


def write_book(path: Path) -> Path:
    book = epub.EpubBook()
    book.set_identifier("kb-test-book")
    book.set_title("测试之书")
    book.set_language("zh")
    origin = chapter("origin.xhtml", "<h1>起源</h1><p>很久以前，<em>山里</em>有一座庙。</p>")
    later = chapter("later.xhtml", "<h2>后来的事</h2><p>庙里有个老和尚。</p>")
    cover = chapter("blank.xhtml", "<div> </div>")
    for item in (origin, later, cover):
        book.add_item(item)
    book.toc = [epub.Link("later.xhtml#start", "第二章 后来", "later")]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    # The spine, not the manifest, fixes the reading order.
    book.spine = ["nav", cover, origin, later]
    epub.write_epub(str(path), book)
    return path


def test_epub_chapters_follow_the_spine_with_titles(tmp_path: Path, loader: EpubLoader) -> None:
    documents = loader.load(write_book(tmp_path / "book.epub"))

    assert [document.page_content for document in documents] == [
        "起源\n很久以前，山里有一座庙。",
        "后来的事\n庙里有个老和尚。",
    ]
    # from the first heading, then from the table of contents, which wins when it has one
    assert [document.metadata for document in documents] == [
        {"title": "起源", "outline": [Heading(0, 1, "起源")]},
        {"title": "第二章 后来", "outline": [Heading(0, 2, "后来的事")]},
    ]


def test_epub_navigation_document_is_not_a_chapter(tmp_path: Path, loader: EpubLoader) -> None:
    documents = loader.load(write_book(tmp_path / "book.epub"))

    assert all("第二章 后来" not in document.page_content for document in documents)


def test_file_that_is_not_a_zip_raises_document_load_error(
    tmp_path: Path, loader: EpubLoader
) -> None:
    path = tmp_path / "book.epub"
    path.write_text("纯文本，不是电子书", encoding="utf-8")

    with pytest.raises(DocumentLoadError) as raised:
        loader.load(path)

    assert raised.value.file_name == "book.epub"


@pytest.mark.parametrize(
    "entries",
    [
        {"mimetype": "application/epub+zip"},
        {
            "mimetype": "application/epub+zip",
            "META-INF/container.xml": (
                '<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
                'version="1.0"><rootfiles><rootfile full-path="OEBPS/content.opf" '
                'media-type="application/oebps-package+xml"/></rootfiles></container>'
            ),
        },
    ],
    ids=["no-container", "no-package-document"],
)
def test_zip_missing_its_epub_parts_raises_document_load_error(
    tmp_path: Path, loader: EpubLoader, entries: dict[str, str]
) -> None:
    path = tmp_path / "broken.epub"
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)

    with pytest.raises(DocumentLoadError):
        loader.load(path)
