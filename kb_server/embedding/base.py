"""The embedder contract: texts -> L2-normalized float32 vectors."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray


class Embedder(Protocol):
    """Turns text into vectors whose inner product is their cosine similarity.

    ``name`` is the model that was actually loaded (after any fallback): it names the KB's
    index folder, so vectors from different models never mix.
    """

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed_documents(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Shape (len(texts), dimension); rows L2-normalized."""
        ...

    def embed_query(self, text: str) -> NDArray[np.float32]:
        """Shape (dimension,); L2-normalized; the model's query instruction applied."""
        ...


class NamedEmbedder(ABC):
    """What every backend's embedder shares: its name, the query instruction and the checks
    around a call; a backend supplies ``dimension`` and ``_embed``."""

    def __init__(self, *, name: str, query_instruction: str) -> None:
        self._name = name
        self._query_instruction = query_instruction

    @property
    def name(self) -> str:
        return self._name

    @property
    @abstractmethod
    def dimension(self) -> int: ...

    @property
    def query_instruction(self) -> str:
        return self._query_instruction

    @abstractmethod
    def _embed(self, texts: list[str]) -> NDArray[np.float32]:
        """L2-normalized vectors of a non-empty list of texts."""

    def embed_documents(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if isinstance(texts, str):
            raise TypeError("embed_documents takes a sequence of texts, not one string")
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._embed(list(texts))

    def embed_query(self, text: str) -> NDArray[np.float32]:
        vectors = self.embed_documents([self._query_instruction + text])
        query_vector: NDArray[np.float32] = vectors[0]
        return query_vector
