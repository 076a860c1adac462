"""The real MiniLM embedder: shapes, norms, batching, ranking and the per-process cache."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from kb_server.embedding import Embedder, get_embedder
from kb_server.settings import EmbeddingSettings

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
SENTENCES = [
    "The cat sat quietly on the warm windowsill.",
    "Interest rates were raised by the central bank this quarter.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar.",
    "向量检索把文本变成向量。",
    "A short one.",
]


def test_vectors_have_the_model_dimension_and_unit_norm(embedder: Embedder) -> None:
    vectors = embedder.embed_documents(SENTENCES)

    assert embedder.dimension == 384
    assert vectors.shape == (len(SENTENCES), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_query_vector_is_one_unit_norm_row(embedder: Embedder) -> None:
    vector = embedder.embed_query("Where did the cat sit?")

    assert vector.shape == (384,)
    assert vector.dtype == np.float32
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_empty_input_gives_an_empty_matrix(embedder: Embedder) -> None:
    vectors = embedder.embed_documents([])

    assert vectors.shape == (0, 384)
    assert vectors.dtype == np.float32


def test_a_single_string_is_rejected_rather_than_split_into_characters(
    embedder: Embedder,
) -> None:
    with pytest.raises(TypeError):
        embedder.embed_documents("not a list")


def test_batches_give_the_same_vectors_as_one_text_at_a_time(embedder: Embedder) -> None:
    small_batches = get_embedder(
        EmbeddingSettings(model=MINILM, fallback_model=None, device="cpu", batch_size=2)
    )

    together = small_batches.embed_documents(SENTENCES)
    one_by_one = np.stack([embedder.embed_documents([text])[0] for text in SENTENCES])

    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_english_query_ranks_the_matching_sentence_first(embedder: Embedder) -> None:
    documents = embedder.embed_documents(SENTENCES[:3])

    scores = documents @ embedder.embed_query("How do plants make food from light?")

    assert int(np.argmax(scores)) == 2


def test_embedder_is_named_after_the_loaded_model(embedder: Embedder) -> None:
    assert embedder.name == MINILM


def test_same_settings_give_the_identical_embedder(embedder: Embedder) -> None:
    settings = EmbeddingSettings(model=MINILM, fallback_model=None, device="cpu")

    assert get_embedder(settings) is embedder
    assert get_embedder(settings) is get_embedder(settings.model_copy())


def test_concurrent_first_requests_get_one_embedder(embedder: Embedder) -> None:
    # batch_size 7 makes this a configuration no other test has asked for yet
    settings = EmbeddingSettings(model=MINILM, fallback_model=None, device="cpu", batch_size=7)
    results: list[Embedder] = []
    start = threading.Barrier(4)

    def ask() -> None:
        start.wait()
        results.append(get_embedder(settings))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 4
    assert all(result is results[0] for result in results)
    assert results[0] is not embedder
