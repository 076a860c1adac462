"""Retrieval metrics: where the first hit is, hit@k, MRR and latency percentiles.

A retrieved chunk is a hit when it comes from one of the question's source files or contains
one of its answer texts (compared without whitespace and case: splitting may move line breaks).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kb_server.eval.datasets import EvalQuestion


def _squashed(text: str) -> str:
    return "".join(text.split()).casefold()


def _from_source(file_name: str, sources: Sequence[str]) -> bool:
    # A source given without folders matches that file name in any sub-folder.
    base = file_name.rsplit("/", 1)[-1]
    return any(file_name == source or ("/" not in source and base == source) for source in sources)


def is_hit(file_name: str, text: str, question: EvalQuestion) -> bool:
    if _from_source(file_name, question.sources):
        return True
    squashed = _squashed(text)
    return any(_squashed(answer) in squashed for answer in question.answers)


def first_hit_rank(retrieved: Sequence[tuple[str, str]], question: EvalQuestion) -> int | None:
    """The 1-based rank of the first hit among (file name, chunk text) pairs; None: no hit."""
    for rank, (file_name, text) in enumerate(retrieved, start=1):
        if is_hit(file_name, text, question):
            return rank
    return None


def hit_rate(ranks: Sequence[int | None], k: int) -> float:
    """Share of questions with a hit among their first k chunks."""
    if not ranks:
        return 0.0
    return sum(1 for rank in ranks if rank is not None and rank <= k) / len(ranks)


def mean_reciprocal_rank(ranks: Sequence[int | None]) -> float:
    """Mean of 1/rank of the first hit, a question without a hit adding 0."""
    if not ranks:
        return 0.0
    return sum(1.0 / rank for rank in ranks if rank is not None) / len(ranks)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100, linear interpolation); 0 for no values."""
    if not values:
        return 0.0
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))
