"""The VectorStore contract, run against every entry of VECTOR_STORES.

Vectors are random unit vectors with fixed seeds; no embedding model is involved.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from kb_server.settings import Settings, load_settings
from kb_server.stores.base import VectorLocation, VectorStore
from kb_server.stores.registry import VECTOR_STORES, open_vector_store

DIMENSION = 16
StoreOpener = Callable[[int], VectorStore]


def unit_vectors(count: int, seed: int, dimension: int = DIMENSION) -> NDArray[np.float32]:
    vectors = np.random.default_rng(seed).standard_normal((count, dimension), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


@pytest.fixture(params=sorted(VECTOR_STORES))
def vs_type(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def store_settings(vs_type: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Settings whose ``vs_type`` store can be opened: pg gets a fresh PostgreSQL database."""
    if vs_type == "pg":
        pg_url: str = request.getfixturevalue("pg_url")
        return load_settings(kb_root=tmp_path / "kb_root", vector_store={"pg": {"url": pg_url}})
    return load_settings(kb_root=tmp_path / "kb_root")


@pytest.fixture
def open_store(vs_type: str, store_settings: Settings, tmp_path: Path) -> StoreOpener:
    """Opens the store kept at one fixed location, as often as a test asks."""

    def opener(dimension: int) -> VectorStore:
        location = VectorLocation(
            kb_id=1,
            embed_model="model",
            dimension=dimension,
            directory=tmp_path / "vector_store" / "model",
        )
        return open_vector_store(vs_type, location, store_settings)

    return opener


@pytest.fixture
def store(open_store: StoreOpener) -> VectorStore:
    return open_store(DIMENSION)


@pytest.fixture
def vectors() -> NDArray[np.float32]:
    return unit_vectors(50, seed=1)


@pytest.fixture
def ids() -> list[int]:
    return list(range(1000, 1050))


@pytest.fixture
def filled_store(store: VectorStore, ids: list[int], vectors: NDArray[np.float32]) -> VectorStore:
    store.add(ids, vectors)
    return store


def test_search_finds_the_exact_vector_first_with_score_one(
    filled_store: VectorStore, ids: list[int], vectors: NDArray[np.float32]
) -> None:
    for row in (0, 17, 49):
        best = filled_store.search(vectors[row], 5)[0]
        assert best.id == ids[row]
        assert best.score == pytest.approx(1.0, abs=1e-5)


def test_scores_are_cosine_similarities_best_first(
    filled_store: VectorStore, ids: list[int], vectors: NDArray[np.float32]
) -> None:
    query = unit_vectors(1, seed=2)[0]
    cosines = vectors @ query
    expected_rows = np.argsort(-cosines)[:10]

    hits = filled_store.search(query, 10)

    assert [hit.id for hit in hits] == [ids[row] for row in expected_rows]
    assert [hit.score for hit in hits] == pytest.approx(cosines[expected_rows].tolist(), abs=1e-5)


def test_similarities_score_given_ids_and_skip_absent_ones(
    filled_store: VectorStore, ids: list[int], vectors: NDArray[np.float32]
) -> None:
    query = unit_vectors(1, seed=3)[0]
    found = filled_store.similarities(query, [ids[3], ids[40], 999_999])

    assert set(found) == {ids[3], ids[40]}
    assert found[ids[3]] == pytest.approx(float(vectors[3] @ query), abs=1e-5)
    assert found[ids[40]] == pytest.approx(float(vectors[40] @ query), abs=1e-5)


def test_delete_removes_ids_everywhere_and_returns_the_count(
    filled_store: VectorStore, ids: list[int], vectors: NDArray[np.float32]
) -> None:
    removed = filled_store.delete([ids[0], ids[1], 999_999])

    assert removed == 2
    assert filled_store.count() == 48
    assert filled_store.ids() == set(ids[2:])
    assert ids[0] not in {hit.id for hit in filled_store.search(vectors[0], 50)}
    assert filled_store.delete([ids[0]]) == 0


