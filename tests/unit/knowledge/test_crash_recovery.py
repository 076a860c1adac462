"""kill -9 in the middle of an ingest, at each point where state is half written: the KB stays
searchable, --check finds what the crash left, --repair mends it, and the next run completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from kb_server.failpoints import FAILPOINT_ENV
from kb_server.knowledge.maintenance import KbMaintenance
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.settings import PROJECT_ROOT, Settings
from tests.unit.conftest import CountingEmbedder

EARLIER = {
    "volcano.txt": "Volcanoes erupt when molten rock called magma rises to the surface as lava.",
    "violin.txt": "A violin has four strings and is played with a bow made of horsehair.",
}
NEW = {
    "glacier.txt": "Glaciers are rivers of ice that slowly carve valleys into mountains.",
    "bakery.txt": "The bakery sells sourdough bread, croissants and cinnamon rolls every morning.",
}


def run_init_database(kb_settings: Settings, failpoint: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KB_KB_ROOT": str(kb_settings.kb_root),
        "KB_EMBEDDING__MODEL": kb_settings.embedding.model,
        "KB_OCR__ENABLED": "false",
        "HF_HUB_OFFLINE": "1",
        FAILPOINT_ENV: failpoint,
    }
    return subprocess.run(
        [sys.executable, "init_database.py", "--recreate-vs", "-n", "crash", "--quiet"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "failpoint",
    ["ingest.loaded", "ingest.rows_committed", "faiss.before_rename", "ingest.vectors_saved"],
)
def test_a_killed_ingest_is_found_repaired_and_completed(
    service: KnowledgeBaseService,
    kb_settings: Settings,
    counting_embedder: CountingEmbedder,
    failpoint: str,
) -> None:
    service.create_kb("crash")
    for name, text in EARLIER.items():
        service.save_file("crash", name, text.encode(), override=False)
    service.add_files("crash", list(EARLIER))
    content = service.paths("crash").content
    for name, text in NEW.items():
        (content / name).write_text(text, encoding="utf-8")

    killed = run_init_database(kb_settings, failpoint)
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    # A fresh process's view: what was there before is still found, in every mode.
    restarted = KnowledgeBaseService(kb_settings, embedder_provider=lambda _: counting_embedder)
    for mode in ("dense", "bm25", "hybrid"):
        hits = restarted.search("crash", "magma and lava", top_k=1, search_mode=mode)
        assert hits[0].chunk.file_name == "volcano.txt"
    maintenance = KbMaintenance(restarted)
    found = maintenance.check("crash")
    new_ids = sorted(
        chunk.id
        for name in NEW
        if name in {f.file_name for f in restarted.list_files("crash")}
        for chunk in restarted.list_chunks("crash", name)
    )
    left = {
        "content without rows": found.content_without_rows,
        "chunks without vectors": found.chunks_without_vectors,
        "chunks without keywords": found.chunks_without_keywords,
    }
    assert (
        left
        == {
            "ingest.loaded": {
                "content without rows": sorted(NEW),
                "chunks without vectors": [],
                "chunks without keywords": [],
            },
            "ingest.rows_committed": {
                "content without rows": [],
                "chunks without vectors": new_ids,
                "chunks without keywords": new_ids,
            },
            "faiss.before_rename": {
                "content without rows": [],
                "chunks without vectors": new_ids,
                "chunks without keywords": new_ids,
            },
            "ingest.vectors_saved": {
                "content without rows": [],
                "chunks without vectors": [],
                "chunks without keywords": new_ids,
            },
        }[failpoint]
    )
    assert not found.consistent

    maintenance.repair("crash")
    assert maintenance.check("crash").consistent
    report = maintenance.recreate("crash")
    assert report.files_failed == {}
    assert sorted(report.files_indexed + report.files_unchanged) == sorted(EARLIER | NEW)
    assert maintenance.check("crash").consistent
    hit = restarted.search("crash", "sourdough bread and croissants", top_k=1, search_mode="bm25")
    assert hit[0].chunk.file_name == "bakery.txt"
