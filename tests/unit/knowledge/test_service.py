"""KnowledgeBaseService on a real SQLite file, a real FAISS index and the real MiniLM model."""

from __future__ import annotations

import pytest

from kb_server.errors import InvalidInputError
from kb_server.knowledge.maintenance import KbMaintenance
from kb_server.knowledge.paths import InvalidNameError
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.knowledge.types import KbExistsError, KbFileExistsError, KbNotFoundError
from kb_server.settings import Settings, SplitterSettings
from tests.unit.conftest import CountingEmbedder

pytestmark = pytest.mark.both_backends

CATS = (
    "Cats are small domesticated carnivorous mammals. They sleep for most of the day and "
    "groom their fur with their rough tongues. A cat purrs when it is content."
)
ROCKETS = (
    "A rocket reaches orbit by burning fuel in stages. Each stage is dropped when its "
    "propellant is spent, so the remaining vehicle is lighter and can accelerate faster."
)
GARDEN = (
    "Tomatoes grow best in full sun. Water the garden early in the morning and add compost "
    "to the soil before planting the seedlings."
)


def add_text(service: KnowledgeBaseService, kb: str, name: str, text: str) -> None:
    service.save_file(kb, name, text.encode("utf-8"), override=True)


@pytest.fixture
def kb(service: KnowledgeBaseService) -> str:
    service.create_kb("manuals", description="test manuals")
    add_text(service, "manuals", "cats.txt", CATS)
    add_text(service, "manuals", "space/rockets.txt", ROCKETS)
    report = service.add_files("manuals", ["cats.txt", "space/rockets.txt"])
    assert sorted(report.files_indexed) == ["cats.txt", "space/rockets.txt"]
    return "manuals"


def store_ids(service: KnowledgeBaseService, kb: str) -> set[int]:
    row = service.kb_row(kb)
    return service.store_for(row).ids()


def test_search_returns_the_matching_chunk_first(service: KnowledgeBaseService, kb: str) -> None:
    hits = service.search(kb, "How does a rocket get into orbit?", top_k=2)
    assert hits[0].chunk.file_name == "space/rockets.txt"
    assert hits[0].chunk.metadata["source"] == "space/rockets.txt"
    assert -1.0 <= hits[1].score <= hits[0].score <= 1.0


def test_updating_a_changed_file_replaces_its_rows_and_vectors(
    service: KnowledgeBaseService, kb: str
) -> None:
    old_ids = {chunk.id for chunk in service.list_chunks(kb, "space/rockets.txt")}
    add_text(service, kb, "space/rockets.txt", GARDEN)
    report = service.update_files(kb, ["space/rockets.txt"])
    assert report.files_indexed == ["space/rockets.txt"]
    new_ids = {chunk.id for chunk in service.list_chunks(kb, "space/rockets.txt")}
    assert new_ids.isdisjoint(old_ids)
    assert store_ids(service, kb).isdisjoint(old_ids)
    assert new_ids <= store_ids(service, kb)
    hit = service.search(kb, "How should I water tomatoes?", top_k=1)[0]
    assert "Tomatoes" in hit.chunk.text


def test_deleted_file_no_longer_answers(service: KnowledgeBaseService, kb: str) -> None:
    cat_ids = {chunk.id for chunk in service.list_chunks(kb, "cats.txt")}
    assert service.delete_files(kb, ["cats.txt"], delete_content=True) == ["cats.txt"]
    assert [f.file_name for f in service.list_files(kb)] == ["space/rockets.txt"]
    assert store_ids(service, kb).isdisjoint(cat_ids)
    hits = service.search(kb, "Why do cats purr?", top_k=5)
    assert all(hit.chunk.file_name != "cats.txt" for hit in hits)
    assert not (service.paths(kb).content / "cats.txt").exists()


def test_deleting_the_kb_removes_rows_and_folders(service: KnowledgeBaseService, kb: str) -> None:
    root = service.paths(kb).root
    service.delete_kb(kb)
    assert not root.exists()
    assert service.list_kbs() == []
    with pytest.raises(KbNotFoundError):
        service.search(kb, "cats")


def test_unchanged_files_are_not_embedded_again(
    service: KnowledgeBaseService, kb: str, counting_embedder: CountingEmbedder
) -> None:
    before = counting_embedder.texts_embedded
    report = KbMaintenance(service).recreate(kb)
    assert counting_embedder.texts_embedded == before
    assert report.chunks_embedded == 0
    assert sorted(report.files_unchanged) == ["cats.txt", "space/rockets.txt"]


def test_new_chunk_settings_embed_the_file_again(
    service: KnowledgeBaseService, kb: str, counting_embedder: CountingEmbedder
) -> None:
    before = counting_embedder.texts_embedded
    small = SplitterSettings(chunk_size=60, chunk_overlap=10)
    report = service.add_files(kb, ["cats.txt"], splitter=small)
    assert report.files_indexed == ["cats.txt"]
    assert counting_embedder.texts_embedded - before == report.chunks_embedded > 1
    assert all(len(chunk.text) <= 60 for chunk in service.list_chunks(kb, "cats.txt"))


