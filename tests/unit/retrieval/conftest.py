"""Fixtures for the retrieval tests: a tiny real cross-encoder and a clean reranker cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight BERT cross-encoder directory (tests/tiny_cross_encoder.py)."""
    from tests.tiny_cross_encoder import build_tiny_cross_encoder

    return build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny_cross_encoder"))


@pytest.fixture
def fresh_reranker_cache() -> Iterator[None]:
    """The process's reranker cache, emptied before and after the test."""
    from kb_server.retrieval.reranker import clear_reranker_cache

    clear_reranker_cache()
    yield
    clear_reranker_cache()
