"""The pgvector store: shared by processes, catalogued, exact under a filter, FAISS's scores."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from sqlalchemy import text

from kb_server.settings import Settings, load_settings
from kb_server.stores.base import VectorLocation
from kb_server.stores.faiss_store import FaissStore
from kb_server.stores.pg_engine import PgStoreConfigError, engine_for, pg_store_url
from kb_server.stores.pg_vector import CATALOG, PgVectorStore, table_name
from kb_server.stores.validation import DimensionMismatchError

DIMENSION = 12


def unit_vectors(count: int, seed: int, dimension: int = DIMENSION) -> NDArray[np.float32]:
    vectors = np.random.default_rng(seed).standard_normal((count, dimension), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


@pytest.fixture
def pg_settings(tmp_path: Path, pg_url: str) -> Settings:
    return load_settings(kb_root=tmp_path / "kb_root", vector_store={"pg": {"url": pg_url}})


def location(tmp_path: Path, dimension: int = DIMENSION, kb_id: int = 3) -> VectorLocation:
    return VectorLocation(
        kb_id=kb_id, embed_model="BAAI/bge-small-zh-v1.5", dimension=dimension, directory=tmp_path
    )


def tables(settings: Settings) -> set[str]:
    engine = engine_for(pg_store_url(settings), 1)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        return {str(row[0]) for row in rows}


def test_two_opened_stores_see_each_others_writes(tmp_path: Path, pg_settings: Settings) -> None:
    first = PgVectorStore.open(location(tmp_path), pg_settings)
    second = PgVectorStore.open(location(tmp_path), pg_settings)
    vectors = unit_vectors(4, seed=1)

    first.add([1, 2, 3, 4], vectors)
    assert second.ids() == {1, 2, 3, 4}
    assert second.search(vectors[2], 1)[0].id == 3

    second.delete([3])
    assert first.count() == 3


def test_reopening_with_another_dimension_raises(tmp_path: Path, pg_settings: Settings) -> None:
    PgVectorStore.open(location(tmp_path), pg_settings)

    with pytest.raises(DimensionMismatchError) as error:
        PgVectorStore.open(location(tmp_path, dimension=DIMENSION + 4), pg_settings)

    assert (error.value.expected, error.value.actual) == (DIMENSION + 4, DIMENSION)


def test_drop_removes_the_table_and_its_catalog_row(tmp_path: Path, pg_settings: Settings) -> None:
    store = PgVectorStore.open(location(tmp_path), pg_settings)
    store.add([1], unit_vectors(1, seed=2))
    name = table_name(3, "BAAI/bge-small-zh-v1.5")
    assert name in tables(pg_settings)

    store.drop()

    assert name not in tables(pg_settings)
    engine = engine_for(pg_store_url(pg_settings), 1)
    with engine.connect() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {CATALOG}")).scalar_one() == 0
    assert store.count() == 0
    assert store.search(unit_vectors(1, seed=3)[0], 3) == []
    # Written again, the table comes back.
    store.add([5], unit_vectors(1, seed=4))
    assert PgVectorStore.open(location(tmp_path), pg_settings).ids() == {5}


def test_each_kb_and_model_gets_its_own_table(tmp_path: Path, pg_settings: Settings) -> None:
    one = PgVectorStore.open(location(tmp_path, kb_id=1), pg_settings)
    other_kb = PgVectorStore.open(location(tmp_path, kb_id=2), pg_settings)
    other_model = PgVectorStore.open(
        VectorLocation(kb_id=1, embed_model="m3e-base", dimension=8, directory=tmp_path),
        pg_settings,
    )
    one.add([1], unit_vectors(1, seed=5))

    assert other_kb.count() == 0
    assert other_model.count() == 0
    assert table_name(1, "a") != table_name(1, "b") != table_name(2, "a")


def test_a_sqlite_database_gives_a_clear_error(tmp_path: Path) -> None:
    settings = load_settings(kb_root=tmp_path / "kb_root")

    with pytest.raises(PgStoreConfigError, match="KB_DATABASE_URL"):
        PgVectorStore.open(location(tmp_path), settings)


def test_allowed_ids_give_k_hits_from_a_small_set_among_many(
    tmp_path: Path, pg_settings: Settings
) -> None:
    store = PgVectorStore.open(location(tmp_path), pg_settings)
    vectors = unit_vectors(3000, seed=6)
    store.add(list(range(3000)), vectors)
    allowed = list(range(2990, 3000))
    query = vectors[0]
    expected = [2990 + int(i) for i in np.argsort(-(vectors[2990:] @ query))[:5]]

    hits = store.search(query, 5, allowed_ids=allowed)

    assert [hit.id for hit in hits] == expected


def test_concurrent_opens_of_a_new_store_all_succeed(tmp_path: Path, pg_settings: Settings) -> None:
    def open_and_count(kb_id: int) -> int:
        return PgVectorStore.open(location(tmp_path, kb_id=kb_id), pg_settings).count()

    with ThreadPoolExecutor(8) as pool:
        counts = list(pool.map(open_and_count, [7] * 8 + [8] * 8))

    assert counts == [0] * 16


def test_scores_equal_faiss_scores(tmp_path: Path, pg_settings: Settings) -> None:
    vectors = unit_vectors(200, seed=7)
    ids = list(range(10, 210))
    pg_store = PgVectorStore.open(location(tmp_path), pg_settings)
    faiss_store = FaissStore(tmp_path / "faiss", DIMENSION)
    pg_store.add(ids, vectors)
    faiss_store.add(ids, vectors)

    for query in unit_vectors(5, seed=8):
        pg_hits = pg_store.search(query, 10)
        faiss_hits = faiss_store.search(query, 10)
        assert [hit.id for hit in pg_hits] == [hit.id for hit in faiss_hits]
        assert [hit.score for hit in pg_hits] == pytest.approx(
            [hit.score for hit in faiss_hits], abs=1e-5
        )
        some = ids[::17]
        pg_scores = pg_store.similarities(query, some)
        faiss_scores = faiss_store.similarities(query, some)
        assert pg_scores == pytest.approx(faiss_scores, abs=1e-5)


def test_get_vectors_returns_stored_rows_in_the_order_asked(
    tmp_path: Path, pg_settings: Settings
) -> None:
    store = PgVectorStore.open(location(tmp_path), pg_settings)
    vectors = unit_vectors(3, seed=9)
    store.add([1, 2, 3], vectors)

    found, matrix = store.get_vectors([3, 99, 1])

    assert found == [3, 1]
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix, vectors[[2, 0]])


def test_invalid_input_is_rejected_like_faiss(tmp_path: Path, pg_settings: Settings) -> None:
    store = PgVectorStore.open(location(tmp_path), pg_settings)
    vector = unit_vectors(1, seed=10)
    bad = vector.copy()
    bad[0, 0] = np.nan

    with pytest.raises(ValueError, match="NaN"):
        store.add([1], bad)
    with pytest.raises(ValueError, match="non-negative"):
        store.add([-1], vector)
    with pytest.raises(ValueError, match="unique"):
        store.add([1, 1], np.vstack([vector, vector]))
    assert store.count() == 0
