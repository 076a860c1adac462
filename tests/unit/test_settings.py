from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from kb_server.settings import PROJECT_ROOT, Settings, load_settings


def test_project_settings_file_loads_with_documented_defaults() -> None:
    settings = load_settings()
    assert settings.splitter.chunk_size == 250
    assert settings.splitter.chunk_overlap == 50
    assert settings.kb_root == PROJECT_ROOT / "knowledge_base"


def test_yaml_values_override_defaults(tmp_path: Path) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text("splitter:\n  chunk_size: 400\nocr:\n  enabled: false\n", encoding="utf-8")
    settings = load_settings(config)
    assert settings.splitter.chunk_size == 400
    assert settings.splitter.chunk_overlap == 50
    assert settings.ocr.enabled is False


def test_environment_overrides_yaml_and_keeps_sibling_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text("splitter:\n  chunk_size: 400\n  chunk_overlap: 80\n", encoding="utf-8")
    monkeypatch.setenv("KB_SPLITTER__CHUNK_SIZE", "600")
    settings = load_settings(config)
    assert settings.splitter.chunk_size == 600
    assert settings.splitter.chunk_overlap == 80


def test_config_file_can_be_chosen_by_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "other.yaml"
    config.write_text("default_kb: manuals\n", encoding="utf-8")
    monkeypatch.setenv("KB_CONFIG_FILE", str(config))
    assert load_settings().default_kb == "manuals"


def test_relative_kb_root_is_taken_from_project_root() -> None:
    assert Settings(kb_root=Path("data/kbs")).kb_root == PROJECT_ROOT / "data" / "kbs"


def test_overlap_not_smaller_than_size_is_rejected() -> None:
    with pytest.raises(ValidationError, match="chunk_overlap"):
        load_settings(splitter={"chunk_size": 100, "chunk_overlap": 100})


def test_unknown_setting_in_file_is_rejected(tmp_path: Path) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text("chunk_sise: 300\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="chunk_sise"):
        load_settings(config)


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "absent.yaml")


def test_null_in_the_environment_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_EMBEDDING__FALLBACK_MODEL", "null")
    assert load_settings().embedding.fallback_model is None


def test_model_exports_follow_a_kb_root_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KB_EMBEDDING__EXPORT_DIR", raising=False)
    assert load_settings(kb_root=tmp_path).embedding.export_dir == tmp_path / ".model_exports"
    chosen = tmp_path / "exports"
    settings = load_settings(kb_root=tmp_path, embedding={"export_dir": chosen})
    assert settings.embedding.export_dir == chosen
