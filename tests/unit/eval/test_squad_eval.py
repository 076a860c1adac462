"""--squad indexes a SQuAD-style file into a temporary KB root, never the configured one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kb_server.eval.__main__ import main
from kb_server.eval.datasets import EvalQuestion, load_squad
from kb_server.eval.squad_kb import build_squad_kb
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.settings import Settings

SQUAD = {
    "version": "v1.0",
    "data": [
        {
            "title": "长城",
            "paragraphs": [
                {
                    "context": "长城是中国古代修建的军事防御工程，东起山海关，西至嘉峪关。",
                    "qas": [
                        {"question": "长城东起哪里？", "answers": [{"text": "山海关"}]},
                        {"question": "长城西至哪里？", "answers": [{"text": "嘉峪关"}]},
                    ],
                },
                {
                    "context": "明长城的修建持续了两百多年，动用了大量民夫和士兵。",
                    "qas": [{"question": "明长城修建了多久？", "answers": [{"text": "两百多年"}]}],
                },
            ],
        },
        {
            "title": "熊猫/大熊猫",
            "paragraphs": [
                {
                    "context": "大熊猫主要生活在四川的山区竹林里，以竹子为主要食物。",
                    "qas": [
                        {"question": "大熊猫吃什么？", "answers": [{"text": "竹子"}]},
                        {"question": "大熊猫生活在哪个省？", "answers": [{"text": "四川"}]},
                    ],
                }
            ],
        },
    ],
}


@pytest.fixture
def squad_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_squad.json"
    path.write_text(json.dumps(SQUAD, ensure_ascii=False), encoding="utf-8")
    return path


def test_each_paragraph_becomes_a_document_named_after_its_title(squad_file: Path) -> None:
    paragraphs = load_squad(squad_file)

    assert [p.file_name for p in paragraphs] == ["长城_0.txt", "长城_1.txt", "熊猫_大熊猫_0.txt"]
    assert paragraphs[2].questions[0] == EvalQuestion(
        "大熊猫吃什么？", ("竹子",), ("熊猫_大熊猫_0.txt",)
    )


def test_build_squad_kb_indexes_every_paragraph(
    service: KnowledgeBaseService, squad_file: Path
) -> None:
    questions = build_squad_kb(service, "tiny", squad_file)

    assert len(questions) == 5
    assert [f.file_name for f in service.list_files("tiny")] == sorted(
        ["长城_0.txt", "长城_1.txt", "熊猫_大熊猫_0.txt"]
    )


def test_squad_cli_uses_a_temporary_kb_root(
    squad_file: Path,
    settings_file: Path,
    kb_settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "eval.json"

    code = main(
        [
            *("-c", str(settings_file), "--squad", str(squad_file), "--modes", "dense,bm25"),
            *("--out", str(out), "--quiet"),
        ]
    )

    assert code == 0
    assert not kb_settings.kb_root.exists()  # the configured KB root was never created
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["dataset"]["kind"] == "squad"
    assert results["dataset"]["paragraphs"] == 3
    assert results["dataset"]["chunks"] == 3
    assert results["questions"] == 5
    assert list(results["modes"]) == ["dense", "bm25"]
    # Three one-chunk documents: ten retrieved chunks always include the right one.
    assert results["modes"]["dense"]["hit@10"] == 1.0
    assert "5 questions" in capsys.readouterr().out
