from __future__ import annotations

import itertools
import textwrap

import pytest
from langchain_core.documents import Document
from langchain_text_splitters import TextSplitter

from kb_server.splitting.chinese_recursive import ChineseRecursiveTextSplitter, PlacedText

MANUAL = (
    "知识库问答系统可以在完全离线的环境中运行。系统启动时会加载本地的嵌入模型，"
    "并为每个知识库建立独立的向量索引！上传文档后，系统会自动完成解析、切分和向量化；"
    "整个过程不需要访问互联网。\n\n"
    "如果文档是扫描件，系统会调用 OCR 引擎识别图片中的文字……识别完成后再进入切分步骤。"
    "管理员说：“请先确认磁盘空间是否充足。”然后再开始批量导入。\n"
    "Version v1.2 supports PDF, Word and Markdown files. The default chunk size is 250 "
    "characters! Is the overlap configurable? Yes, it is set to 50 by default.\n\n"
    "检索时，系统先把问题转换成向量，再在索引中查找最相近的片段，最后把这些片段交给大模型生成答案。"
)
NO_PUNCTUATION = "离线部署的知识库系统需要本地嵌入模型和向量索引才能正常工作" * 12
ONE_LONG_SENTENCE = (
    "在没有网络连接的机房里部署知识库系统时管理员需要提前准备好所有的模型文件和依赖包"
    "并且按照文档中的说明依次完成数据库初始化索引构建和服务启动等多个步骤才能让用户开始提问"
    "而且在这个过程中任何一个环节出现问题都会导致整个系统无法正常提供问答服务所以必须仔细检查"
    "，包括 disk space, memory limits and file permissions on every single machine in the cluster"
)
MIXED = (
    "RAG (retrieval augmented generation) 是一种把检索和生成结合起来的方法。"
    "It first retrieves relevant passages, then asks the model to answer. "
    "中文文本通常没有空格分词，所以切分时要按字符计算长度！Pi is 3.14 and e is 2.72. "
) * 6
SIZES = (20, 37, 64, 120, 250)
STOPS = "。！？；，、：”’」』）…"


def _splitter(chunk_size: int, chunk_overlap: int = 0) -> ChineseRecursiveTextSplitter:
    return ChineseRecursiveTextSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap)


