from __future__ import annotations

from kb_server.chat.prompts import ExtractivePrompt, Reference
from kb_server.embedding.base import Embedder
from kb_server.llm.extractive import ExtractiveAnswerer, lexical_overlap, split_sentences

TEMPLATE = ExtractivePrompt(header="以下内容摘自知识库：", max_sentences=2)


def test_sentences_split_on_chinese_and_western_ends() -> None:
    text = "第一句话在这里。第二句话呢？Third sentence here. 最后一句"
    assert split_sentences(text) == [
        "第一句话在这里。",
        "第二句话呢？",
        "Third sentence here.",
        "最后一句",
    ]


def test_hard_wrapped_western_lines_are_one_sentence_and_chinese_lines_stay_apart() -> None:
    text = (
        "Set a score threshold to drop weak\nmatches, as higher is better.\n"
        "社区版说明\n专业版更贵。"
    )
    assert split_sentences(text) == [
        "Set a score threshold to drop weak matches, as higher is better.",
        "社区版说明",
        "专业版更贵。",
    ]


def test_the_sentence_that_answers_a_chinese_question_comes_first(embedder: Embedder) -> None:
    references = [
        Reference(1, "intro.md", "灵犀知识库由一个小团队开发。它可以在没有网络的机器上运行。"),
        Reference(
            2,
            "editions.csv",
            "社区版面向个人用户。社区版最多支持五个并发用户。专业版价格为每年九千八百元。",
        ),
    ]
    answer = ExtractiveAnswerer(embedder, TEMPLATE).answer(
        "社区版最多支持多少个并发用户？", references
    )
    lines = answer.splitlines()
    assert lines[0] == "以下内容摘自知识库："
    assert lines[1] == "1. 社区版最多支持五个并发用户。 [2]"


def test_the_sentence_that_answers_an_english_question_comes_first(embedder: Embedder) -> None:
    references = [
        Reference(1, "a.txt", "The warehouse opens at nine. Deliveries arrive by truck."),
        Reference(
            2, "b.txt", "Refunds are paid within fourteen days of the return. Staff wear blue."
        ),
    ]
    ranked = ExtractiveAnswerer(embedder, TEMPLATE).rank("How long do refunds take?", references)
    assert ranked[0].text == "Refunds are paid within fourteen days of the return."
    assert ranked[0].reference == 2


def test_lexical_overlap_is_the_share_of_question_bigrams() -> None:
    assert lexical_overlap("并发用户", "支持五个并发用户") == 1.0
    assert lexical_overlap("并发用户", "专业版价格") == 0.0
