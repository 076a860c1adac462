"""Evaluating an existing KB with a QA file, through run_eval and through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kb_server.eval.__main__ import main
from kb_server.eval.datasets import load_qa_jsonl
from kb_server.eval.runner import run_eval
from kb_server.knowledge.service import KnowledgeBaseService
from tests.unit.eval.conftest import EXPECTED_HIT_RATE, MINILM, QA_LINES, write_jsonl

MODES = ["dense", "bm25", "hybrid"]


def test_run_eval_counts_hits_as_a_hand_count_does(
    service: KnowledgeBaseService, facts_kb: str, tmp_path: Path
) -> None:
    questions = load_qa_jsonl(write_jsonl(tmp_path / "qa.jsonl", QA_LINES))

    report = run_eval(service, facts_kb, questions, MODES, top_k=10)

    assert report.embedding_model == MINILM
    assert list(report.results) == MODES
    for mode, result in report.results.items():
        assert result.ranks == [1, 1, 1, 1, None], mode
        assert result.hit_at(1) == pytest.approx(EXPECTED_HIT_RATE)
        assert result.hit_at(10) == pytest.approx(EXPECTED_HIT_RATE)
        assert result.mrr == pytest.approx(EXPECTED_HIT_RATE)
        assert len(result.latencies_ms) == len(QA_LINES)
        assert all(latency > 0 for latency in result.latencies_ms)


def test_cli_prints_the_table_and_writes_the_json(
    facts_kb: str,
    settings_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    qa = write_jsonl(tmp_path / "qa.jsonl", QA_LINES)
    out = tmp_path / "results" / "eval.json"

    code = main(
        [
            *("-c", str(settings_file), "--kb", facts_kb, "--qa", str(qa)),
            *("--modes", ",".join(MODES), "--out", str(out), "--quiet"),
        ]
    )

    assert code == 0
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["kb"] == facts_kb
    assert results["embedding_model"] == MINILM
    assert results["questions"] == len(QA_LINES)
    assert results["top_k"] == 10
    assert results["dataset"]["files"] == 4
    assert results["retrieval_settings"]["search_mode"] == "hybrid"
    assert list(results["modes"]) == MODES
    for figures in results["modes"].values():
        for metric in ("hit@1", "hit@5", "hit@10", "mrr"):
            assert figures[metric] == pytest.approx(EXPECTED_HIT_RATE)
        assert 0 < figures["latency_ms"]["p50"] <= figures["latency_ms"]["p95"]
    assert results["per_question"][4]["first_hit_rank"] == dict.fromkeys(MODES)
    table = capsys.readouterr().out
    assert "| mode | hit@1 | hit@5 | hit@10 | MRR | p50 ms | p95 ms |" in table
    assert "| dense | 0.800 | 0.800 | 0.800 | 0.800 |" in table


def test_limit_and_top_k_restrict_the_evaluation(
    facts_kb: str, settings_file: Path, tmp_path: Path
) -> None:
    qa = write_jsonl(tmp_path / "qa.jsonl", QA_LINES)
    out = tmp_path / "eval.json"

    code = main(
        [
            *("-c", str(settings_file), "--kb", facts_kb, "--qa", str(qa), "--modes", "dense"),
            *("--limit", "2", "--top-k", "3", "--out", str(out), "--quiet"),
        ]
    )

    assert code == 0
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["questions"] == 2
    assert results["modes"]["dense"] == {
        "hit@1": 1.0,
        "hit@3": 1.0,
        "mrr": 1.0,
        "latency_ms": results["modes"]["dense"]["latency_ms"],
    }
