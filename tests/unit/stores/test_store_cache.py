"""VectorStoreCache: LRU bound, reloads after saves by other processes, eviction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from kb_server.settings import load_settings
from kb_server.stores.base import VectorLocation, VectorStore
from kb_server.stores.cache import VectorStoreCache
from kb_server.stores.faiss_store import FaissStore
from kb_server.stores.registry import open_vector_store
from kb_server.stores.validation import DimensionMismatchError

DIMENSION = 8


def unit_vectors(count: int, seed: int) -> NDArray[np.float32]:
    vectors = np.random.default_rng(seed).standard_normal((count, DIMENSION), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def at(directory: Path, dimension: int = DIMENSION) -> VectorLocation:
    return VectorLocation(kb_id=1, embed_model="model", dimension=dimension, directory=directory)


class CountingOpener:
    """The real opener, counting how often each directory is opened."""

    def __init__(self) -> None:
        self.opened: list[Path] = []
        self.settings = load_settings()

    def __call__(self, vs_type: str, location: VectorLocation) -> VectorStore:
        self.opened.append(location.directory)
        return open_vector_store(vs_type, location, self.settings)


@pytest.fixture
def opener() -> CountingOpener:
    return CountingOpener()


@pytest.fixture
def cache(opener: CountingOpener) -> VectorStoreCache:
    return VectorStoreCache(capacity=2, opener=opener)


def test_an_unchanged_store_is_opened_once(
    cache: VectorStoreCache, opener: CountingOpener, tmp_path: Path
) -> None:
    first = cache.get("faiss", at(tmp_path / "a", DIMENSION))
    second = cache.get("faiss", at(tmp_path / "a", DIMENSION))

    assert second is first
    assert opener.opened == [(tmp_path / "a").resolve()]


def test_capacity_drops_the_least_recently_used_store(
    cache: VectorStoreCache, opener: CountingOpener, tmp_path: Path
) -> None:
    a, b, c = (tmp_path / name for name in "abc")
    store_a = cache.get("faiss", at(a, DIMENSION))
    cache.get("faiss", at(b, DIMENSION))
    cache.get("faiss", at(a, DIMENSION))
    cache.get("faiss", at(c, DIMENSION))

    assert len(cache) == 2
    assert cache.get("faiss", at(a, DIMENSION)) is store_a
    cache.get("faiss", at(b, DIMENSION))
    assert [path.name for path in opener.opened] == ["a", "b", "c", "b"]


def test_a_save_by_another_process_makes_get_reload(
    cache: VectorStoreCache, tmp_path: Path
) -> None:
    directory = tmp_path / "kb" / "vector_store" / "model"
    cached = cache.get("faiss", at(directory, DIMENSION))
    cached.add([1, 2], unit_vectors(2, seed=1))
    cached.save()
    # A second instance on the same directory stands in for another process.
    other = FaissStore.open(directory, DIMENSION)
    other.add([3], unit_vectors(1, seed=2))
    other.save()

    reloaded = cache.get("faiss", at(directory, DIMENSION))

    assert reloaded is not cached
    assert reloaded.ids() == {1, 2, 3}


def test_own_saves_do_not_reload(
    cache: VectorStoreCache, opener: CountingOpener, tmp_path: Path
) -> None:
    store = cache.get("faiss", at(tmp_path / "a", DIMENSION))
    for seed in range(3):
        store.add([seed], unit_vectors(1, seed=seed))
        store.save()
        assert cache.get("faiss", at(tmp_path / "a", DIMENSION)) is store

    assert len(opener.opened) == 1


def test_evict_drops_the_stores_of_a_directory_and_below(
    cache: VectorStoreCache, opener: CountingOpener, tmp_path: Path
) -> None:
    kb = tmp_path / "kb"
    model_a = cache.get("faiss", at(kb / "vector_store" / "model-a", DIMENSION))
    cache.get("faiss", at(kb / "vector_store" / "model-b", DIMENSION))

    assert cache.evict(tmp_path / "kb1") == 0
    assert cache.evict(kb) == 2
    assert len(cache) == 0
    assert cache.get("faiss", at(kb / "vector_store" / "model-a", DIMENSION)) is not model_a
    assert len(opener.opened) == 3


def test_evict_of_one_store_keeps_the_others(cache: VectorStoreCache, tmp_path: Path) -> None:
    kept = cache.get("faiss", at(tmp_path / "a", DIMENSION))
    cache.get("faiss", at(tmp_path / "b", DIMENSION))

    assert cache.evict(tmp_path / "b") == 1
    assert cache.get("faiss", at(tmp_path / "a", DIMENSION)) is kept


def test_another_dimension_goes_through_the_opener(cache: VectorStoreCache, tmp_path: Path) -> None:
    unsaved = cache.get("faiss", at(tmp_path / "a", DIMENSION))
    assert cache.get("faiss", at(tmp_path / "a", DIMENSION * 2)).dimension == DIMENSION * 2

    saved = cache.get("faiss", at(tmp_path / "b", DIMENSION))
    saved.save()
    with pytest.raises(DimensionMismatchError):
        cache.get("faiss", at(tmp_path / "b", DIMENSION * 2))
    assert unsaved.dimension == DIMENSION


def test_capacity_must_be_positive(opener: CountingOpener) -> None:
    with pytest.raises(ValueError, match="capacity"):
        VectorStoreCache(capacity=0, opener=opener)
