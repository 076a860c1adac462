"""Input rules every vector store shares, so a knowledge base can move between stores."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
from numpy.typing import NDArray


class DimensionMismatchError(ValueError):
    def __init__(self, what: str, expected: int, actual: int) -> None:
        super().__init__(f"{what} has dimension {actual}, expected {expected}")
        self.expected = expected
        self.actual = actual


def validated_vectors(
    vectors: NDArray[np.float32], what: str, dimension: int, *, allow_single_row: bool
) -> NDArray[np.float32]:
    """A finite, C-contiguous float32 (n, dimension) array, or ValueError saying why not."""
    array = np.asarray(vectors)
    if array.dtype.kind != "f":
        raise ValueError(f"{what} must be floating point, got dtype {array.dtype}")
    if allow_single_row and array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (n, dimension), got shape {array.shape}")
    if array.shape[1] != dimension:
        raise DimensionMismatchError(what, dimension, array.shape[1])
    if not np.isfinite(array).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    return np.ascontiguousarray(array, dtype=np.float32)


def validated_ids(ids: Collection[int]) -> NDArray[np.int64]:
    """Ids as an int64 array; they must be non-negative (-1 is FAISS's "no result" label, so
    negative ids could never be told apart from padding)."""
    array = np.asarray(ids if isinstance(ids, np.ndarray) else list(ids))
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
        raise ValueError(f"ids must be a flat sequence of integers, got {array.dtype}")
    array = array.astype(np.int64)
    if array.size and int(array.min()) < 0:
        raise ValueError("ids must be non-negative int64 values")
    return array


def validated_batch(
    ids: Sequence[int], vectors: NDArray[np.float32], dimension: int
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """The ids and vectors of one ``add``: as many ids as rows, no id twice."""
    id_array = validated_ids(ids)
    matrix = validated_vectors(vectors, "vectors", dimension, allow_single_row=False)
    if id_array.size != matrix.shape[0]:
        raise ValueError(f"got {id_array.size} ids for {matrix.shape[0]} vectors")
    if np.unique(id_array).size != id_array.size:
        raise ValueError("ids must be unique within one add() call")
    return id_array, matrix
