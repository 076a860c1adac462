"""Reranking inside a search: the cross-encoder orders the fused candidates and sets the score."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.retrieval.reranker import load_reranker
from kb_server.settings import Settings
from tests.unit.conftest import CountingEmbedder
from tests.unit.retrieval.test_reranker import TINY_RERANKER, tiny_reranker_settings

pytestmark = pytest.mark.usefixtures("fresh_reranker_cache")

FILES = {
    "returns.txt": "退货政策：签收后七天内可以申请退货，退款三个工作日内返回。",
    "shipping.txt": "配送说明：订单在二十四小时内发货，偏远地区的配送会延长。",
    "invoice.txt": "发票开具：下单时填写抬头和税号，电子发票发送到邮箱。",
    "members.txt": "会员权益：金卡会员享受免运费和生日礼包，退货也免运费。",
}
QUESTION = "退货和退款怎么办理"


@pytest.fixture
def reranking_service(
    kb_settings: Settings, counting_embedder: CountingEmbedder, tiny_cross_encoder_dir: Path
) -> KnowledgeBaseService:
    settings = tiny_reranker_settings(kb_settings, tiny_cross_encoder_dir)
    service = KnowledgeBaseService(settings, embedder_provider=lambda _: counting_embedder)
    service.create_kb("shop")
    for name, text in FILES.items():
        service.save_file("shop", name, text.encode(), override=True)
    service.add_files("shop", list(FILES))
    return service


def test_reranked_hits_follow_the_cross_encoder(reranking_service: KnowledgeBaseService) -> None:
    hits = reranking_service.search("shop", QUESTION, top_k=4, search_mode="dense")
    reranker = load_reranker(reranking_service.settings)
    assert reranker is not None
    assert reranker.name == TINY_RERANKER
    expected = reranker.score(QUESTION, [hit.chunk.text for hit in hits])
    assert [hit.score for hit in hits] == pytest.approx(expected)
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    assert all(hit.scores["rerank"] == hit.score and "dense" in hit.scores for hit in hits)


def test_rerank_can_be_turned_off_per_request(reranking_service: KnowledgeBaseService) -> None:
    plain = reranking_service.search("shop", QUESTION, top_k=4, search_mode="hybrid", rerank=False)
    assert all("rerank" not in hit.scores for hit in plain)
    reranked = reranking_service.search("shop", QUESTION, top_k=4, search_mode="hybrid")
    assert {hit.chunk.id for hit in reranked} == {hit.chunk.id for hit in plain}
    assert all("rerank" in hit.scores and "rrf" in hit.scores for hit in reranked)


def test_the_threshold_applies_to_the_reranker_probability(
    reranking_service: KnowledgeBaseService,
) -> None:
    hits = reranking_service.search("shop", QUESTION, top_k=4)
    middle = (hits[0].score + hits[-1].score) / 2
    kept = reranking_service.search("shop", QUESTION, top_k=4, score_threshold=middle)
    assert [hit.chunk.id for hit in kept] == [hit.chunk.id for hit in hits if hit.score >= middle]
    assert 0 < len(kept) < len(hits)


def test_only_the_best_candidates_are_reranked(
    kb_settings: Settings, counting_embedder: CountingEmbedder, tiny_cross_encoder_dir: Path
) -> None:
    values = tiny_reranker_settings(kb_settings, tiny_cross_encoder_dir).model_dump()
    values["retrieval"]["reranker"]["candidates"] = 2
    service = KnowledgeBaseService(
        Settings.model_validate(values), embedder_provider=lambda _: counting_embedder
    )
    service.create_kb("shop")
    for name, text in FILES.items():
        service.save_file("shop", name, text.encode(), override=True)
    service.add_files("shop", list(FILES))
    fused = service.search("shop", QUESTION, top_k=4, rerank=False)
    reranked = service.search("shop", QUESTION, top_k=4)
    assert len(reranked) == 2
    assert {hit.chunk.id for hit in reranked} == {hit.chunk.id for hit in fused[:2]}