@pytest.mark.parametrize("chunk_size", SIZES)
@pytest.mark.parametrize("text", [MANUAL, NO_PUNCTUATION, ONE_LONG_SENTENCE, MIXED])
def test_every_chunk_fits_chunk_size(text: str, chunk_size: int) -> None:
    chunks = _splitter(chunk_size, chunk_size // 5).split_text(text)

    assert chunks
    assert all(0 < len(chunk) <= chunk_size for chunk in chunks)


def test_text_without_punctuation_is_cut_by_characters_with_overlap() -> None:
    chunks = _splitter(50, 10).split_with_offsets(NO_PUNCTUATION)

    assert [len(chunk.text) for chunk in chunks[:-1]] == [50] * (len(chunks) - 1)
    assert [chunk.start for chunk in chunks[:3]] == [0, 40, 80]
    assert "".join(chunk.text[10:] if i else chunk.text for i, chunk in enumerate(chunks)) == (
        NO_PUNCTUATION
    )


def test_consecutive_chunks_overlap_when_sentences_are_shorter_than_overlap() -> None:
    sentences = [f"第{index}句很短。" for index in range(10, 40)]  # 7 characters each
    text = "".join(sentences)

    chunks = _splitter(40, 15).split_with_offsets(text)

    assert len(chunks) > 3
    for previous, current in itertools.pairwise(chunks):
        assert current.start < previous.start + len(previous.text)
        # two 7-character sentences fit the 15-character overlap: they open the next chunk
        assert current.text.startswith(previous.text[-14:])


def test_sentences_stay_whole_when_each_fits_the_chunk() -> None:
    sentences = [
        "系统支持离线部署。",
        "管理员可以创建多个知识库！",
        "每个知识库都有自己的向量索引，互不干扰。",
        "上传的文件会被自动解析？",
        "是的，解析后会切分成片段；",
        "片段的默认长度是二百五十个字符。",
        "The model runs on CPU. ",
        "Does it need a GPU? ",
        "No, it does not!",
    ] * 3
    text = "".join(sentences)
    sentence_starts = set()
    sentence_ends = set()
    offset = 0
    for sentence in sentences:
        sentence_starts.add(offset)
        sentence_ends.add(offset + len(sentence.rstrip()))
        offset += len(sentence)

    for chunk_size in (25, 40, 70):
        for chunk in _splitter(chunk_size, 10).split_with_offsets(text):
            assert chunk.start in sentence_starts
            assert chunk.start + len(chunk.text) in sentence_ends


@pytest.mark.parametrize("chunk_overlap", [0, 7])
@pytest.mark.parametrize("chunk_size", SIZES)
def test_no_chunk_starts_with_closing_punctuation(chunk_size: int, chunk_overlap: int) -> None:
    chunks = _splitter(chunk_size, chunk_overlap).split_text(MANUAL + MIXED)

    assert not [chunk for chunk in chunks if chunk[0] in STOPS]


def test_closing_quote_stays_with_its_sentence() -> None:
    text = "管理员说：“请先确认磁盘空间是否充足。”然后再开始批量导入。他又说：「别忘了备份。」"

    chunks = _splitter(20).split_text(text)

    assert chunks == [
        "管理员说：“请先确认磁盘空间是否充足。”",
        "然后再开始批量导入。",
        "他又说：「别忘了备份。」",
    ]


def test_ellipsis_is_kept_whole() -> None:
    text = "他犹豫了很久很久很久……最后还是决定出发。路上一切顺利。"

    chunks = _splitter(12).split_text(text)

    assert chunks[0] == "他犹豫了很久很久很久……"


def test_decimal_numbers_and_versions_are_not_cut() -> None:
    sentences = ["Pi is about 3.14 in short. ", "Release v1.2 fixed the bug. ", "Use 2.5 GB. "]

    chunks = _splitter(30).split_text("".join(sentences * 2))

    assert chunks == [sentence.strip() for sentence in sentences * 2]


def test_chunks_are_exact_slices_blank_lines_included() -> None:
    text = "  第一段。\n\n\n   \n\n第二段。\n第三行。\n\n"

    chunks = _splitter(100).split_with_offsets(text)

    assert chunks == [PlacedText(2, "第一段。\n\n\n   \n\n第二段。\n第三行。")]
    assert text[chunks[0].start : chunks[0].end] == chunks[0].text


def test_blank_text_gives_no_chunks() -> None:
    assert _splitter(50).split_text("") == []
    assert _splitter(50).split_text(" \n\n \u3000\n") == []


def test_offsets_span_the_chunk_text_exactly() -> None:
    text = MANUAL + "\n\n\n\n" + MIXED
    for chunk_size in SIZES:
        for chunk in _splitter(chunk_size, chunk_size // 4).split_with_offsets(text):
            assert text[chunk.start : chunk.end] == chunk.text


def test_start_offsets_are_exact_in_repetitive_text() -> None:
    text = "一二三四五六七" * 10

    chunks = _splitter(20, 5).split_with_offsets(text)

    assert [chunk.start for chunk in chunks] == [0, 15, 30, 45, 60]


def test_is_a_langchain_text_splitter_with_start_index() -> None:
    splitter = _splitter(40, 10)
    document = Document(page_content=MANUAL, metadata={"source": "manual.txt"})

    assert isinstance(splitter, TextSplitter)
    parts = splitter.split_documents([document])

    assert len(parts) > 1
    for part in parts:
        start = part.metadata["start_index"]
        assert part.metadata["source"] == "manual.txt"
        assert MANUAL[start : start + len(part.page_content)] == part.page_content


def test_hard_wrapped_lines_are_not_cut_mid_sentence() -> None:
    sentences = [
        f"Sentence {n} explains one more step of the set-up and why it matters here."
        for n in range(8)
    ]
    # Wrapped at 40 columns the way Markdown and PDF text often is: line breaks in mid-sentence.
    wrapped = "\n".join(textwrap.wrap(" ".join(sentences), 40))
    chunks = ChineseRecursiveTextSplitter(chunk_size=200, chunk_overlap=0).split_text(wrapped)
    assert len(chunks) > 1
    for chunk in chunks:
        assert chunk.startswith("Sentence"), chunk
        assert chunk.endswith("matters here."), chunk


def test_chinese_lines_without_end_punctuation_still_split_on_line_breaks() -> None:
    rows = "\n".join(f"版本{n}: 社区版; 并发用户: {n}; 价格: {n * 100}" for n in range(30))
    chunks = ChineseRecursiveTextSplitter(chunk_size=120, chunk_overlap=0).split_text(rows)
    assert all(len(chunk) <= 120 for chunk in chunks)
    assert all(chunk.startswith("版本") for chunk in chunks)
