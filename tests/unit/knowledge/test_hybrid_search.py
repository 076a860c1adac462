"""Keyword (BM25) and hybrid search through the service: what each mode finds, how scores and
thresholds behave, and that the keyword index stays in step with the chunks and vectors."""

from __future__ import annotations

import pytest

from kb_server.embedding.base import Embedder
from kb_server.errors import EmbeddingModelUnavailableError
from kb_server.knowledge.maintenance import KbMaintenance
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.settings import SearchMode, Settings
from tests.unit.conftest import CountingEmbedder

pytestmark = pytest.mark.both_backends

SHOP = {
    "returns.txt": "退货政策：商品签收后七天内可以申请无理由退货，退款会在三个工作日内原路返回。",
    "shipping.txt": "配送说明：订单在二十四小时内发货，偏远地区的配送时间可能延长两到三天。",
    "invoice.txt": "发票开具：下单时填写抬头和税号，电子发票会在订单完成后发送到邮箱。",
    "catalog.txt": "年度产品目录：本年度共上架一百二十款新品，涵盖厨房电器、个人护理和户外装备，"
    "其中实验室系列新增量子纠缠蒸馏器一款，其余新品将分批到货。",
    "members.txt": "会员权益：金卡会员享受免运费和生日礼包，积分可以抵扣部分货款。",
    "support.txt": "客服时间：每天上午九点到晚上九点，节假日照常服务，可以通过电话或在线聊天联系。",
    "privacy.txt": "隐私说明：我们只收集完成订单所需的信息，不会把您的个人信息出售给第三方。",
    "coupons.txt": "优惠券规则：每个订单只能使用一张优惠券，优惠券不能兑换现金，过期作废。",
}
RARE_TERM_QUESTION = "有没有量子纠缠蒸馏器？"


@pytest.fixture
def shop(service: KnowledgeBaseService) -> str:
    service.create_kb("shop")
    for name, text in SHOP.items():
        service.save_file("shop", name, text.encode("utf-8"), override=True)
    assert sorted(service.add_files("shop", list(SHOP)).files_indexed) == sorted(SHOP)
    return "shop"


def files(service: KnowledgeBaseService, query: str, mode: SearchMode, top_k: int = 8) -> list[str]:
    hits = service.search("shop", query, top_k=top_k, search_mode=mode)
    return [hit.chunk.file_name for hit in hits]


def index_ids(service: KnowledgeBaseService, kb: str) -> tuple[set[int], set[int], set[int]]:
    """(chunk ids in the database, vector ids, keyword ids)."""
    row = service.kb_row(kb)
    chunks = {c.id for f in service.list_files(kb) for c in service.list_chunks(kb, f.file_name)}
    return chunks, service.store_for(row).ids(), service.keywords_for(row).ids()


def test_bm25_finds_a_rare_exact_term_that_dense_ranks_low(
    service: KnowledgeBaseService, shop: str
) -> None:
    dense = files(service, RARE_TERM_QUESTION, "dense")
    # The offline embedder (English MiniLM) barely sees Chinese: the right file is not on top.
    assert dense.index("catalog.txt") >= 2
    assert files(service, RARE_TERM_QUESTION, "bm25")[0] == "catalog.txt"
    assert files(service, RARE_TERM_QUESTION, "hybrid")[0] == "catalog.txt"


def test_hybrid_is_the_default_mode(service: KnowledgeBaseService, shop: str) -> None:
    default = service.search(shop, RARE_TERM_QUESTION, top_k=3)
    hybrid = service.search(shop, RARE_TERM_QUESTION, top_k=3, search_mode="hybrid")
    assert [hit.chunk.id for hit in default] == [hit.chunk.id for hit in hybrid]
    assert set(default[0].scores) == {"bm25", "keyword", "rrf"}


def test_an_unfit_model_takes_no_part_in_hybrid_search(kb_settings: Settings, shop: str) -> None:
    def no_model(model: str) -> Embedder:
        raise AssertionError(f"the query was embedded with {model}")

    # A Chinese question and the English MiniLM: by default its weight is 0.
    keyword_only = KnowledgeBaseService(kb_settings, embedder_provider=no_model)
    hybrid = keyword_only.search("shop", "退款多久到账？发票怎么开", top_k=8)
    bm25 = keyword_only.search("shop", "退款多久到账？发票怎么开", top_k=8, search_mode="bm25")
    assert [hit.chunk.id for hit in hybrid] == [hit.chunk.id for hit in bm25]
    assert [hit.score for hit in hybrid] == [hit.score for hit in bm25]


