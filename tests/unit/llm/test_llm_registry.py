"""build_llm_clients and get_llm_client over configured endpoints and local models."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from kb_server.errors import UnknownModelError
from kb_server.llm.client import OpenAICompatibleClient
from kb_server.llm.registry import build_llm_clients, get_llm_client, model_context_window
from kb_server.settings import LlmEndpointSettings, LocalModelSettings, Settings


def _model_dir(tmp_path: Path, name: str, config: Mapping[str, object] | None) -> Path:
    model_dir = tmp_path / name
    model_dir.mkdir()
    if config is not None:
        (model_dir / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return model_dir


def _with_models(
    settings: Settings,
    llm_models: dict[str, LlmEndpointSettings],
    local_models: dict[str, LocalModelSettings],
) -> Settings:
    return settings.model_copy(update={"llm_models": llm_models, "local_models": local_models})


def test_clients_for_endpoints_and_local_models(settings: Settings, tmp_path: Path) -> None:
    qwen_dir = _model_dir(tmp_path, "qwen", {"max_position_embeddings": 32768})
    glm_dir = _model_dir(tmp_path, "glm", {"seq_length": 8000})
    settings = _with_models(
        settings,
        {
            "qwen-vllm": LlmEndpointSettings(
                base_url="http://127.0.0.1:8000/v1", model="Qwen/Qwen2.5-7B", context_window=4096
            ),
            "ollama": LlmEndpointSettings(base_url="http://127.0.0.1:11434/v1"),
        },
        {
            "qwen-local": LocalModelSettings(path=qwen_dir, port=20001, max_new_tokens=256),
            "glm-local": LocalModelSettings(path=glm_dir, host="0.0.0.0", port=20002),
            "pinned": LocalModelSettings(path=qwen_dir, port=20003, context_window=2048),
        },
    )

    clients = build_llm_clients(settings)

    assert sorted(clients) == ["glm-local", "ollama", "pinned", "qwen-local", "qwen-vllm"]
    assert all(isinstance(client, OpenAICompatibleClient) for client in clients.values())
    described = {
        name: (client.endpoint.base_url, client.model, client.context_window)
        for name, client in clients.items()
        if isinstance(client, OpenAICompatibleClient)
    }
    assert described == {
        "qwen-vllm": ("http://127.0.0.1:8000/v1", "Qwen/Qwen2.5-7B", 4096),
        "ollama": ("http://127.0.0.1:11434/v1", "ollama", 8192),
        "qwen-local": ("http://127.0.0.1:20001/v1", "qwen-local", 32768),
        "glm-local": ("http://127.0.0.1:20002/v1", "glm-local", 8000),
        "pinned": ("http://127.0.0.1:20003/v1", "pinned", 2048),
    }
    local = clients["qwen-local"]
    assert isinstance(local, OpenAICompatibleClient)
    assert local.endpoint.max_tokens == 256
    for client in clients.values():
        assert isinstance(client, OpenAICompatibleClient)
        client.close()


def test_context_window_falls_back_without_a_usable_config(tmp_path: Path) -> None:
    assert model_context_window(_model_dir(tmp_path, "none", None)) == 8192
    assert model_context_window(_model_dir(tmp_path, "other", {"hidden_size": 64})) == 8192
    nested = {"text_config": {"max_position_embeddings": 4096}}
    assert model_context_window(_model_dir(tmp_path, "vl", nested)) == 4096
    broken = _model_dir(tmp_path, "broken", None)
    (broken / "config.json").write_text("{not json", encoding="utf-8")
    assert model_context_window(broken) == 8192


def test_name_in_both_maps_is_a_configuration_error(settings: Settings, tmp_path: Path) -> None:
    settings = _with_models(
        settings,
        {"qwen": LlmEndpointSettings(base_url="http://127.0.0.1:8000/v1")},
        {"qwen": LocalModelSettings(path=_model_dir(tmp_path, "qwen", None))},
    )

    with pytest.raises(ValueError, match="'qwen'"):
        build_llm_clients(settings)


def test_extractive_is_not_a_configurable_llm_name(settings: Settings) -> None:
    settings = _with_models(
        settings, {"extractive": LlmEndpointSettings(base_url="http://127.0.0.1:8000/v1")}, {}
    )

    with pytest.raises(ValueError, match="extractive"):
        build_llm_clients(settings)


def test_unknown_name_lists_configured_llms(settings: Settings) -> None:
    settings = _with_models(
        settings, {"ollama": LlmEndpointSettings(base_url="http://127.0.0.1:11434/v1")}, {}
    )
    clients = build_llm_clients(settings)

    assert get_llm_client(clients, "ollama") is clients["ollama"]
    with pytest.raises(UnknownModelError) as caught:
        get_llm_client(clients, "gpt-9")
    assert caught.value.code == "unknown_model"
    assert "ollama" in caught.value.message
    with pytest.raises(UnknownModelError, match="LLM-free"):
        get_llm_client(clients, "extractive")
