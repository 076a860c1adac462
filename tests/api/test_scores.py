"""One relevance score: every search mode reports ``score`` in [0, 1] with the raw ``scores``
alongside, on search_docs, KB chat, file chat and /v1, and ``score_threshold`` filters on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from kb_server.api.app import create_app
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.retrieval.reranker import clear_reranker_cache
from kb_server.settings import Settings

SEARCH_DOCS = "/knowledge_base/search_docs"
KB_CHAT = "/knowledge_base/chat"
QUESTION = "How does a rocket reach orbit?"
# With all-MiniLM-L6-v2 the invoice and the knitting chunk have a negative cosine to QUESTION
# (about -0.07 and -0.03): the dense score must still be in [0, 1].
FILES = {
    "orbit.txt": "A rocket reaches orbit by burning its fuel in stages.",
    "engine.txt": "The rocket engine test was loud and lasted two minutes.",
    "invoice.txt": "The quarterly invoice total was 4,200 euros.",
    "knitting.txt": "Knitting a wool scarf needs two needles and patience.",
    "bread.txt": "Sourdough bread needs a starter and a long, slow rise.",
}
TINY_RERANKER = "example-org/tiny-reranker"
# (search_mode, rerank) -> the raw scores each hit carries.
MODES: dict[str, tuple[str, bool, set[str]]] = {
    "dense": ("dense", False, {"dense"}),
    "bm25": ("bm25", False, {"bm25", "keyword"}),
    "hybrid": ("hybrid", False, {"dense", "bm25", "keyword", "rrf"}),
    "reranked": ("hybrid", True, {"dense", "bm25", "keyword", "rrf", "rerank"}),
}


@pytest.fixture(scope="session")
def cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny real cross-encoder (random weights): its probabilities are real arithmetic."""
    from tests.tiny_cross_encoder import build_tiny_cross_encoder

    return build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny_cross_encoder"))


@pytest.fixture
def scored_client(api_settings: Settings, cross_encoder_dir: Path) -> Iterator[TestClient]:
    """The API with the tiny reranker configured and the KB "space" holding FILES."""
    values = api_settings.model_dump()
    values["embedding"]["models"][TINY_RERANKER] = {"path": cross_encoder_dir}
    values["retrieval"]["reranker"].update(model=TINY_RERANKER, device="cpu")
    app: FastAPI = create_app(Settings.model_validate(values))
    clear_reranker_cache()
    with TestClient(app) as client:
        service: KnowledgeBaseService = app.state.container.kb_service
        service.create_kb("space")
        for name, text in FILES.items():
            service.save_file("space", name, text.encode(), override=False)
        service.add_files("space", list(FILES))
        yield client
    clear_reranker_cache()


def mode_fields(mode: str) -> dict[str, Any]:
    search_mode, rerank, _ = MODES[mode]
    return {"search_mode": search_mode, "rerank": rerank}


def search(client: TestClient, mode: str, **body: Any) -> list[dict[str, Any]]:
    request = {"knowledge_base_name": "space", "query": QUESTION, "top_k": 10, **body}
    response = client.post(SEARCH_DOCS, json={**request, **mode_fields(mode)})
    assert response.status_code == 200, response.text
    hits: list[dict[str, Any]] = response.json()
    return hits


def kb_chat_docs(client: TestClient, mode: str, **body: Any) -> list[dict[str, Any]]:
    request = {"knowledge_base_name": "space", "query": QUESTION, "top_k": 10, **body}
    request |= {"model_name": "extractive", **mode_fields(mode)}
    response = client.post(KB_CHAT, json=request)
    assert response.status_code == 200, response.text
    docs: list[dict[str, Any]] = response.json()["docs"]
    return docs


@pytest.mark.both_backends
@pytest.mark.parametrize("mode", list(MODES))
def test_every_mode_scores_in_the_unit_interval_with_its_raw_scores(
    scored_client: TestClient, mode: str
) -> None:
    hits = search(scored_client, mode)
    assert hits
    assert all(0.0 <= hit["score"] <= 1.0 for hit in hits)
    assert all(set(hit["scores"]) == MODES[mode][2] for hit in hits)
    if mode != "reranked":  # the tiny reranker's weights are random
        assert hits[0]["metadata"]["file_name"] == "orbit.txt"
    if mode == "dense":
        assert len(hits) == len(FILES)
        assert [hit["score"] for hit in hits] == [max(hit["scores"]["dense"], 0.0) for hit in hits]
        assert any(hit["scores"]["dense"] < 0.0 for hit in hits)
    if mode == "reranked":
        assert all(hit["score"] == hit["scores"]["rerank"] for hit in hits)


