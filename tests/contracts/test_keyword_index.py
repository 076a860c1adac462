"""The KeywordIndex contract, run against every entry of KEYWORD_INDEXES (tantivy and PostgreSQL).

Terms come from the real analyzer (jieba) over a small Chinese corpus, so the two backends are
compared on the terms they will really hold; a knowledge base moved between them must rank
its chunks the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from kb_server.retrieval.analyzer import KeywordAnalyzer
from kb_server.settings import Settings, load_settings
from kb_server.stores.keyword import KeywordEntry, KeywordIndex, KeywordLocation
from kb_server.stores.registry import KEYWORD_INDEXES, open_keyword_index

V1 = "test-analyzer-1"
V2 = "test-analyzer-2"
IndexOpener = Callable[[], KeywordIndex]

CORPUS = (
    "七天无理由退货：商品签收后七天内可申请退货，退款在审核通过后三个工作日内原路返回。",
    "发票问题：电子发票在订单完成后开具，如需修改发票抬头请联系客服，退款订单的发票将作废。",
    "保修政策：整机保修一年，电池保修六个月，人为损坏不在保修范围内。",
    "配送说明：普通快递三到五天送达，偏远地区可能延迟，退货的运费由买家承担。",
    "会员积分：每消费一元积一分，积分可以抵扣现金，退款时积分同步扣回。",
    "账户安全：请勿向他人泄露验证码，客服不会索要您的密码，发现异常请立即修改密码。",
    "Return policy: items can be returned within 7 days; refunds go back to the original card.",
    "售后服务热线每天九点到二十一点在线，节假日照常提供退货退款和保修咨询服务。",
)
QUERIES = ("退货退款多久到账", "发票抬头怎么修改", "保修期多长", "积分 退款", "refund card", "密码")


def corpus_entries(analyzer: KeywordAnalyzer) -> list[KeywordEntry]:
    return [KeywordEntry(100 + row, analyzer.terms(text)) for row, text in enumerate(CORPUS)]


@pytest.fixture(scope="module")
def analyzer() -> KeywordAnalyzer:
    return KeywordAnalyzer()


def index_settings(vs_type: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    if vs_type == "pg":
        pg_url: str = request.getfixturevalue("pg_url")
        return load_settings(kb_root=tmp_path / "kb_root", vector_store={"pg": {"url": pg_url}})
    return load_settings(kb_root=tmp_path / "kb_root")


@pytest.fixture(params=sorted(KEYWORD_INDEXES))
def open_index(request: pytest.FixtureRequest, tmp_path: Path) -> IndexOpener:
    """Opens the index of one fixed knowledge base, as often as a test asks."""
    vs_type: str = request.param
    settings = index_settings(vs_type, tmp_path, request)
    location = KeywordLocation(kb_id=1, directory=tmp_path / "keyword_index")
    return lambda: open_keyword_index(vs_type, location, settings)


@pytest.fixture
def index(open_index: IndexOpener) -> KeywordIndex:
    return open_index()


@pytest.fixture
def filled(index: KeywordIndex, analyzer: KeywordAnalyzer) -> KeywordIndex:
    index.update(add=corpus_entries(analyzer), analyzer_version=V1)
    return index


def test_a_new_index_is_empty_and_unversioned(index: KeywordIndex) -> None:
    assert index.count() == 0
    assert index.ids() == set()
    assert index.analyzer_version is None
    assert index.search(["退款"], 5) == []
    assert index.idf(["退款"]) == {}


def test_search_ranks_by_bm25_with_term_frequency(index: KeywordIndex) -> None:
    index.update(
        add=[
            KeywordEntry(1, ["退货", "退款", "七天"]),
            KeywordEntry(2, ["发票", "退款", "退款"]),
            KeywordEntry(7, ["保修", "一年"]),
        ],
        analyzer_version=V1,
    )
    hits = index.search(["退款"], 5)

    assert [hit.id for hit in hits] == [2, 1]
    assert hits[0].bm25 > hits[1].bm25 > 0
    assert index.search(["没有的词"], 5) == []


def test_idf_is_bm25s_for_present_terms_only(filled: KeywordIndex) -> None:
    weights = filled.idf(["退款", "保修", "没有的词"])

    # 8 chunks: 退款 in 4 of them, 保修 in 2.
    assert weights == {
        "退款": pytest.approx(math.log(1 + (8 - 4 + 0.5) / (4 + 0.5))),
        "保修": pytest.approx(math.log(1 + (8 - 2 + 0.5) / (2 + 0.5))),
    }


def test_allowed_ids_filter_without_changing_scores(filled: KeywordIndex) -> None:
    everything = {hit.id: hit.bm25 for hit in filled.search(["退款", "保修"], 10)}
    allowed = [101, 102, 105, 999]

    hits = filled.search(["退款", "保修"], 10, allowed_ids=allowed)

    assert [hit.id for hit in hits] == [i for i in everything if i in allowed]
    assert [hit.bm25 for hit in hits] == pytest.approx([everything[hit.id] for hit in hits])
    assert filled.search(["退款"], 10, allowed_ids=[]) == []


def test_k_limits_and_must_be_positive(filled: KeywordIndex) -> None:
    assert len(filled.search(["退款"], 2)) == 2
    with pytest.raises(ValueError, match="k"):
        filled.search(["退款"], 0)


def test_re_adding_an_id_replaces_its_terms(filled: KeywordIndex) -> None:
    filled.update(add=[KeywordEntry(100, ["保修"])], analyzer_version=V1)

    assert filled.count() == len(CORPUS)
    assert 100 not in {hit.id for hit in filled.search(["退货"], 10)}
    assert 100 in {hit.id for hit in filled.search(["保修"], 10)}


def test_update_deletes_and_adds_together(filled: KeywordIndex, open_index: IndexOpener) -> None:
    reader = open_index()
    filled.update(delete=[101, 102], add=[KeywordEntry(200, ["发票"])], analyzer_version=V1)

    assert reader.ids() == {100, 103, 104, 105, 106, 107, 200}
    assert [hit.id for hit in reader.search(["发票"], 5)] == [200]


def test_a_failing_update_changes_nothing(filled: KeywordIndex) -> None:
    broken = KeywordEntry(300, cast(Any, [None]))

    with pytest.raises(TypeError):
        filled.update(delete=[100], add=[KeywordEntry(301, ["发票"]), broken], analyzer_version=V1)

    assert filled.ids() == {100 + row for row in range(len(CORPUS))}
    assert filled.count() == len(CORPUS)


def test_clear_empties_and_records_the_new_analyzer(
    filled: KeywordIndex, open_index: IndexOpener
) -> None:
    filled.clear(V2)

    reopened = open_index()
    assert reopened.count() == 0
    assert reopened.ids() == set()
    assert reopened.analyzer_version == V2
    assert reopened.search(["退款"], 5) == []


def test_drop_reads_as_never_written_and_can_be_written_again(
    filled: KeywordIndex, open_index: IndexOpener
) -> None:
    filled.drop()

    assert open_index().analyzer_version is None
    assert open_index().count() == 0
    filled.update(add=[KeywordEntry(5, ["发票"])], analyzer_version=V2)
    assert open_index().ids() == {5}
    assert open_index().analyzer_version == V2


def test_terms_with_quotes_backslashes_and_symbols_match_exactly(index: KeywordIndex) -> None:
    odd = ["it's", "a\\b", "c:d", "x|y", "&", "!", "(", "'", "1:2", "中文'词", "a''b", "\\"]
    index.update(
        add=[KeywordEntry(i, [term, "共同"]) for i, term in enumerate(odd)], analyzer_version=V1
    )

    for i, term in enumerate(odd):
        assert [hit.id for hit in index.search([term], 3)] == [i], term
    assert set(index.idf(odd)) == set(odd)


def test_every_backend_ranks_a_fresh_corpus_the_same(
    analyzer: KeywordAnalyzer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    indexes: dict[str, KeywordIndex] = {}
    for vs_type in sorted(KEYWORD_INDEXES):
        location = KeywordLocation(kb_id=1, directory=tmp_path / vs_type)
        settings = index_settings(vs_type, tmp_path, request)
        indexes[vs_type] = open_keyword_index(vs_type, location, settings)
        indexes[vs_type].update(add=corpus_entries(analyzer), analyzer_version=V1)
    reference_type, reference = sorted(indexes.items())[0]

    for query in QUERIES:
        terms = analyzer.query_terms(query)
        expected = reference.search(terms, 5)
        for vs_type, index in indexes.items():
            hits = index.search(terms, 5)
            assert [hit.id for hit in hits] == [hit.id for hit in expected], (vs_type, query)
            # tantivy scores in float32. (After deletions tantivy's statistics still count
            # deleted chunks until segments merge, so only a fresh index is compared.)
            assert [hit.bm25 for hit in hits] == pytest.approx(
                [hit.bm25 for hit in expected], rel=1e-4
            ), (vs_type, reference_type, query)
            assert index.idf(terms) == pytest.approx(reference.idf(terms))