def test_add_with_an_existing_id_replaces_its_vector(store: VectorStore) -> None:
    first, second = unit_vectors(2, seed=3)
    store.add([7], first[np.newaxis])
    store.add([7], second[np.newaxis])

    assert store.count() == 1
    assert store.ids() == {7}
    assert store.search(second, 3)[0].score == pytest.approx(1.0, abs=1e-5)
    assert store.search(first, 3)[0].score == pytest.approx(float(first @ second), abs=1e-5)


def test_allowed_ids_restrict_the_candidates(
    filled_store: VectorStore, ids: list[int], vectors: NDArray[np.float32]
) -> None:
    allowed_rows = [3, 10, 20]
    allowed = {ids[row] for row in allowed_rows} | {424_242}
    cosines = vectors[allowed_rows] @ vectors[0]
    expected = [ids[allowed_rows[i]] for i in np.argsort(-cosines)]

    hits = filled_store.search(vectors[0], 10, allowed_ids=allowed)

    assert [hit.id for hit in hits] == expected
    assert filled_store.search(vectors[0], 10, allowed_ids=set()) == []


def test_k_larger_than_the_count_returns_every_vector(store: VectorStore) -> None:
    store.add([1, 2, 3], unit_vectors(3, seed=4))

    hits = store.search(unit_vectors(1, seed=5)[0], 100)

    assert sorted(hit.id for hit in hits) == [1, 2, 3]


def test_empty_store_finds_nothing(store: VectorStore) -> None:
    query = unit_vectors(1, seed=6)[0]

    assert store.count() == 0
    assert store.ids() == set()
    assert store.search(query, 5) == []
    assert store.search(query, 5, allowed_ids={1, 2}) == []


def test_save_then_reopen_gives_the_same_ids_and_results(
    filled_store: VectorStore, ids: list[int], open_store: StoreOpener
) -> None:
    filled_store.delete(ids[:5])
    filled_store.save()
    queries = unit_vectors(3, seed=7)

    reopened = open_store(DIMENSION)

    assert reopened.ids() == filled_store.ids()
    assert reopened.count() == filled_store.count()
    for query in queries:
        before = filled_store.search(query, 8)
        after = reopened.search(query, 8)
        assert [hit.id for hit in after] == [hit.id for hit in before]
        assert [hit.score for hit in after] == pytest.approx([hit.score for hit in before])


def test_saving_an_empty_store_reopens_empty(store: VectorStore, open_store: StoreOpener) -> None:
    store.save()

    assert open_store(DIMENSION).count() == 0


def test_vectors_of_the_wrong_dimension_are_rejected(store: VectorStore) -> None:
    with pytest.raises(ValueError, match="dimension") as add_error:
        store.add([1, 2], unit_vectors(2, seed=8, dimension=DIMENSION + 1))
    with pytest.raises(ValueError, match="dimension") as search_error:
        store.search(unit_vectors(1, seed=9, dimension=DIMENSION - 1)[0], 3)

    # The message names both sizes, so a wrong model or a stale index is easy to spot.
    assert {str(DIMENSION), str(DIMENSION + 1)} <= set(re.findall(r"\d+", str(add_error.value)))
    assert {str(DIMENSION), str(DIMENSION - 1)} <= set(re.findall(r"\d+", str(search_error.value)))
    assert store.count() == 0


def test_ids_and_vectors_must_pair_up(store: VectorStore) -> None:
    with pytest.raises(ValueError, match="ids"):
        store.add([1, 2, 3], unit_vectors(2, seed=10))


def test_k_must_be_positive(filled_store: VectorStore, vectors: NDArray[np.float32]) -> None:
    with pytest.raises(ValueError, match="k"):
        filled_store.search(vectors[0], 0)


def test_unknown_store_type_lists_the_known_ones(tmp_path: Path) -> None:
    location = VectorLocation(kb_id=1, embed_model="model", dimension=DIMENSION, directory=tmp_path)
    settings = load_settings(kb_root=tmp_path / "kb_root")

    with pytest.raises(ValueError, match="faiss") as error:
        open_vector_store("no-such-store", location, settings)

    assert "pg" in str(error.value)
