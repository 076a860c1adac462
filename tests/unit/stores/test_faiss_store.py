"""FAISS-specific behaviour: files on disk, crash leftovers, bad indexes, threads."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import faiss
import numpy as np
import pytest
from numpy.typing import NDArray

from kb_server.settings import VectorStoreSettings
from kb_server.stores.faiss_store import (
    INDEX_FILE,
    META_FILE,
    STALE_TEMP_AGE_S,
    CorruptIndexError,
    FaissStore,
)
from kb_server.stores.validation import DimensionMismatchError

DIMENSION = 8


def unit_vectors(count: int, seed: int, dimension: int = DIMENSION) -> NDArray[np.float32]:
    vectors = np.random.default_rng(seed).standard_normal((count, dimension), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "kb" / "vector_store" / "model"


@pytest.fixture
def saved_store(directory: Path) -> FaissStore:
    store = FaissStore.open(directory, DIMENSION)
    store.add([1, 2, 3], unit_vectors(3, seed=1))
    store.save()
    return store


def test_saved_directory_holds_only_the_faiss_index_and_meta(
    saved_store: FaissStore, directory: Path
) -> None:
    assert sorted(path.name for path in directory.iterdir()) == [INDEX_FILE, META_FILE]
    # FAISS's own binary format, starting with its IndexIDMap2 tag, not a pickle.
    assert (directory / INDEX_FILE).read_bytes()[:4] == b"IxM2"
    meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    assert meta == {"format_version": 1, "dimension": DIMENSION, "metric": "ip", "count": 3}


def test_nothing_is_written_until_save(directory: Path) -> None:
    store = FaissStore.open(directory, DIMENSION)
    store.add([1], unit_vectors(1, seed=2))

    assert not directory.exists()


def test_a_directory_with_chinese_characters_works(tmp_path: Path) -> None:
    directory = tmp_path / "知识库" / "vector_store" / "bge-small-zh"
    store = FaissStore.open(directory, DIMENSION)
    store.add([5], unit_vectors(1, seed=3))
    store.save()

    assert FaissStore.open(directory, DIMENSION).ids() == {5}


def test_a_stray_temp_file_does_not_break_open(saved_store: FaissStore, directory: Path) -> None:
    leftover = directory / f".{INDEX_FILE}.0123456789abcdef.tmp"
    leftover.write_bytes(b"half-written index from a crashed save")

    reopened = FaissStore.open(directory, DIMENSION)

    assert reopened.ids() == {1, 2, 3}
    # A recent temp file may belong to another process's save in progress: left alone.
    assert leftover.exists()


def test_a_stale_temp_file_is_removed_on_open(saved_store: FaissStore, directory: Path) -> None:
    leftover = directory / f".{META_FILE}.0123456789abcdef.tmp"
    leftover.write_bytes(b"{")
    long_ago = time.time() - STALE_TEMP_AGE_S - 60
    os.utime(leftover, (long_ago, long_ago))

    reopened = FaissStore.open(directory, DIMENSION)

    assert reopened.count() == 3
    assert not leftover.exists()


def test_reopening_with_another_dimension_fails_clearly(
    saved_store: FaissStore, directory: Path
) -> None:
    with pytest.raises(DimensionMismatchError) as error:
        FaissStore.open(directory, DIMENSION * 2)

    assert (error.value.expected, error.value.actual) == (DIMENSION * 2, DIMENSION)


@pytest.mark.parametrize(
    "content", [b"", b"this is not a faiss index at all", b"IxM2\x08\x00\x00\x00"]
)
def test_a_garbage_index_file_fails_clearly(directory: Path, content: bytes) -> None:
    directory.mkdir(parents=True)
    (directory / INDEX_FILE).write_bytes(content)

    with pytest.raises(CorruptIndexError, match=INDEX_FILE):
        FaissStore.open(directory, DIMENSION)


def test_an_index_of_another_kind_is_refused(directory: Path) -> None:
    directory.mkdir(parents=True)
    faiss.write_index(faiss.IndexFlatL2(DIMENSION), str(directory / INDEX_FILE))

    with pytest.raises(CorruptIndexError, match="IndexFlatIP"):
        FaissStore.open(directory, DIMENSION)


def test_a_newer_format_version_is_refused(saved_store: FaissStore, directory: Path) -> None:
    meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    (directory / META_FILE).write_text(json.dumps({**meta, "format_version": 99}))

    with pytest.raises(CorruptIndexError, match="format version"):
        FaissStore.open(directory, DIMENSION)


def test_allowed_ids_are_filtered_inside_the_scan(directory: Path) -> None:
    store = FaissStore.open(directory, DIMENSION)
    vectors = unit_vectors(1000, seed=4)
    store.add(list(range(1000)), vectors)
    query = vectors[0]
    farthest = {int(row) for row in np.argsort(vectors @ query)[:5]}

    hits = store.search(query, 5, allowed_ids=farthest)

    # Filtering after an unrestricted top-5 would have found none of them.
    assert {hit.id for hit in hits} == farthest


@pytest.mark.parametrize(
    ("ids", "vectors", "problem"),
    [
        ([1, 2], np.full((2, DIMENSION), np.nan, dtype=np.float32), "NaN"),
        ([1, 2], np.ones((2, DIMENSION), dtype=np.int32), "floating point"),
        ([1, -2], unit_vectors(2, seed=5), "non-negative"),
        ([3, 3], unit_vectors(2, seed=6), "unique"),
        ([1], unit_vectors(1, seed=7)[0], "2-D"),
    ],
)
def test_bad_input_to_add_is_rejected(
    directory: Path, ids: list[int], vectors: NDArray[np.float32], problem: str
) -> None:
    store = FaissStore.open(directory, DIMENSION)

    with pytest.raises(ValueError, match=problem):
        store.add(ids, vectors)
    assert store.count() == 0


def test_changed_on_disk_sees_other_saves_but_not_its_own(
    saved_store: FaissStore, directory: Path
) -> None:
    assert not saved_store.changed_on_disk()

    other = FaissStore.open(directory, DIMENSION)
    other.add([4], unit_vectors(1, seed=8))
    other.save()

    assert saved_store.changed_on_disk()
    assert not other.changed_on_disk()


def test_configured_threads_are_set_per_call_in_any_thread_and_then_restored(
    directory: Path,
) -> None:
    store = FaissStore.open(directory, DIMENSION, VectorStoreSettings(faiss_threads=1))
    store.add([1], unit_vectors(1, seed=9))
    seen: list[tuple[int, int]] = []

    def search_in_fresh_thread() -> None:
        faiss.omp_set_num_threads(3)
        hits = store.search(unit_vectors(1, seed=10)[0], 1)
        seen.append((hits[0].id, faiss.omp_get_max_threads()))

    worker = threading.Thread(target=search_in_fresh_thread)
    worker.start()
    worker.join()

    # The search ran (in a thread the store never saw) and left the thread's own count.
    assert seen == [(1, 3)]


def test_concurrent_adds_deletes_and_searches_stay_consistent(directory: Path) -> None:
    store = FaissStore.open(directory, DIMENSION)
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        for batch in range(20):
            first = offset + batch * 10
            store.add(list(range(first, first + 10)), unit_vectors(10, seed=first))
            store.delete([first])

    def reader(seed: int) -> None:
        for query in unit_vectors(100, seed=seed):
            hits = store.search(query, 5)
            if any(hit.id < 0 for hit in hits):
                errors.append(AssertionError(f"padding leaked: {hits}"))

    threads = [threading.Thread(target=writer, args=(n * 10_000,)) for n in range(3)]
    threads += [threading.Thread(target=reader, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert store.count() == 3 * 20 * 9
    assert len(store.ids()) == store.count()