def with_retrieval(settings: Settings, **retrieval: float) -> Settings:
    values = settings.model_dump()
    values["retrieval"].update(retrieval)
    return Settings.model_validate(values)


def test_scores_per_mode_and_the_threshold_filters_on_them(
    service: KnowledgeBaseService, shop: str
) -> None:
    query = "退款多久到账？发票怎么开"
    for mode in ("bm25", "hybrid"):
        hits = service.search(shop, query, top_k=8, search_mode=mode)
        assert len(hits) >= 2
        assert all(0.0 <= hit.score <= 1.0 for hit in hits)
        threshold = (max(h.score for h in hits) + min(h.score for h in hits)) / 2
        kept = service.search(shop, query, top_k=8, search_mode=mode, score_threshold=threshold)
        assert [h.chunk.id for h in kept] == [h.chunk.id for h in hits if h.score >= threshold]
        assert 0 < len(kept) < len(hits)
    dense = service.search(shop, query, top_k=3, search_mode="dense")
    assert all(hit.score == max(hit.scores["dense"], 0.0) for hit in dense)


def test_bm25_score_is_the_share_of_the_question_found(
    service: KnowledgeBaseService, shop: str
) -> None:
    # Every term of the question is in returns.txt; half of the weight is in no chunk at all.
    full = service.search(shop, "无理由退货", top_k=1, search_mode="bm25")[0]
    assert full.chunk.file_name == "returns.txt"
    assert full.score == pytest.approx(1.0, abs=0.15)
    partial = service.search(shop, "无理由退货 税号", top_k=1, search_mode="bm25")[0]
    assert partial.score < full.score


def test_hybrid_fuses_the_ranks_of_both_lists(
    kb_settings: Settings, counting_embedder: CountingEmbedder, shop: str
) -> None:
    settings = with_retrieval(kb_settings, unfit_dense_factor=0.1)
    service = KnowledgeBaseService(settings, embedder_provider=lambda _: counting_embedder)
    query = "优惠券能兑换现金吗"
    hits = service.search(shop, query, top_k=8, search_mode="hybrid")
    assert all(set(hit.scores) == {"dense", "bm25", "keyword", "rrf"} for hit in hits)
    dense = files(service, query, "dense")
    bm25 = files(service, query, "bm25")
    weights = {"dense": 0.1, "bm25": 1.0}  # an English model on a Chinese question
    expected = {
        name: sum(
            weights[mode] / (60 + ranking.index(name) + 1)
            for mode, ranking in (("dense", dense), ("bm25", bm25))
            if name in ranking
        )
        for name in SHOP
    }
    assert [hit.chunk.file_name for hit in hits] == sorted(
        expected, key=lambda name: expected[name], reverse=True
    )
    for hit in hits:
        assert hit.scores["rrf"] == pytest.approx(expected[hit.chunk.file_name])
        # The score blends both relevance figures with the same weights.
        blend = 0.1 * max(hit.scores["dense"], 0.0) + 1.0 * hit.scores["keyword"]
        assert hit.score == pytest.approx(blend / 1.1)
        assert 0.0 <= hit.score <= 1.0


def test_file_filter_applies_in_every_mode(service: KnowledgeBaseService, shop: str) -> None:
    for mode in ("dense", "bm25", "hybrid"):
        hits = service.search(
            shop, "退款和发票", top_k=5, search_mode=mode, file_names=["invoice.txt"]
        )
        assert {hit.chunk.file_name for hit in hits} == {"invoice.txt"}


def test_bm25_search_never_loads_the_embedding_model(
    kb_settings: Settings, counting_embedder: CountingEmbedder, shop: str
) -> None:
    def no_model(model: str) -> Embedder:
        raise AssertionError(f"bm25 search loaded {model}")

    keyword_only = KnowledgeBaseService(kb_settings, embedder_provider=no_model)
    hits = keyword_only.search("shop", RARE_TERM_QUESTION, top_k=1, search_mode="bm25")
    assert hits[0].chunk.file_name == "catalog.txt"


def test_hybrid_falls_back_to_bm25_when_the_model_is_unavailable(
    kb_settings: Settings, shop: str, caplog: pytest.LogCaptureFixture
) -> None:
    def unavailable(model: str) -> Embedder:
        raise EmbeddingModelUnavailableError(model, "not found here")

    settings = with_retrieval(kb_settings, unfit_dense_factor=1.0)
    keyword_only = KnowledgeBaseService(settings, embedder_provider=unavailable)
    hits = keyword_only.search("shop", RARE_TERM_QUESTION, top_k=3, search_mode="hybrid")
    assert hits[0].chunk.file_name == "catalog.txt"
    assert set(hits[0].scores) == {"bm25", "keyword", "rrf"}
    assert "falls back to bm25" in caplog.text
    with pytest.raises(EmbeddingModelUnavailableError):
        keyword_only.search("shop", RARE_TERM_QUESTION, search_mode="dense")


