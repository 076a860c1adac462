"""A service over a temp KB root with the real offline MiniLM embedder, counted."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from numpy.typing import NDArray

from kb_server.embedding.base import Embedder
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.settings import Settings, load_settings
from tests.conftest import BackendOptions

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


class CountingEmbedder:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.texts_embedded = 0

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def embed_documents(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.texts_embedded += len(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> NDArray[np.float32]:
        return self.inner.embed_query(text)


@pytest.fixture
def kb_settings(settings: Settings, backend_options: BackendOptions) -> Settings:
    return load_settings(
        kb_root=settings.kb_root,
        embedding={"model": MINILM},
        ocr={"enabled": False},
        **backend_options,
    )


@pytest.fixture
def counting_embedder(embedder: Embedder) -> CountingEmbedder:
    return CountingEmbedder(embedder)


@pytest.fixture
def service(kb_settings: Settings, counting_embedder: CountingEmbedder) -> KnowledgeBaseService:
    def provide(model: str) -> Embedder:
        if model != counting_embedder.name:
            raise AssertionError(f"unexpected model {model}")
        return counting_embedder

    return KnowledgeBaseService(kb_settings, embedder_provider=provide)
