"""Reciprocal rank fusion: one ranking from several, by rank alone, with a weight per list.

A chunk at rank r (1 = best) in a list of weight w gains w / (k + r); ranks from lists that
did not return the chunk add nothing. Raw scores of different retrievers (cosine, BM25) are
not comparable, ranks are, which is why RRF needs no score calibration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def weighted_rrf(
    rankings: Mapping[str, Sequence[int]], weights: Mapping[str, float], k: int
) -> list[tuple[int, float]]:
    """Fused (id, RRF score) pairs, best first; ties keep the order ids were first seen in."""
    if k < 1:
        raise ValueError(f"the RRF constant must be positive, got {k}")
    fused: dict[int, float] = {}
    for name, ranking in rankings.items():
        weight = weights.get(name, 1.0)
        for rank, chunk_id in enumerate(ranking, 1):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight / (k + rank)
    # sorted() is stable: equal scores stay in first-seen order.
    return sorted(fused.items(), key=lambda pair: pair[1], reverse=True)
