"""Regression guard on CMRC 2018 (trial): hybrid retrieval finds at least what dense does.

With the offline embedder (all-MiniLM-L6-v2, nearly blind to Chinese) dense retrieval is weak
on these Chinese questions; hybrid fusion must never do worse than it at hit@5.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kb_server.eval.runner import run_eval
from kb_server.eval.squad_kb import build_squad_kb
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.settings import PROJECT_ROOT

CMRC_TRIAL = PROJECT_ROOT.parent / "shared" / "data" / "cmrc2018_trial.json"


@pytest.fixture
def cmrc_trial() -> Path:
    if not CMRC_TRIAL.is_file():
        pytest.skip(f"CMRC 2018 trial data not found at {CMRC_TRIAL} (see ../shared/data/)")
    return CMRC_TRIAL


def test_hybrid_hit_at_5_is_at_least_dense_on_cmrc(
    service: KnowledgeBaseService, cmrc_trial: Path
) -> None:
    questions = build_squad_kb(service, "cmrc", cmrc_trial)
    assert service.get_kb("cmrc").file_count == 256
    assert len(questions) == 1000  # two of the 1,002 questions are empty

    # Every fourth question: the gap is wide, and 250 questions keep the test near a minute.
    report = run_eval(service, "cmrc", questions[::4], ["dense", "hybrid"], top_k=5)

    dense, hybrid = report.results["dense"], report.results["hybrid"]
    assert hybrid.hit_at(5) >= dense.hit_at(5), (dense.hit_at(5), hybrid.hit_at(5))
