"""Moving a knowledge base between FAISS + SQLite and pgvector + PostgreSQL without embedding
again: searches in every mode answer the same before and after, and ``--check`` is clean."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kb_server.embedding.base import Embedder
from kb_server.errors import InvalidInputError
from kb_server.knowledge.maintenance import KbMaintenance
from kb_server.knowledge.migrate import KbMigration, MigrationError, PgNotConfiguredError
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.knowledge.types import KbExistsError
from kb_server.settings import SearchMode, Settings, load_settings
from tests.unit.conftest import MINILM, CountingEmbedder

DOCS = {
    "returns.md": "# 退货政策\n\n商品签收后七天内可以申请无理由退货，退款会在三个工作日内原路返回。"
    "定制商品、已拆封的耳机和生鲜食品不支持无理由退货。\n\n"
    "## 换货\n\n质量问题可以在十五天内换货，运费由商家承担。",
    "shipping.txt": "配送说明：订单在二十四小时内发货，偏远地区的配送时间可能延长两到三天。"
    "大件家具由物流公司送货上门并负责安装。",
    "members.txt": "会员权益：金卡会员享受免运费和生日礼包，积分可以抵扣部分货款，"
    "一百积分抵扣一元。",
    "rockets.md": "# Rockets\n\nRockets reach orbit by burning fuel in stages. Each stage is "
    "dropped when its tanks are empty, so the remaining vehicle is lighter.\n\n"
    "## Reusable boosters\n\nSome first stages land vertically on a drone ship and fly again.",
    "cats.txt": "Cats sleep for most of the day and purr when they are content. A cat's "
    "whiskers help it judge whether it fits through a gap.",
    "coffee.txt": "Espresso is brewed by forcing hot water through finely ground coffee beans "
    "under pressure; a lungo uses more water and tastes more bitter.",
}
# Chosen so that no two hits of a query tie on score in any mode: hybrid clips negative dense
# shares to 0, and hits tied at 0 may come in either order.
QUERIES = (
    "无理由退货多久退款",
    "偏远地区配送时间",
    "积分怎么抵扣",
    "质量问题换货运费",
    "How do rockets reach orbit?",
    "rocket fuel stages",
    "why do cats purr",
    "lungo tastes bitter",
)
MODES: tuple[SearchMode, ...] = ("dense", "bm25", "hybrid")
KB = "shop"
Row = tuple[str, int, str, float]


def build_kb(service: KnowledgeBaseService, vs_type: str | None = None) -> None:
    service.create_kb(KB, vs_type=vs_type)
    for name, text in DOCS.items():
        service.save_file(KB, name, text.encode("utf-8"), override=True)
    assert sorted(service.add_files(KB, list(DOCS)).files_indexed) == sorted(DOCS)


def answers(service: KnowledgeBaseService) -> dict[tuple[str, SearchMode], list[Row]]:
    return {
        (query, mode): [
            (hit.chunk.file_name, hit.chunk.seq, hit.chunk.text, hit.score)
            for hit in service.search(KB, query, top_k=5, search_mode=mode, rerank=False)
        ]
        for query in QUERIES
        for mode in MODES
    }


def assert_same_answers(
    before: dict[tuple[str, SearchMode], list[Row]],
    after: dict[tuple[str, SearchMode], list[Row]],
) -> None:
    for key, rows in before.items():
        _, mode = key
        assert [row[:3] for row in after[key]] == [row[:3] for row in rows], key
        # Dense scores are cosines of the very same vectors. BM25 comes from another engine
        # (tantivy files or PostgreSQL tables, both with one-byte quantized lengths); they
        # agree to about 1e-7 here, the tolerance leaves room for summation order.
        tolerance = 1e-4 if mode == "dense" else 1e-3
        for got, want in zip(after[key], rows, strict=True):
            assert got[3] == pytest.approx(want[3], abs=tolerance), (key, got, want)


def assert_no_ties(found: dict[tuple[str, SearchMode], list[Row]]) -> None:
    for key, rows in found.items():
        scores = [row[3] for row in rows]
        assert len(set(scores)) == len(scores), (key, scores)


def service_on(
    kb_root: Path, embedder: CountingEmbedder, service: KnowledgeBaseService, **options: Any
) -> KnowledgeBaseService:
    """Another service on ``kb_root`` sharing ``service``'s locks (one lock file per KB)."""

    def provide(model: str) -> Embedder:
        assert model == embedder.name
        return embedder

    settings = load_settings(
        kb_root=kb_root, embedding={"model": MINILM}, ocr={"enabled": False}, **options
    )
    return KnowledgeBaseService(settings, embedder_provider=provide, locks=service.locks)


