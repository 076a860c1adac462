"""Text to keyword-search terms: jieba words for Chinese, lower-cased words for Latin script.

Documents and questions go through the same analysis, so a term matches exactly when the same
word appears in both. jieba's search mode emits a long word and the shorter words inside it
("知识库" also gives "知识"), so a question that uses the short form still matches; an
identifier such as "batch_size" is a term whole and in its words ("batch", "size").

The segmenter is jieba-rs (the ``rjieba`` package): jieba's dictionary and algorithm in Rust.
On the 3,169 texts of the benchmark corpus and CMRC 2018 it gives the same Chinese words as
jieba's Python package, in a nineteenth of the CPU time (0.17 against 3.25 s), and loads its
dictionary in 0.16 s instead of 1.45 s, time that held Python's lock at the start of every
ingest. Everything runs offline: the dictionary ships inside the package.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Final

from kb_server.stores.keyword import KeywordIndex

# Bump when the terms produced for the same text change: indexes built with an older analyzer
# are rebuilt from the database rather than searched with mismatched terms.
ANALYZER_VERSION: Final = "jieba-rs-search-1"

# Words so frequent in Chinese and English text that they only slow a search down; BM25 would
# give them almost no weight anyway. Question words are here because questions are full of them.
_STOPWORD_LIST: Final = """
    的 了 是 在 和 与 及 或 而 也 都 就 又 还 把 被 让 给 对 从 向 以 于 为 之 其 这 那 这个 那个
    这些 那些 一个 一种 有 没有 不 个 着 过 吗 呢 吧 啊 呀 么 什么 哪 哪个 哪些 哪里 怎么 怎样
    如何 为什么 多少 几 谁 是否 请问 请 the a an of to in on at for and or is are was were be been
    by with as from that this it its what which who how when where why do does did
"""
STOPWORDS: Final = frozenset(_STOPWORD_LIST.split())

# Longer "words" are blobs (hashes, base64, minified code), not something anyone searches for.
MAX_TERM_CHARS: Final = 40

# Characters above this share of letters in a text make it Chinese for language decisions.
_HAN_SHARE_FOR_CHINESE: Final = 0.2


def is_han(char: str) -> bool:
    return (
        "\u4e00" <= char <= "\u9fff" or "\u3400" <= char <= "\u4dbf" or "\uf900" <= char <= "\ufaff"
    )


def text_language(text: str) -> str:
    """ "zh" when Chinese characters make up a noticeable share of the letters, else "en"."""
    letters = [char for char in text if char.isalpha()]
    if not letters:
        return "en"
    han = sum(1 for char in letters if is_han(char))
    return "zh" if han / len(letters) >= _HAN_SHARE_FOR_CHINESE else "en"


def _keep(term: str) -> bool:
    return (
        len(term) <= MAX_TERM_CHARS
        and any(char.isalnum() for char in term)
        and term not in STOPWORDS
    )


class KeywordAnalyzer:
    """Splits text into the terms the keyword index stores and searches; thread-safe."""

    version: Final = ANALYZER_VERSION

    def terms(self, text: str) -> list[str]:
        """All terms of ``text`` in order, repeats kept (term frequency counts for BM25)."""
        import rjieba  # loads its dictionary (0.2 s): on first use, not when this is imported

        normalized = unicodedata.normalize("NFKC", text).lower()
        words: Iterable[str] = rjieba.cut_for_search(normalized)
        return [word for word in (w.strip() for w in words) if word and _keep(word)]

    def built(self, index: KeywordIndex) -> bool:
        """Whether ``index`` holds terms of this analyzer version, or none yet; terms of
        another version would never match and must be rebuilt."""
        return index.analyzer_version in (None, self.version)

    def query_terms(self, text: str) -> list[str]:
        """The distinct terms of a question, in first-seen order."""
        return list(dict.fromkeys(self.terms(text)))
