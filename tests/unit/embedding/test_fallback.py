"""What happens when the configured model cannot be found or loaded."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from kb_server.embedding import Embedder, EmbeddingModelUnavailableError, get_embedder
from kb_server.settings import EmbeddingModelSettings, EmbeddingSettings

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture
def broken_model_dir(tmp_path: Path) -> Path:
    """A folder that looks like a model but holds no usable one."""
    folder = tmp_path / "broken-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}", encoding="utf-8")
    return folder


def test_unknown_model_without_fallback_raises_model_unavailable() -> None:
    settings = EmbeddingSettings(model="example-org/no-such-model", fallback_model=None)

    with pytest.raises(EmbeddingModelUnavailableError) as caught:
        get_embedder(settings)

    assert caught.value.code == "embedding_model_unavailable"
    assert caught.value.http_status == 503
    assert "example-org/no-such-model" in caught.value.message
    assert "download" in caught.value.message


def test_unknown_model_loads_the_fallback_with_one_warning(
    embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    settings = EmbeddingSettings(model="example-org/fallback-demo", device="cpu")

    with caplog.at_level(logging.WARNING, logger="kb_server.embedding"):
        fallback = get_embedder(settings)
        get_embedder(settings)

    assert fallback.name == MINILM
    assert fallback.dimension == 384
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "example-org/fallback-demo" in warnings[0].getMessage()
    assert MINILM in warnings[0].getMessage()


def test_model_that_fails_to_load_falls_back(embedder: Embedder, broken_model_dir: Path) -> None:
    settings = EmbeddingSettings(
        model="broken",
        models={"broken": EmbeddingModelSettings(path=broken_model_dir)},
        device="cpu",
    )

    assert get_embedder(settings).name == MINILM


def test_model_that_fails_to_load_without_fallback_raises(broken_model_dir: Path) -> None:
    settings = EmbeddingSettings(model=str(broken_model_dir), fallback_model=None, device="cpu")

    with pytest.raises(EmbeddingModelUnavailableError) as caught:
        get_embedder(settings)

    assert caught.value.model == str(broken_model_dir)


def test_missing_fallback_raises_for_the_configured_model() -> None:
    settings = EmbeddingSettings(
        model="example-org/no-such-model", fallback_model="example-org/no-such-fallback"
    )

    with pytest.raises(EmbeddingModelUnavailableError) as caught:
        get_embedder(settings)

    assert caught.value.model == "example-org/no-such-model"
    assert "example-org/no-such-fallback" in caught.value.message
