"""The documents -> chunks entry point: registry, source names, errors, per-call settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kb_server.chunking import DocumentPipeline, load_and_split
from kb_server.errors import DocumentLoadError, UnsupportedFileTypeError
from kb_server.settings import Settings, SplitterSettings, load_settings

MANUAL = (
    "一、产品简介\n"
    "灵犀知识库是一个离线运行的问答系统。它把企业文档切分成小段，再根据问题找出最相关的段落。"
    "所有数据都保存在本地，不会上传到任何服务器。\n\n"
    "二、安装方法\n"
    "首先安装 Python 3.11。然后运行安装脚本，脚本会创建虚拟环境并安装全部依赖。"
    "安装完成后，在浏览器中打开管理页面即可上传文档。\n"
)


@pytest.fixture
def content_root(tmp_path: Path) -> Path:
    root = tmp_path / "content"
    (root / "manuals").mkdir(parents=True)
    (root / "manuals" / "guide.txt").write_text(MANUAL, encoding="utf-8")
    return root


def test_chunks_name_their_source_relative_to_content_root(
    content_root: Path, settings: Settings
) -> None:
    chunks = load_and_split(
        content_root / "manuals" / "guide.txt", settings, content_root=content_root
    )
    assert chunks
    assert {chunk.metadata["source"] for chunk in chunks} == {"manuals/guide.txt"}
    assert {chunk.metadata["loader"] for chunk in chunks} == {"text"}
    assert all(len(chunk.text) <= settings.splitter.chunk_size for chunk in chunks)
    joined = "".join(chunk.text for chunk in chunks)
    assert "灵犀知识库是一个离线运行的问答系统。" in joined


def test_per_call_splitter_settings_override_the_defaults(
    content_root: Path, settings: Settings
) -> None:
    path = content_root / "manuals" / "guide.txt"
    small = SplitterSettings(chunk_size=40, chunk_overlap=10)
    default_chunks = load_and_split(path, settings)
    small_chunks = load_and_split(path, settings, splitter=small)
    assert len(small_chunks) > len(default_chunks)
    assert all(len(chunk.text) <= 40 for chunk in small_chunks)


def test_title_enhancement_prefixes_chunks_with_their_section_title(
    content_root: Path, settings: Settings
) -> None:
    options = SplitterSettings(chunk_size=60, chunk_overlap=10, zh_title_enhance=True)
    chunks = load_and_split(content_root / "manuals" / "guide.txt", settings, splitter=options)
    install_chunks = [c for c in chunks if "虚拟环境" in c.text]
    assert install_chunks
    assert all(c.text.startswith("二、安装方法") for c in install_chunks)


@pytest.mark.parametrize("name", ["old.doc", "slides.ppt", "book.xls", "archive.zip", "noext"])
def test_unsupported_extension_names_the_supported_ones(
    tmp_path: Path, settings: Settings, name: str
) -> None:
    path = tmp_path / name
    path.write_bytes(b"\xd0\xcf\x11\xe0 legacy office or other bytes")
    with pytest.raises(UnsupportedFileTypeError) as caught:
        load_and_split(path, settings)
    assert ".docx" in caught.value.supported
    assert ".pdf" in caught.value.message


@pytest.mark.parametrize("name", ["broken.docx", "broken.pdf", "broken.xlsx", "broken.pptx"])
def test_corrupt_file_is_a_document_load_error(
    tmp_path: Path, settings: Settings, name: str
) -> None:
    path = tmp_path / name
    path.write_bytes(b"this is not what the extension promises" * 10)
    with pytest.raises(DocumentLoadError) as caught:
        load_and_split(path, settings)
    assert caught.value.file_name == name


def test_missing_file_is_a_document_load_error(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(DocumentLoadError, match="not found"):
        load_and_split(tmp_path / "gone.txt", settings)


def test_extra_suffix_maps_onto_a_builtin_loader(tmp_path: Path) -> None:
    settings = load_settings(documents={"extra_suffixes": {".log": "text"}})
    path = tmp_path / "service.log"
    path.write_text("服务已启动。端口 7861。", encoding="utf-8")
    chunks = DocumentPipeline(settings).load_and_split(path)
    assert chunks[0].metadata["loader"] == "text"
    assert "端口 7861" in chunks[0].text


def test_extra_suffix_with_unknown_loader_fails_at_start() -> None:
    settings = load_settings(documents={"extra_suffixes": {".log": "nonsense"}})
    with pytest.raises(ValueError, match="nonsense"):
        DocumentPipeline(settings)


def test_cli_prints_chunks_and_exits_1_when_a_file_fails(content_root: Path) -> None:
    (content_root / "legacy.doc").write_bytes(b"\xd0\xcf\x11\xe0")
    result = subprocess.run(
        [sys.executable, "-m", "kb_server.cli.chunks", str(content_root), "--show", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "manuals/guide.txt" in result.stdout
    assert "1 files failed" in result.stdout
    assert "legacy.doc" in result.stderr
    assert "Traceback" not in result.stderr
