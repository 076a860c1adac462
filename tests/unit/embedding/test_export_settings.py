"""embedding.backend and embedding.export_dir: defaults, the KB root, the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from kb_server.settings import PROJECT_ROOT, EmbeddingSettings, Settings, load_settings
from tests.conftest import EXPORT_DIR_ENV, OCR_EXPORT_DIR_ENV


def test_export_dir_defaults_to_a_folder_under_the_kb_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(EXPORT_DIR_ENV, raising=False)

    settings = Settings(kb_root=tmp_path / "kb_root")

    assert settings.embedding.export_dir == tmp_path / "kb_root" / ".model_exports"


def test_environment_sets_the_export_dir_over_the_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text(
        f"embedding:\n  export_dir: {tmp_path / 'from_yaml'}\n  batch_size: 8\n", encoding="utf-8"
    )
    monkeypatch.setenv(EXPORT_DIR_ENV, str(tmp_path / "from_env"))

    settings = load_settings(config, kb_root=tmp_path / "kb_root")

    assert settings.embedding.export_dir == tmp_path / "from_env"
    assert settings.embedding.batch_size == 8


def test_a_relative_export_dir_is_under_the_project_root() -> None:
    settings = EmbeddingSettings.model_validate({"export_dir": "exports/onnx"})

    assert settings.export_dir == PROJECT_ROOT / "exports" / "onnx"


def test_embedding_settings_alone_leave_the_export_dir_to_the_embedder_cache() -> None:
    assert EmbeddingSettings().export_dir is None


def test_an_unknown_backend_is_rejected() -> None:
    with pytest.raises(ValidationError):
        EmbeddingSettings.model_validate({"backend": "tensorrt"})


def test_ocr_models_follow_the_kb_root_unless_chosen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(OCR_EXPORT_DIR_ENV, raising=False)
    config = tmp_path / "settings.yaml"
    config.write_text(f"kb_root: {tmp_path / 'first'}\n", encoding="utf-8")

    moved = load_settings(config, kb_root=tmp_path / "second")
    chosen = load_settings(config, kb_root=tmp_path / "second", ocr={"export_dir": "ocr/models"})

    assert moved.ocr.export_dir == tmp_path / "second" / ".model_exports"
    assert chosen.ocr.export_dir == PROJECT_ROOT / "ocr" / "models"
    assert chosen.ocr.model_variant == "int8"
