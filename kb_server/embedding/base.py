"""The embedder contract: texts -> L2-normalized float32 vectors."""

from __future__ import annotations

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
