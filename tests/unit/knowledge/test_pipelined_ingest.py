"""Ingest reads files in a thread beside the embedding, keeps vectors of text it has seen,
and costs nothing on an unchanged re-run: no OCR, no embedding."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kb_server.knowledge.maintenance import KbMaintenance
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.knowledge.types import INGEST_STAGES, NoProgress
from kb_server.settings import load_settings
from tests.unit.conftest import MINILM, CountingEmbedder
from tests.unit.documents.rendering import render_text_image, write_pdf
from tests.unit.documents.test_office_loaders import write_docx
from tests.unit.knowledge.test_service import CATS, GARDEN, ROCKETS, add_text

PARAGRAPHS = [
    CATS,
    ROCKETS,
    GARDEN,
    "The library opens at nine and closes at six. Borrowed books are due back within three "
    "weeks, and a renewal can be asked for at the front desk or online.",
    "Bread rises because yeast turns sugar into carbon dioxide. Knead the dough until it is "
    "smooth, then let it rest in a warm place for an hour before baking.",
]
EDITED = (
    "Glaciers carve valleys as they slide downhill. The ice scrapes the rock beneath it and "
    "leaves moraines of gravel behind when it melts back at the end of an ice age."
)


@pytest.fixture
def ocr_service(tmp_path: Path, counting_embedder: CountingEmbedder) -> KnowledgeBaseService:
    settings = load_settings(kb_root=tmp_path / "kb_root", embedding={"model": MINILM})
    return KnowledgeBaseService(settings, embedder_provider=lambda _: counting_embedder)


def test_changed_file_embeds_only_its_changed_chunks(
    service: KnowledgeBaseService, counting_embedder: CountingEmbedder
) -> None:
    service.create_kb("notes")
    add_text(service, "notes", "mixed.txt", "\n\n".join(PARAGRAPHS))
    first = service.add_files("notes", ["mixed.txt"])
    old_texts = {chunk.text for chunk in service.list_chunks("notes", "mixed.txt")}
    assert first.chunks_embedded == len(old_texts) >= 4

    add_text(service, "notes", "mixed.txt", "\n\n".join([*PARAGRAPHS[:2], EDITED, *PARAGRAPHS[3:]]))
    before = counting_embedder.texts_embedded
    report = service.update_files("notes", ["mixed.txt"])

    chunks = service.list_chunks("notes", "mixed.txt")
    new_texts = [chunk.text for chunk in chunks if chunk.text not in old_texts]
    assert 1 <= len(new_texts) < len(chunks)
    assert counting_embedder.texts_embedded - before == report.chunks_embedded == len(new_texts)
    assert report.chunks_reused == len(chunks) - len(new_texts)
    # Kept vectors are exactly what embedding the chunk's text gives.
    store = service.store_for(service.kb_row("notes"))
    ids, vectors = store.get_vectors([chunk.id for chunk in chunks])
    assert ids == [chunk.id for chunk in chunks]
    fresh = counting_embedder.inner.embed_documents([chunk.text for chunk in chunks])
    assert np.allclose(vectors, fresh, atol=1e-5)
    assert (
        "Glaciers"
        in service.search("notes", "How do glaciers shape valleys?", top_k=1)[0].chunk.text
    )


def test_forced_rebuild_embeds_every_chunk_again(
    service: KnowledgeBaseService, counting_embedder: CountingEmbedder
) -> None:
    service.create_kb("notes")
    add_text(service, "notes", "mixed.txt", "\n\n".join(PARAGRAPHS))
    service.add_files("notes", ["mixed.txt"])
    count = len(service.list_chunks("notes", "mixed.txt"))
    before = counting_embedder.texts_embedded

    report = KbMaintenance(service).recreate("notes", force=True)

    assert counting_embedder.texts_embedded - before == report.chunks_embedded == count
    assert report.chunks_reused == 0


def test_unchanged_rerun_reads_no_image_and_embeds_nothing(
    ocr_service: KnowledgeBaseService, counting_embedder: CountingEmbedder, cjk_font_path: Path
) -> None:
    service = ocr_service
    service.create_kb("shots")
    content = service.paths("shots").content
    render_text_image(["知识库问答系统", "离线检索"], cjk_font_path).save(content / "one.png")
    render_text_image(["向量索引与关键词"], cjk_font_path).save(content / "two.png")
    Image.new("RGB", (24, 24), "navy").save(content / "icon.png")  # no text: fails
    add_text(service, "shots", "notes.txt", "\n\n".join(PARAGRAPHS))
    maintenance = KbMaintenance(service)

    first = maintenance.recreate("shots")
    assert sorted(first.files_indexed) == ["notes.txt", "one.png", "two.png"]
    assert list(first.files_failed) == ["icon.png"]
    assert first.images_ocred == 3
    assert set(first.stage_seconds) == set(INGEST_STAGES)
    assert "离线检索" in service.list_chunks("shots", "one.png")[0].text

    before = counting_embedder.texts_embedded
    for rerun in (maintenance.recreate("shots"), maintenance.increment("shots")):
        # The file known to hold no text is not read again either, and stays failed.
        assert rerun.images_ocred == 0
        assert rerun.chunks_embedded == 0
        assert rerun.stage_seconds.get("ocr", 0.0) == rerun.stage_seconds.get("embed", 0.0) == 0
    assert counting_embedder.texts_embedded == before
    assert maintenance.recreate("shots").files_failed == first.files_failed
    assert maintenance.recreate("shots", force=True).images_ocred == 3


def kb_of_one_file_per_paragraph(service: KnowledgeBaseService, kb: str) -> list[str]:
    service.create_kb(kb)
    names = [f"p{index}.txt" for index in range(len(PARAGRAPHS))]
    for name, text in zip(names, PARAGRAPHS, strict=True):
        add_text(service, kb, name, text)
    return names


class ThreadRecorder(NoProgress):
    """Which thread reported each stage; optionally fails on the loading of one file."""

    def __init__(self, fail_loading: str = "") -> None:
        self.threads: dict[str, set[str]] = {}
        self.fail_loading = fail_loading

    def file_stage(self, file_name: str, stage: str, done: int, total: int) -> None:
        self.threads.setdefault(stage, set()).add(threading.current_thread().name)
        if stage == "loading" and file_name == self.fail_loading:
            raise RuntimeError(f"stop at {file_name}")


def test_files_are_read_on_a_reader_thread_and_embedded_on_the_callers(
    service: KnowledgeBaseService,
) -> None:
    names = kb_of_one_file_per_paragraph(service, "notes")
    recorder = ThreadRecorder()

    report = service.add_files("notes", names, progress=recorder)

    assert sorted(report.files_indexed) == names
    assert recorder.threads["loading"] == recorder.threads["splitting"] == {"kb-ingest-reader"}
    assert recorder.threads["embedding"] == {threading.current_thread().name}


def test_an_error_while_reading_stops_the_ingest_and_its_thread(
    service: KnowledgeBaseService,
) -> None:
    names = kb_of_one_file_per_paragraph(service, "notes")

    with pytest.raises(RuntimeError, match=r"stop at p3\.txt"):
        service.add_files("notes", names, progress=ThreadRecorder(fail_loading="p3.txt"))

    assert not any(t.name == "kb-ingest-reader" for t in threading.enumerate())
    # Nothing was stored: all files were in one group, which never reached the store.
    assert service.list_files("notes") == []
    assert service.store_for(service.kb_row("notes")).count() == 0
    assert KbMaintenance(service).check("notes").content_without_rows == names


class LoadingOrder(NoProgress):
    def __init__(self) -> None:
        self.loaded: list[str] = []

    def file_stage(self, file_name: str, stage: str, done: int, total: int) -> None:
        if stage == "loading" and file_name not in self.loaded:
            self.loaded.append(file_name)


def test_files_are_read_in_order_of_their_ocr_use(
    tmp_path: Path, counting_embedder: CountingEmbedder, cjk_font_path: Path
) -> None:
    """Files that need no OCR first, then those that may hold images (PDF, Word), images
    last: the embedding starts at once and OCR runs beside it. A suffix mapped to the image
    loader in the settings counts as an image too."""
    settings = load_settings(
        kb_root=tmp_path / "kb_root",
        embedding={"model": MINILM},
        documents={"extra_suffixes": {".tif": "image"}},
    )
    service = KnowledgeBaseService(settings, embedder_provider=lambda _: counting_embedder)
    service.create_kb("mixed")
    content = service.paths("mixed").content
    render_text_image(["扫描文件"], cjk_font_path).save(content / "a_scan.tif")
    render_text_image(["知识库问答系统"], cjk_font_path).save(content / "b_shot.png")
    write_pdf(content / "c_report.pdf", [["离线知识库的年度报告"]], cjk_font_path)
    write_docx(content / "d_manual.docx")
    add_text(service, "mixed", "e_notes.txt", CATS)
    add_text(service, "mixed", "f_more.txt", ROCKETS)
    names = sorted(path.name for path in content.iterdir())
    order = LoadingOrder()

    report = service.add_files("mixed", names, progress=order)

    assert sorted(report.files_indexed) == names
    assert order.loaded == [
        "e_notes.txt",
        "f_more.txt",
        "c_report.pdf",
        "d_manual.docx",
        "a_scan.tif",
        "b_shot.png",
    ]