def assert_clean(service: KnowledgeBaseService) -> None:
    found = KbMaintenance(service).check(KB)
    assert found.consistent, found.problems()


def chunk_count(service: KnowledgeBaseService) -> int:
    return service.get_kb(KB).chunk_count


def test_sqlite_faiss_to_postgres_and_back_answers_the_same_without_embedding(
    service: KnowledgeBaseService,
    counting_embedder: CountingEmbedder,
    kb_settings: Settings,
    pg_url: str,
    tmp_path: Path,
) -> None:
    build_kb(service)
    before = answers(service)
    assert_no_ties(before)
    chunks = chunk_count(service)
    embedded = counting_embedder.texts_embedded
    pg = service_on(kb_settings.kb_root, counting_embedder, service, database_url=pg_url)

    there = KbMigration(service, pg).migrate(KB, "pg", delete_source=True)

    assert (there.from_vs_type, there.to_vs_type, there.same_database) == ("faiss", "pg", False)
    assert there.chunks == there.vectors_copied == chunks
    assert there.source_deleted
    assert not service.kb_exists(KB)
    assert pg.kb_row(KB).vs_type == "pg"
    assert_same_answers(before, answers(pg))
    assert_clean(pg)  # the uploaded files stayed in the shared content folder

    sqlite_url = f"sqlite:///{tmp_path / 'back.db'}"
    back_service = service_on(
        kb_settings.kb_root, counting_embedder, service, database_url=sqlite_url
    )
    back = KbMigration(pg, back_service).migrate(KB, "faiss")

    assert (back.chunks, back.vectors_copied, back.source_deleted) == (chunks, chunks, False)
    assert back_service.kb_row(KB).vs_type == "faiss"
    assert_same_answers(before, answers(back_service))
    assert_clean(back_service)
    assert_same_answers(before, answers(pg))  # the source stays
    assert counting_embedder.texts_embedded == embedded


def test_a_copy_keeps_its_source_and_never_shares_its_index_folder(
    service: KnowledgeBaseService,
    counting_embedder: CountingEmbedder,
    kb_settings: Settings,
    pg_url: str,
    tmp_path: Path,
) -> None:
    build_kb(service)
    before = answers(service)
    pg = service_on(kb_settings.kb_root, counting_embedder, service, database_url=pg_url)
    KbMigration(service, pg).migrate(KB, "pg")
    assert service.kb_row(KB).vs_type == "faiss"
    assert_same_answers(before, answers(service))
    assert_clean(service)

    # The source's FAISS files hold this KB's folder: a FAISS copy there is refused.
    other_url = f"sqlite:///{tmp_path / 'other.db'}"
    other = service_on(kb_settings.kb_root, counting_embedder, service, database_url=other_url)
    with pytest.raises(MigrationError, match="not empty"):
        KbMigration(pg, other).migrate(KB, "faiss")
    assert not other.kb_exists(KB)
    assert_same_answers(before, answers(service))
    assert_same_answers(before, answers(pg))


