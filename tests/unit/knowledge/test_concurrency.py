"""Two processes writing to one knowledge base at once.

On FAISS + SQLite they share the KB root (one machine); on PostgreSQL each has a KB root of its
own, as on two machines, so only the database's advisory lock keeps their writes apart.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kb_server.knowledge.maintenance import KbMaintenance
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.settings import PROJECT_ROOT, Settings
from tests.conftest import BackendOptions, backend_env

pytestmark = pytest.mark.both_backends

FILES_PER_WRITER = 12
WRITER = """
import sys, time
from pathlib import Path

import pytest
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.settings import load_settings

service = KnowledgeBaseService(load_settings())
prefix, topic, barrier = sys.argv[1], sys.argv[2], Path(sys.argv[3])
service.search("shared", "warm up")  # load the model before the race starts
(barrier / prefix).touch()
deadline = time.monotonic() + 120
while len(list(barrier.iterdir())) < 2 and time.monotonic() < deadline:
    time.sleep(0.01)
for n in range(FILES_PER_WRITER):
    name = f"{prefix}-{n}.txt"
    text = f"Document {n} of the {prefix} writer. It is about {topic}, number {n}."
    service.save_file("shared", name, text.encode(), override=False)
    service.add_files("shared", [name])
""".replace("FILES_PER_WRITER", str(FILES_PER_WRITER))


def test_two_processes_adding_to_one_kb_both_end_up_searchable(
    service: KnowledgeBaseService,
    kb_settings: Settings,
    backend_options: BackendOptions,
    tmp_path: Path,
) -> None:
    service.create_kb("shared")
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {
        **os.environ,
        **backend_env(backend_options),
        "KB_KB_ROOT": str(kb_settings.kb_root),
        "KB_EMBEDDING__MODEL": kb_settings.embedding.model,
        "KB_OCR__ENABLED": "false",
        "HF_HUB_OFFLINE": "1",
    }
    own_roots = bool(backend_options)  # PostgreSQL: a KB root per writer, as per machine
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, prefix, topic, str(barrier)],
            env={**env, "KB_KB_ROOT": str(tmp_path / prefix)} if own_roots else env,
            cwd=PROJECT_ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for prefix, topic in [("alpha", "volcanoes and lava"), ("beta", "violins and music")]
    ]
    for writer in writers:
        _, stderr = writer.communicate(timeout=300)
        assert writer.returncode == 0, stderr

    names = {f.file_name for f in service.list_files("shared")}
    assert names == {f"{p}-{n}.txt" for p in ("alpha", "beta") for n in range(FILES_PER_WRITER)}
    report = KbMaintenance(service).check("shared")
    index_problems = [
        report.chunks_without_vectors,
        report.vectors_without_chunks,
        report.chunks_without_keywords,
        report.keywords_without_chunks,
    ]
    assert index_problems == [[], [], [], []]
    # The uploaded files are in the writers' own roots when each has one.
    assert report.consistent or own_roots
    lava = service.search("shared", "Where does lava come from?", top_k=1)[0]
    music = service.search("shared", "Which instrument plays music?", top_k=1)[0]
    assert lava.chunk.file_name.startswith("alpha-")
    assert music.chunk.file_name.startswith("beta-")
