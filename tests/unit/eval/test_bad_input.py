"""Bad input ends the CLI with exit code 2 and one message naming the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kb_server.cli.errors import EXIT_FATAL
from kb_server.eval.__main__ import main
from kb_server.eval.datasets import EvalInputError, load_qa_jsonl, load_squad
from tests.unit.eval.conftest import write_jsonl


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main([*args, "--quiet"])
    return code, capsys.readouterr().err


def test_a_question_without_answer_or_source_names_its_line(
    settings_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    qa = write_jsonl(
        tmp_path / "qa.jsonl",
        [
            {"question": "何为向量检索？", "answer": "向量"},
            {"question": "谁写了这份文档？", "source": "readme.md"},
            {"question": "这一行什么也没给"},
        ],
    )
    out = tmp_path / "eval.json"

    code, err = run_cli(
        capsys, "-c", str(settings_file), "--kb", "facts", "--qa", str(qa), "--out", str(out)
    )

    assert code == EXIT_FATAL
    assert "line 3" in err
    assert not out.exists()


def test_bad_json_names_its_line(tmp_path: Path) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"question": "a", "answer": "b"}\n\n{"question": \n', encoding="utf-8")

    with pytest.raises(EvalInputError, match="line 3"):
        load_qa_jsonl(qa)


@pytest.mark.parametrize(
    "record",
    [
        {"answer": "no question"},
        {"question": "q", "answers": "ok", "sources": [1]},
        {"question": "q", "source": "../outside.txt"},
        ["not", "an", "object"],
    ],
)
def test_malformed_lines_are_rejected(record: object, tmp_path: Path) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps(record) + "\n", encoding="utf-8")

    with pytest.raises(EvalInputError, match="line 1"):
        load_qa_jsonl(qa)


def test_missing_qa_file_fails(
    settings_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.jsonl"

    code, err = run_cli(capsys, "-c", str(settings_file), "--kb", "facts", "--qa", str(missing))

    assert code == EXIT_FATAL
    assert str(missing) in err


def test_missing_squad_file_fails(
    settings_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_cli(capsys, "-c", str(settings_file), "--squad", str(tmp_path / "x.json"))

    assert code == EXIT_FATAL
    assert "x.json" in err


def test_missing_settings_file_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run_cli(capsys, "-c", str(tmp_path / "none.yaml"), "--squad", "x.json")

    assert code == EXIT_FATAL


def test_unknown_kb_fails(
    settings_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    qa = write_jsonl(tmp_path / "qa.jsonl", [{"question": "q", "answer": "a"}])

    code, err = run_cli(capsys, "-c", str(settings_file), "--kb", "nosuchkb", "--qa", str(qa))

    assert code == EXIT_FATAL
    assert "nosuchkb" in err


def test_unknown_mode_fails(
    settings_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    squad = tmp_path / "squad.json"
    squad.write_text('{"data": []}', encoding="utf-8")

    code, err = run_cli(
        capsys, "-c", str(settings_file), "--squad", str(squad), "--modes", "dense,sparse"
    )

    assert code == EXIT_FATAL
    assert "sparse" in err


def test_qa_needs_a_kb_name() -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--qa", "qa.jsonl"])
    assert exited.value.code == 2


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"data": {}}',
        '{"data": []}',
        '{"data": [{"title": "t", "paragraphs": [{"context": "", "qas": []}]}]}',
        '{"data": [{"paragraphs": [{"context": "c", "qas": [{"answers": []}]}]}]}',
    ],
)
def test_malformed_squad_files_are_rejected(content: str, tmp_path: Path) -> None:
    squad = tmp_path / "squad.json"
    squad.write_text(content, encoding="utf-8")

    with pytest.raises(EvalInputError):
        load_squad(squad)
