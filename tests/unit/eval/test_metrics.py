"""hit@k and MRR on hand-made ranked lists, counted by hand."""

from __future__ import annotations

import pytest

from kb_server.eval.datasets import EvalQuestion
from kb_server.eval.metrics import (
    first_hit_rank,
    hit_rate,
    mean_reciprocal_rank,
    percentile,
)

RETRIEVED = [
    ("a.txt", "北京是中国的首都。"),
    ("notes/b.txt", "长江是中国最长的河流，全长约 6300 公里。"),
    ("c.txt", "The Great Wall is  very\nlong."),
]


def test_first_hit_rank_counts_sources_and_answer_texts() -> None:
    by_source = EvalQuestion("q", sources=("c.txt",))
    by_answer = EvalQuestion("q", answers=("6300公里",))  # whitespace in the chunk is ignored
    by_english_answer = EvalQuestion("q", answers=("great wall is very long",))
    by_base_name = EvalQuestion("q", sources=("b.txt",))
    by_either = EvalQuestion("q", answers=("首都",), sources=("c.txt",))
    missing = EvalQuestion("q", answers=("黄河",), sources=("d.txt",))

    assert first_hit_rank(RETRIEVED, by_source) == 3
    assert first_hit_rank(RETRIEVED, by_answer) == 2
    assert first_hit_rank(RETRIEVED, by_english_answer) == 3
    assert first_hit_rank(RETRIEVED, by_base_name) == 2
    assert first_hit_rank(RETRIEVED, by_either) == 1
    assert first_hit_rank(RETRIEVED, missing) is None
    assert first_hit_rank([], by_source) is None


def test_a_source_with_folders_must_match_the_whole_path() -> None:
    assert first_hit_rank(RETRIEVED, EvalQuestion("q", sources=("other/b.txt",))) is None
    assert first_hit_rank(RETRIEVED, EvalQuestion("q", sources=("notes/b.txt",))) == 2


def test_hit_rate_and_mrr_match_a_hand_count() -> None:
    ranks = [1, 3, None, 2, 7, None, 1, 10]
    # hit@1: ranks 1, 1 -> 2 of 8; hit@5: 1, 3, 2, 1 -> 4; hit@10: all six found
    assert hit_rate(ranks, 1) == pytest.approx(2 / 8)
    assert hit_rate(ranks, 5) == pytest.approx(4 / 8)
    assert hit_rate(ranks, 10) == pytest.approx(6 / 8)
    expected_mrr = (1 + 1 / 3 + 0 + 1 / 2 + 1 / 7 + 0 + 1 + 1 / 10) / 8
    assert mean_reciprocal_rank(ranks) == pytest.approx(expected_mrr)


def test_metrics_of_no_questions_are_zero() -> None:
    assert hit_rate([], 5) == 0.0
    assert mean_reciprocal_rank([]) == 0.0
    assert percentile([], 95) == 0.0


def test_percentiles_interpolate_between_measurements() -> None:
    latencies = [float(value) for value in range(1, 101)]  # 1..100 ms
    assert percentile(latencies, 50) == pytest.approx(50.5)
    assert percentile(latencies, 95) == pytest.approx(95.05)
