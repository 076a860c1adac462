"""Model resolution order; nothing here loads a model."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from kb_server.embedding import EmbeddingModelUnavailableError, hub_access_allowed, resolve_model
from kb_server.settings import EmbeddingModelSettings, EmbeddingSettings

BGE_ZH = "BAAI/bge-small-zh-v1.5"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture
def empty_hub_cache(tmp_path: Path) -> Path:
    """Keeps whatever the machine's real Hugging Face cache holds out of these tests."""
    cache = tmp_path / "hub_cache"
    cache.mkdir()
    return cache


def _link(target: Path, link: Path) -> Path:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=True)
    return link


def test_model_root_folder_named_after_last_part_of_hub_id_is_found(
    tmp_path: Path, minilm_model_path: Path, empty_hub_cache: Path
) -> None:
    folder = _link(minilm_model_path, tmp_path / "models" / "bge-small-zh-v1.5")
    settings = EmbeddingSettings(model_root=tmp_path / "models")

    resolved = resolve_model(BGE_ZH, settings, hub_allowed=False, hub_cache_dir=empty_hub_cache)

    assert (resolved.name, resolved.source, resolved.location) == (
        BGE_ZH,
        "model_root",
        str(folder),
    )
    assert resolved.is_local


def test_model_root_folder_with_the_full_hub_id_is_found(
    tmp_path: Path, minilm_model_path: Path, empty_hub_cache: Path
) -> None:
    folder = _link(minilm_model_path, tmp_path / "models" / "BAAI" / "bge-small-zh-v1.5")
    settings = EmbeddingSettings(model_root=tmp_path / "models")

    resolved = resolve_model(BGE_ZH, settings, hub_allowed=False, hub_cache_dir=empty_hub_cache)

    assert resolved.location == str(folder)


def test_explicit_path_wins_over_model_root(
    tmp_path: Path, minilm_model_path: Path, empty_hub_cache: Path
) -> None:
    _link(minilm_model_path, tmp_path / "models" / "bge-small-zh-v1.5")
    explicit = _link(minilm_model_path, tmp_path / "elsewhere" / "my-bge")
    settings = EmbeddingSettings(
        model_root=tmp_path / "models", models={BGE_ZH: EmbeddingModelSettings(path=explicit)}
    )

    resolved = resolve_model(BGE_ZH, settings, hub_allowed=False, hub_cache_dir=empty_hub_cache)

    assert (resolved.source, resolved.location) == ("explicit_path", str(explicit))


def test_model_name_that_is_a_directory_is_used_as_is(
    minilm_model_path: Path, empty_hub_cache: Path
) -> None:
    name = str(minilm_model_path)

    resolved = resolve_model(
        name, EmbeddingSettings(), hub_allowed=False, hub_cache_dir=empty_hub_cache
    )

    assert (resolved.source, resolved.location) == ("explicit_path", name)


def test_missing_explicit_path_warns_and_falls_through_to_model_root(
    tmp_path: Path,
    minilm_model_path: Path,
    empty_hub_cache: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = _link(minilm_model_path, tmp_path / "models" / "bge-small-zh-v1.5")
    settings = EmbeddingSettings(
        model_root=tmp_path / "models",
        models={BGE_ZH: EmbeddingModelSettings(path=tmp_path / "missing")},
    )

    with caplog.at_level(logging.WARNING, logger="kb_server.embedding"):
        resolved = resolve_model(BGE_ZH, settings, hub_allowed=False, hub_cache_dir=empty_hub_cache)

    assert resolved.location == str(folder)
    assert [record.levelno for record in caplog.records] == [logging.WARNING]


def test_hub_cache_is_searched_before_the_package(tmp_path: Path, minilm_model_path: Path) -> None:
    repo = tmp_path / "hub_cache" / "models--sentence-transformers--all-MiniLM-L6-v2"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd", encoding="utf-8")
    snapshot = _link(minilm_model_path, repo / "snapshots" / "0123abcd")

    resolved = resolve_model(
        MINILM, EmbeddingSettings(), hub_allowed=False, hub_cache_dir=tmp_path / "hub_cache"
    )

    assert resolved.source == "hub_cache"
    assert Path(resolved.location) == snapshot


def test_python_package_provides_minilm_when_nothing_else_has_it(
    minilm_model_path: Path, empty_hub_cache: Path
) -> None:
    resolved = resolve_model(
        MINILM, EmbeddingSettings(), hub_allowed=False, hub_cache_dir=empty_hub_cache
    )

    assert (resolved.source, Path(resolved.location)) == ("package", minilm_model_path)


def test_unknown_model_offline_is_not_found_and_says_how_to_download_it(
    tmp_path: Path, empty_hub_cache: Path
) -> None:
    settings = EmbeddingSettings(model_root=tmp_path / "models")

    with pytest.raises(EmbeddingModelUnavailableError) as caught:
        resolve_model(BGE_ZH, settings, hub_allowed=False, hub_cache_dir=empty_hub_cache)

    assert caught.value.code == "embedding_model_unavailable"
    assert caught.value.http_status == 503
    assert BGE_ZH in caught.value.message
    assert "download" in caught.value.message


def test_unknown_model_online_is_left_to_the_hub(empty_hub_cache: Path) -> None:
    resolved = resolve_model(
        BGE_ZH, EmbeddingSettings(), hub_allowed=True, hub_cache_dir=empty_hub_cache
    )

    assert (resolved.source, resolved.location, resolved.is_local) == ("hub", BGE_ZH, False)


def test_missing_local_path_is_never_sent_to_the_hub(tmp_path: Path, empty_hub_cache: Path) -> None:
    with pytest.raises(EmbeddingModelUnavailableError):
        resolve_model(
            str(tmp_path / "no-such-model"),
            EmbeddingSettings(),
            hub_allowed=True,
            hub_cache_dir=empty_hub_cache,
        )


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_offline_environment_variable_forbids_the_hub(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, "1")

    assert hub_access_allowed() is False