def test_copying_onto_an_existing_kb_is_refused(
    service: KnowledgeBaseService,
    counting_embedder: CountingEmbedder,
    kb_settings: Settings,
    pg_url: str,
) -> None:
    build_kb(service)
    pg = service_on(kb_settings.kb_root, counting_embedder, service, database_url=pg_url)
    pg.create_kb(KB, vs_type="pg")
    with pytest.raises(KbExistsError):
        KbMigration(service, pg).migrate(KB, "pg")
    assert pg.get_kb(KB).chunk_count == 0
    assert chunk_count(service) > 0


@pytest.mark.parametrize("first", ["faiss", "pg"])
def test_switching_the_store_in_one_postgres_database(
    counting_embedder: CountingEmbedder,
    service: KnowledgeBaseService,
    kb_settings: Settings,
    pg_url: str,
    first: str,
) -> None:
    pg = service_on(kb_settings.kb_root, counting_embedder, service, database_url=pg_url)
    build_kb(pg, vs_type=first)
    before = answers(pg)
    embedded = counting_embedder.texts_embedded
    second = "pg" if first == "faiss" else "faiss"
    old_kb = pg.kb_row(KB)
    faiss_folder = pg.vector_location(old_kb).directory

    report = KbMigration(pg, pg).migrate(KB, second)

    assert report.same_database
    assert report.chunks == report.vectors_copied == chunk_count(pg)
    assert pg.kb_row(KB).vs_type == second
    assert pg.kb_row(KB).id == old_kb.id
    assert_same_answers(before, answers(pg))
    assert_clean(pg)
    # The old store is gone: FAISS files, or the pgvector rows.
    assert faiss_folder.exists() == (second == "faiss")
    assert pg.stores.get(first, pg.vector_location(old_kb)).count() == 0
    with pytest.raises(MigrationError, match="already uses"):
        KbMigration(pg, pg).migrate(KB, second)

    KbMigration(pg, pg).migrate(KB, first)
    assert pg.kb_row(KB).vs_type == first
    assert_same_answers(before, answers(pg))
    assert_clean(pg)
    assert counting_embedder.texts_embedded == embedded


def test_a_source_missing_vectors_is_refused_and_leaves_no_partial_copy(
    service: KnowledgeBaseService,
    counting_embedder: CountingEmbedder,
    kb_settings: Settings,
    pg_url: str,
) -> None:
    build_kb(service)
    row = service.kb_row(KB)
    store = service.store_for(row)
    store.delete([min(store.ids())])
    store.save()
    pg = service_on(kb_settings.kb_root, counting_embedder, service, database_url=pg_url)
    with pytest.raises(MigrationError, match="no vector"):
        KbMigration(service, pg).migrate(KB, "pg")
    assert not pg.kb_exists(KB)
    assert service.kb_row(KB).vs_type == "faiss"
    assert (service.paths(KB).content / "cats.txt").is_file()


def test_moves_that_cannot_work_are_refused_before_anything_changes(
    service: KnowledgeBaseService, counting_embedder: CountingEmbedder, tmp_path: Path
) -> None:
    build_kb(service)
    before = answers(service)
    other_db = f"sqlite:///{tmp_path / 'other.db'}"
    other = service_on(service.settings.kb_root, counting_embedder, service, database_url=other_db)
    # Two FAISS stores of one KB name on one KB root would be the same files.
    with pytest.raises(MigrationError, match="same"):
        KbMigration(service, other).migrate(KB, "faiss")
    # No PostgreSQL anywhere: the pg store cannot be opened.
    with pytest.raises(PgNotConfiguredError):
        KbMigration(service, service).migrate(KB, "pg")
    elsewhere = service_on(tmp_path / "elsewhere", counting_embedder, service)
    with pytest.raises(InvalidInputError):
        KbMigration(service, elsewhere).migrate(KB, "faiss")
    with pytest.raises(InvalidInputError):
        KbMigration(service, service).migrate(KB, "faiss", delete_source=True)
    assert not other.kb_exists(KB)
    assert service.kb_row(KB).vs_type == "faiss"
    assert_same_answers(before, answers(service))
    assert_clean(service)
