"""A small English KB whose questions each share rare words with exactly one document, and a
settings file pointing the CLI at the same temporary KB root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.settings import Settings

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
KB_NAME = "facts"

DOCUMENTS = {
    "axolotl.txt": "The axolotl is a salamander that lives in Lake Xochimilco near Mexico City. "
    "It keeps its feathery gills for its whole life.",
    "zeppelin.txt": "The Hindenburg was a German zeppelin airship filled with hydrogen. "
    "It burned while landing at Lakehurst, New Jersey, in 1937.",
    "sourdough.txt": "Sourdough bread rises because a starter of wild yeast and lactobacilli "
    "ferments the flour and makes the dough sour.",
    "guide/volcano.txt": "Mount Erebus is the southernmost active volcano on Earth. It stands on "
    "Ross Island in Antarctica and has a lava lake in its crater.",
}

# Four questions find their document at rank 1 (by source, by answer text, or both); the last
# one asks about a document the KB does not have, so it is a miss at every k.
QA_LINES: list[dict[str, object]] = [
    {"question": "Which lake is home to the axolotl salamander?", "source": "axolotl.txt"},
    {"question": "Where did the Hindenburg zeppelin airship burn?", "answer": "Lakehurst"},
    {
        "question": "What ferments the flour in sourdough bread?",
        "answers": ["wild yeast", "lactobacilli"],
        "sources": ["sourdough.txt"],
    },
    {"question": "Which volcano is the southernmost active volcano?", "source": "volcano.txt"},
    {
        "question": "Who composed the Brandenburg Concertos?",
        "answer": "Johann Sebastian Bach",
        "source": "bach.txt",
    },
]
EXPECTED_HIT_RATE = 4 / 5


@pytest.fixture
def settings_file(kb_settings: Settings, tmp_path: Path) -> Path:
    """A settings file for the CLI: the fixtures' KB root, MiniLM, no OCR."""
    path = tmp_path / "settings.yaml"
    values = {
        "kb_root": str(kb_settings.kb_root),
        "embedding": {"model": MINILM},
        "ocr": {"enabled": False},
    }
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


@pytest.fixture
def facts_kb(service: KnowledgeBaseService) -> str:
    service.create_kb(KB_NAME)
    for file_name, text in DOCUMENTS.items():
        service.save_file(KB_NAME, file_name, text.encode(), override=False)
    report = service.add_files(KB_NAME, list(DOCUMENTS))
    assert not report.files_failed
    return KB_NAME


def write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text(
        "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), "utf-8"
    )
    return path
