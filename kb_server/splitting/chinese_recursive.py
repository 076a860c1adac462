"""A recursive character splitter that knows Chinese punctuation.

Text is cut at the coarsest boundary that makes pieces small enough: paragraphs, lines,
sentence ends (Chinese and Western), clause commas, spaces, and single characters as the last
resort. Pieces are merged back up to ``chunk_size`` characters with ``chunk_overlap``.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

from langchain_core.documents import Document
from langchain_text_splitters import RecursiveCharacterTextSplitter

# Closing quotes and brackets belong to the sentence or clause they close (a regex class body).
CLOSING_MARKS = "”’」』）)】》〉\"'\\]"
_CJK = "\u4e00-\u9fff"

# Each entry is one level of the recursion, coarsest first. LangChain splits with
# re.split(f"({separator})"), so every group inside must be non-capturing; the matched text
# stays at the end of the piece before it (keep_separator="end").
CHINESE_SEPARATORS: tuple[str, ...] = (
    r"\n[^\S\n]*\n\s*",  # paragraph break: one or more blank lines
    # Sentence ends: a run like "……" or "！？" stays whole; a Western stop only counts when
    # whitespace or the end follows, so "3.14" and "v1.2" are not cut. They rank above single
    # line breaks, which in hard-wrapped text (Markdown, PDF) fall in mid-sentence.
    rf"[。！？；…]+[{CLOSING_MARKS}]*"
    rf"|[.!?]+[{CLOSING_MARKS}]*(?:\s+|$)"
    rf"|[!?]+[{CLOSING_MARKS}]*(?=[{_CJK}])",
    r"\n",
    rf"[，、：]+[{CLOSING_MARKS}]*|,\s+",
    r"\s+",
    # One character plus any punctuation right after it, so no piece starts with "。" or "”".
    rf"[\s\S][。！？；，、：…{CLOSING_MARKS}]*",
    # Only reached by a run of punctuation as long as a chunk: guarantees the size limit.
    "",
)


class PlacedText(NamedTuple):
    """A chunk's text and where it came from.

    ``text`` is ``prefix_length`` characters of prefix (a title put in front of it) followed
    by its body, which is exactly ``source[start:end]`` of the text it was cut from.
    """

    start: int
    text: str
    prefix_length: int = 0

    @property
    def body(self) -> str:
        return self.text[self.prefix_length :]

    @property
    def end(self) -> int:
        return self.start + len(self.text) - self.prefix_length


class ChineseRecursiveTextSplitter(RecursiveCharacterTextSplitter):
    """Split Chinese (and mixed) text into chunks of at most ``chunk_size`` characters.

    Example:
        >>> splitter = ChineseRecursiveTextSplitter(chunk_size=10, chunk_overlap=0)
        >>> splitter.split_text("第一句话。第二句话！第三句。")
        ['第一句话。第二句话！', '第三句。']
    """

    def __init__(
        self, chunk_size: int = 250, chunk_overlap: int = 50, *, add_start_index: bool = True
    ) -> None:
        super().__init__(
            separators=list(CHINESE_SEPARATORS),
            keep_separator="end",
            is_separator_regex=True,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            length_function=len,
            add_start_index=add_start_index,
            strip_whitespace=True,
        )

    def split_with_offsets(self, text: str) -> list[PlacedText]:
        """Split ``text`` and say where each chunk is in it.

        Chunks are stripped of surrounding whitespace and empty ones are dropped; each is
        otherwise an exact slice: ``text[chunk.start : chunk.end] == chunk.text``.
        """
        placed: list[PlacedText] = []
        cursor = 0
        for raw in self._split_text(text, self._separators):
            body = raw.strip()
            if not body:
                continue
            # Merged chunks are slices of ``text`` in order, and a chunk repeats at most
            # ``chunk_overlap`` characters of the one before it, so it starts no earlier than
            # ``cursor``. Searching from there keeps offsets right in repetitive text.
            start = text.find(body, cursor)
            if start < 0:
                start = text.find(body)
            cursor = max(start, start + len(body) - self._chunk_overlap)
            placed.append(PlacedText(start, body))
        return placed

    def split_text(self, text: str) -> list[str]:
        return [chunk.text for chunk in self.split_with_offsets(text)]

    def create_documents(
        self, texts: list[str], metadatas: list[dict[Any, Any]] | None = None
    ) -> list[Document]:
        # The base class finds start_index by searching for the chunk text from the start,
        # which goes wrong in repetitive text; the offsets are known exactly here.
        documents: list[Document] = []
        for index, text in enumerate(texts):
            for chunk in self.split_with_offsets(text):
                metadata = copy.deepcopy(metadatas[index]) if metadatas else {}
                if self._add_start_index:
                    metadata["start_index"] = chunk.start
                documents.append(Document(page_content=chunk.text, metadata=metadata))
        return documents
