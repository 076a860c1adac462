"""Keyword analysis (jieba words) and weighted reciprocal rank fusion, on hand-checked cases."""

from __future__ import annotations

import pytest

from kb_server.retrieval.analyzer import KeywordAnalyzer, text_language
from kb_server.retrieval.fitness import dense_weight, model_languages
from kb_server.retrieval.fusion import weighted_rrf
from kb_server.settings import EmbeddingModelSettings, EmbeddingSettings, RetrievalSettings


def test_chinese_text_becomes_jieba_words_with_their_shorter_parts() -> None:
    terms = KeywordAnalyzer().terms("本地知识库问答系统支持检索。")
    assert terms == ["本地", "知识", "知识库", "问答", "系统", "支持", "检索"]


def test_latin_words_are_lower_cased_and_full_width_forms_folded() -> None:
    terms = KeywordAnalyzer().terms("支持ＧＰＴ-4 和 BM25")
    assert terms == ["支持", "gpt", "gpt-4", "bm25"]


def test_identifiers_are_terms_whole_and_in_their_word_parts() -> None:
    terms = KeywordAnalyzer().terms("把 batch_size 设为 32，升级到 v4.9.3")
    assert terms == ["batch", "size", "batch_size", "设", "32", "升级", "到", "v4", "v4.9.3"]
    # A question naming the identifier, or only a word of it, shares terms with the text.
    assert {"batch_size", "v4.9.3"} <= set(KeywordAnalyzer().query_terms("batch_size 和 v4.9.3"))
    assert "size" in KeywordAnalyzer().query_terms("size 参数")


def test_punctuation_and_stopwords_are_dropped() -> None:
    terms = KeywordAnalyzer().terms("什么是知识库？的了，The index!")
    assert terms == ["知识", "知识库", "index"]


def test_query_terms_are_distinct_in_first_seen_order() -> None:
    terms = KeywordAnalyzer().query_terms("保修期多久？保修期")
    assert terms == ["保修", "保修期", "多久"]


def test_overlong_blobs_are_not_terms() -> None:
    assert KeywordAnalyzer().terms("a" * 41 + " 检索") == ["检索"]


@pytest.mark.parametrize(
    ("text", "language"),
    [("知识库是什么", "zh"), ("what is RAG", "en"), ("RAG 是什么意思", "zh"), ("123", "en")],
)
def test_text_language(text: str, language: str) -> None:
    assert text_language(text) == language


def test_rrf_orders_by_summed_reciprocal_ranks() -> None:
    # dense [1, 2, 3] and bm25 [3, 1, 4], k = 60:
    # 1: 1/61 + 1/62 = .032522   3: 1/63 + 1/61 = .032266   2: 1/62 = .016129   4: 1/63
    fused = weighted_rrf({"dense": [1, 2, 3], "bm25": [3, 1, 4]}, {"dense": 1, "bm25": 1}, 60)
    assert [chunk_id for chunk_id, _ in fused] == [1, 3, 2, 4]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[3][1] == pytest.approx(1 / 63)


def test_rrf_weights_shift_the_order() -> None:
    # dense weight 0.1: 3: .1/63 + 1/61 = .017981 > 1: .1/61 + 1/62 = .017768; 4: 1/63 > 2: .1/62
    fused = weighted_rrf({"dense": [1, 2, 3], "bm25": [3, 1, 4]}, {"dense": 0.1, "bm25": 1}, 60)
    assert [chunk_id for chunk_id, _ in fused] == [3, 1, 4, 2]


def test_rrf_rejects_a_non_positive_constant() -> None:
    with pytest.raises(ValueError, match="positive"):
        weighted_rrf({"dense": [1]}, {}, 0)


def test_an_english_model_gets_less_weight_on_chinese_questions() -> None:
    retrieval = RetrievalSettings(dense_weight=1.0, unfit_dense_factor=0.1)
    embedding = EmbeddingSettings()
    minilm = "sentence-transformers/all-MiniLM-L6-v2"
    assert model_languages(minilm, embedding) == {"en"}
    assert dense_weight("退货多久能退款？", minilm, retrieval, embedding) == pytest.approx(0.1)
    assert dense_weight("how long do refunds take", minilm, retrieval, embedding) == 1.0
    assert dense_weight("退货多久能退款？", "BAAI/bge-small-zh-v1.5", retrieval, embedding) == 1.0


def test_configured_languages_override_the_model_family() -> None:
    embedding = EmbeddingSettings(models={"my-model": EmbeddingModelSettings(languages=["en"])})
    assert model_languages("my-model", embedding) == {"en"}
    assert model_languages("someone/unknown-model", embedding) == {"zh", "en"}