@pytest.mark.both_backends
@pytest.mark.parametrize("mode", list(MODES))
def test_the_threshold_filters_on_the_score_in_every_mode(
    scored_client: TestClient, mode: str
) -> None:
    hits = search(scored_client, mode)
    threshold = (hits[0]["score"] + min(hit["score"] for hit in hits)) / 2
    kept = search(scored_client, mode, score_threshold=threshold)
    assert [hit["id"] for hit in kept] == [hit["id"] for hit in hits if hit["score"] >= threshold]
    assert 0 < len(kept) < len(hits)
    chat_kept = kb_chat_docs(scored_client, mode, score_threshold=threshold)
    assert {doc["chunk_id"] for doc in chat_kept} == {hit["id"] for hit in kept}


@pytest.mark.both_backends
@pytest.mark.parametrize("mode", list(MODES))
def test_kb_chat_sources_carry_the_search_scores(scored_client: TestClient, mode: str) -> None:
    by_id = {hit["id"]: hit for hit in search(scored_client, mode)}
    docs = kb_chat_docs(scored_client, mode)
    assert {doc["chunk_id"] for doc in docs} == set(by_id)
    for doc in docs:
        assert doc["score"] == pytest.approx(by_id[doc["chunk_id"]]["score"])
        assert doc["scores"] == pytest.approx(by_id[doc["chunk_id"]]["scores"])


@pytest.mark.both_backends
def test_v1_sources_carry_score_and_raw_scores(scored_client: TestClient) -> None:
    completion = scored_client.post(
        "/v1/chat/completions",
        json={
            "model": "kb/space",
            "messages": [{"role": "user", "content": QUESTION}],
            "search_mode": "dense",
            "rerank": False,
            "top_k": 10,
        },
    )
    assert completion.status_code == 200, completion.text
    docs = completion.json()["docs"]
    assert len(docs) == len(FILES)
    assert all(doc["score"] == max(doc["scores"]["dense"], 0.0) for doc in docs)


@pytest.mark.both_backends
def test_file_chat_sources_carry_score_and_raw_scores(scored_client: TestClient) -> None:
    files = [("files", (name, text.encode())) for name, text in FILES.items()]
    upload = scored_client.post("/knowledge_base/upload_temp_docs", files=files)
    temp_id = upload.json()
    assert temp_id["data"] is not None, upload.text
    body = {"query": QUESTION, "knowledge_id": temp_id["data"]["id"], "top_k": 10}
    answer = scored_client.post("/chat/file_chat", json={**body, **mode_fields("dense")})
    assert answer.status_code == 200, answer.text
    file_docs = answer.json()["docs"]
    assert len(file_docs) == len(FILES)
    assert all(0.0 <= doc["score"] <= 1.0 for doc in file_docs)
    assert any(doc["scores"]["dense"] < 0.0 for doc in file_docs)


@pytest.mark.both_backends
@pytest.mark.parametrize(
    ("path", "threshold"),
    [(SEARCH_DOCS, -0.1), (KB_CHAT, -0.1), (KB_CHAT, 1.5), ("/chat/file_chat", 1.5)],
)
def test_a_threshold_outside_the_score_range_is_a_422(
    scored_client: TestClient, path: str, threshold: float
) -> None:
    body = {"query": QUESTION, "knowledge_base_name": "space", "knowledge_id": "x"}
    response = scored_client.post(path, json={**body, "score_threshold": threshold})
    assert response.status_code == 422
    assert "score_threshold" in response.text


@pytest.mark.both_backends
def test_search_docs_keeps_every_hit_at_a_threshold_of_one_or_more(
    scored_client: TestClient,
) -> None:
    every_hit = search(scored_client, "dense")
    for threshold in (1.0, 2.0):
        assert search(scored_client, "dense", score_threshold=threshold) == every_hit