def test_score_threshold_is_the_minimum_cosine_kept_in_dense_mode(
    service: KnowledgeBaseService, kb: str
) -> None:
    hits = service.search(kb, "rocket stages and fuel", top_k=5, search_mode="dense")
    threshold = (hits[0].score + hits[-1].score) / 2
    kept = service.search(
        kb, "rocket stages and fuel", top_k=5, score_threshold=threshold, search_mode="dense"
    )
    assert kept
    assert all(hit.score >= threshold for hit in kept)
    assert len(kept) < len(hits)


def test_file_filter_restricts_search(service: KnowledgeBaseService, kb: str) -> None:
    hits = service.search(kb, "How does a rocket get into orbit?", file_names=["cats.txt"])
    assert hits
    assert {hit.chunk.file_name for hit in hits} == {"cats.txt"}


def test_edited_chunk_is_embedded_again(service: KnowledgeBaseService, kb: str) -> None:
    chunk = service.list_chunks(kb, "cats.txt")[0]
    edited = service.edit_chunk(kb, chunk.id, GARDEN)
    assert edited.text == GARDEN
    hit = service.search(kb, "How should I water tomatoes?", top_k=1)[0]
    assert hit.chunk.id == chunk.id


def test_editing_a_chunk_to_empty_text_is_rejected_and_keeps_it(
    service: KnowledgeBaseService, kb: str
) -> None:
    chunk = service.list_chunks(kb, "cats.txt")[0]
    with pytest.raises(InvalidInputError):
        service.edit_chunk(kb, chunk.id, "   ")
    assert service.list_chunks(kb, "cats.txt")[0].text == chunk.text


def test_file_that_fails_to_load_is_recorded_and_the_rest_indexed(
    service: KnowledgeBaseService, kb: str
) -> None:
    service.save_file(kb, "broken.docx", b"not a zip at all", override=False)
    add_text(service, kb, "garden.txt", GARDEN)
    report = service.add_files(kb, ["broken.docx", "garden.txt"])
    assert report.files_indexed == ["garden.txt"]
    assert "broken.docx" in report.files_failed
    by_name = {f.file_name: f for f in service.list_files(kb)}
    assert by_name["broken.docx"].status == "failed"
    assert by_name["broken.docx"].error
    assert by_name["garden.txt"].status == "indexed"


def test_crash_between_commit_and_index_save_is_found_and_repaired(
    service: KnowledgeBaseService, kb: str, kb_settings: Settings
) -> None:
    add_text(service, kb, "garden.txt", GARDEN)
    service.add_files(kb, ["garden.txt"])
    # What a crash after the rows' commit and before the vectors' save leaves (FAISS files:
    # tests/unit/knowledge/test_crash_recovery.py kills a real process at that point).
    store = service.store_for(service.kb_row(kb))
    store.delete([chunk.id for chunk in service.list_chunks(kb, "garden.txt")])
    store.save()

    restarted = KnowledgeBaseService(kb_settings, embedder_provider=service.embedder_provider)
    maintenance = KbMaintenance(restarted)
    found = maintenance.check(kb)
    assert not found.consistent
    garden_ids = [chunk.id for chunk in restarted.list_chunks(kb, "garden.txt")]
    assert found.chunks_without_vectors == sorted(garden_ids)

    maintenance.repair(kb)
    assert maintenance.check(kb).consistent
    hit = restarted.search(kb, "How should I water tomatoes?", top_k=1)[0]
    assert hit.chunk.file_name == "garden.txt"


def test_vectors_left_by_a_crash_are_ignored_then_removed(
    service: KnowledgeBaseService, kb: str
) -> None:
    row = service.kb_row(kb)
    writer = service.writer(row)
    stray = writer.embed([ROCKETS])
    writer.store.add([999_999], stray)
    writer.save_store()
    hits = service.search(kb, "How does a rocket get into orbit?", top_k=3)
    assert all(hit.chunk.id != 999_999 for hit in hits)
    maintenance = KbMaintenance(service)
    assert maintenance.check(kb).vectors_without_chunks == [999_999]
    maintenance.repair(kb)
    assert maintenance.check(kb).consistent


def test_names_cannot_leave_the_kb_root(service: KnowledgeBaseService, kb: str) -> None:
    for bad_kb in ["../evil", "a/b", "..", "", "x\0y", "/etc"]:
        with pytest.raises(InvalidNameError):
            service.create_kb(bad_kb)
    for bad_file in ["../escape.txt", "/etc/passwd", "a/../../b.txt", "sub/.hidden", "nul\0.txt"]:
        with pytest.raises(InvalidNameError):
            service.save_file(kb, bad_file, b"x", override=True)
    assert not (service.settings.kb_root / "escape.txt").exists()


def test_existing_kb_and_file_are_conflicts(service: KnowledgeBaseService, kb: str) -> None:
    with pytest.raises(KbExistsError):
        service.create_kb(kb)
    with pytest.raises(KbFileExistsError):
        service.save_file(kb, "cats.txt", b"other", override=False)
    assert (service.paths(kb).content / "cats.txt").read_text(encoding="utf-8") == CATS
