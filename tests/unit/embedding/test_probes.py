"""The agreement check behind the int8 guard: cosines and clear nearest neighbours."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from kb_server.embedding.probes import (
    CLEAR_NEIGHBOUR_LEAD,
    MIN_INT8_COSINE,
    PROBE_TEXTS,
    compare_embeddings,
)


def _unit(rows: list[list[float]]) -> NDArray[np.float32]:
    vectors = np.asarray(rows, dtype=np.float32)
    unit: NDArray[np.float32] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit


# Two close pairs (0-1, 2-3) far from each other.
REFERENCE = _unit([[1, 0.1, 0, 0], [1, 0.2, 0, 0], [0, 0, 1, 0.1], [0, 0, 1, 0.2]])


def test_identical_embeddings_agree_fully() -> None:
    check = compare_embeddings(REFERENCE, REFERENCE)

    assert check.min_cosine == pytest.approx(1.0)
    assert (check.clear_neighbours, check.same_clear_neighbour) == (4, 4)
    assert check.accepted(MIN_INT8_COSINE)


def test_a_low_cosine_is_rejected() -> None:
    candidate = REFERENCE.copy()
    candidate[0] = _unit([[1, 0.6, 0.3, 0]])[0]

    check = compare_embeddings(REFERENCE, candidate)

    assert check.min_cosine < MIN_INT8_COSINE
    assert not check.accepted(MIN_INT8_COSINE)


def test_a_changed_clear_neighbour_is_rejected_even_with_high_cosines() -> None:
    # Probe 1 sits between 0 and 2, a little closer to 0: moving it slightly makes 2 nearest.
    reference = _unit([[1, 0, 0], [1, 0.9, 0.0], [0, 1, 0], [0, 0, 1]])
    candidate = _unit([[1, 0, 0], [0.9, 1, 0.0], [0, 1, 0], [0, 0, 1]])

    check = compare_embeddings(reference, candidate)

    assert check.min_cosine > MIN_INT8_COSINE
    assert check.same_nearest_neighbour < check.probes
    assert not check.accepted(MIN_INT8_COSINE)


def test_a_reordered_tie_is_not_counted_against_the_candidate() -> None:
    # Probe 0's two nearest are equally far (a tie); the candidate picks the other one.
    reference = _unit([[1, 0, 0], [1, 1, 0.0], [1, 0, 1.0], [0, 1, 1]])
    candidate = reference.copy()
    candidate[0] = _unit([[1, 0, 0.01]])[0]

    check = compare_embeddings(reference, candidate)

    assert check.same_nearest_neighbour < check.probes
    assert check.clear_neighbours < check.probes
    assert check.accepted(MIN_INT8_COSINE)


def test_the_probe_set_is_half_chinese_half_english() -> None:
    chinese = [text for text in PROBE_TEXTS if any("\u4e00" <= char <= "\u9fff" for char in text)]

    assert len(PROBE_TEXTS) == 40
    assert len(chinese) == 20
    assert CLEAR_NEIGHBOUR_LEAD > 0