def test_keyword_index_follows_every_change(service: KnowledgeBaseService, shop: str) -> None:
    def in_step() -> set[int]:
        chunks, vectors, keywords = index_ids(service, shop)
        assert chunks == vectors == keywords
        return chunks

    before = in_step()
    service.save_file(
        shop, "returns.txt", "退货政策已更新：签收后十五天内可以退货。".encode(), override=True
    )
    service.update_files(shop, ["returns.txt"])
    assert in_step() != before
    assert files(service, "十五天内退货", "bm25")[0] == "returns.txt"

    service.delete_files(shop, ["coupons.txt"])
    in_step()
    assert "coupons.txt" not in files(service, "优惠券兑换现金", "bm25")

    chunk = service.list_chunks(shop, "members.txt")[0]
    service.edit_chunk(shop, chunk.id, "钻石会员可以免费使用贵宾休息室。")
    in_step()
    assert files(service, "贵宾休息室", "bm25") == ["members.txt"]
    assert files(service, "生日礼包", "bm25") == []

    KbMaintenance(service).recreate(shop, force=True)
    in_step()
    assert files(service, RARE_TERM_QUESTION, "bm25")[0] == "catalog.txt"


def test_a_lost_keyword_index_is_rebuilt_from_the_database(
    service: KnowledgeBaseService, shop: str, counting_embedder: CountingEmbedder
) -> None:
    service.keywords_for(service.kb_row(shop)).drop()
    embedded = counting_embedder.texts_embedded
    # Found by check, refilled by the first keyword search, with no embedding at all.
    assert KbMaintenance(service).check(shop).chunks_without_keywords
    assert files(service, RARE_TERM_QUESTION, "bm25")[0] == "catalog.txt"
    assert KbMaintenance(service).check(shop).consistent
    assert counting_embedder.texts_embedded == embedded


def test_check_and_repair_cover_the_keyword_index(
    service: KnowledgeBaseService, shop: str, counting_embedder: CountingEmbedder
) -> None:
    row = service.kb_row(shop)
    keywords = service.keywords_for(row)
    catalog_ids = [chunk.id for chunk in service.list_chunks(shop, "catalog.txt")]
    # A crash after the vector save and before the keyword commit, and a stray entry.
    keywords.update(delete=catalog_ids, analyzer_version=service.analyzer.version)
    writer = service.writer(row)
    writer.update_keywords(add=writer.keyword_entries([(999_999, "量子纠缠蒸馏器")]))
    assert files(service, RARE_TERM_QUESTION, "bm25") == []

    maintenance = KbMaintenance(service)
    found = maintenance.check(shop)
    assert found.chunks_without_keywords == sorted(catalog_ids)
    assert found.keywords_without_chunks == [999_999]
    embedded = counting_embedder.texts_embedded
    maintenance.repair(shop)
    assert maintenance.check(shop).consistent
    assert counting_embedder.texts_embedded == embedded
    assert files(service, RARE_TERM_QUESTION, "bm25")[0] == "catalog.txt"


def test_terms_from_an_older_analyzer_are_replaced(
    service: KnowledgeBaseService, shop: str
) -> None:
    keywords = service.keywords_for(service.kb_row(shop))
    keywords.update(analyzer_version="older")  # as if written by another analyzer version
    assert not KbMaintenance(service).check(shop).consistent
    assert files(service, RARE_TERM_QUESTION, "bm25")[0] == "catalog.txt"
    assert keywords.analyzer_version == service.analyzer.version
    assert KbMaintenance(service).check(shop).consistent


def test_an_unchanged_rerun_restores_missing_terms_without_embedding(
    service: KnowledgeBaseService, shop: str, counting_embedder: CountingEmbedder
) -> None:
    service.keywords_for(service.kb_row(shop)).drop()
    embedded = counting_embedder.texts_embedded
    report = KbMaintenance(service).recreate(shop)
    assert sorted(report.files_unchanged) == sorted(SHOP)
    assert counting_embedder.texts_embedded == embedded
    chunks, _, keywords = index_ids(service, shop)
    assert keywords == chunks
