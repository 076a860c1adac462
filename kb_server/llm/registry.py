"""The configured chat models by name: every ``llm_models`` endpoint and every local model
served by our worker, each as an OpenAI-compatible client."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

from kb_server.errors import UnknownModelError
from kb_server.llm.base import LLMClient
from kb_server.llm.client import OpenAICompatibleClient
from kb_server.settings import LlmEndpointSettings, LocalModelSettings, Settings

logger = logging.getLogger(__name__)

# The LLM-free answerer; the chat layer handles it, so no client may take its name.
EXTRACTIVE_MODEL_NAME = "extractive"
DEFAULT_CONTEXT_WINDOW = 8192
_CONTEXT_WINDOW_KEYS = ("max_position_embeddings", "seq_length")
# A worker bound to every interface is reached over loopback.
_WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def build_llm_clients(settings: Settings) -> dict[str, LLMClient]:
    """One client per configured model; a name configured twice is a ``ValueError``."""
    both = sorted(settings.llm_models.keys() & settings.local_models.keys())
    if both:
        raise ValueError(
            f"LLM name(s) {', '.join(map(repr, both))} appear in both llm_models and "
            "local_models; each name must be configured once"
        )
    names = settings.llm_models.keys() | settings.local_models.keys()
    if EXTRACTIVE_MODEL_NAME in names:
        raise ValueError(
            f"{EXTRACTIVE_MODEL_NAME!r} is reserved for the LLM-free answerer; "
            "configure the LLM under another name"
        )
    clients: dict[str, LLMClient] = {}
    for name, endpoint in settings.llm_models.items():
        clients[name] = OpenAICompatibleClient(name, endpoint, settings.llm)
    for name, local in settings.local_models.items():
        # Our own worker accepts stream_options, so its streams report usage.
        endpoint = local_model_endpoint(local)
        clients[name] = OpenAICompatibleClient(name, endpoint, settings.llm, stream_usage=True)
    return clients


def get_llm_client(clients: Mapping[str, LLMClient], name: str) -> LLMClient:
    try:
        return clients[name]
    except KeyError:
        configured = ", ".join(sorted(clients)) or "none"
        message = f"Unknown LLM {name!r}; configured LLMs: {configured}"
        if name == EXTRACTIVE_MODEL_NAME:
            message += (
                f". {EXTRACTIVE_MODEL_NAME!r} is the LLM-free answerer and is handled by the "
                "chat layer, not by an LLM client"
            )
        raise UnknownModelError(message) from None


def local_model_endpoint(local: LocalModelSettings) -> LlmEndpointSettings:
    """The endpoint our worker serves ``local`` on."""
    host = _WILDCARD_HOSTS.get(local.host, local.host)
    if ":" in host:
        host = f"[{host}]"
    context_window = local.context_window or model_context_window(local.path)
    # model_construct: a tiny model's real window may be below the minimum the settings
    # enforce on values people type; the model's own config is the truth here.
    return LlmEndpointSettings.model_construct(
        base_url=f"http://{host}:{local.port}/v1",
        api_key="EMPTY",
        model=None,
        context_window=context_window,
        max_tokens=local.max_new_tokens,
    )


def model_context_window(model_dir: Path) -> int:
    """The context window from ``model_dir/config.json``, or ``DEFAULT_CONTEXT_WINDOW``."""
    config_file = model_dir / "config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        logger.warning(
            "Cannot read %s (%s); assuming a context window of %d tokens",
            config_file,
            err,
            DEFAULT_CONTEXT_WINDOW,
        )
        return DEFAULT_CONTEXT_WINDOW
    # Multimodal configs keep the language model's settings under text_config.
    candidates = [config, config.get("text_config")] if isinstance(config, dict) else []
    for section in candidates:
        if not isinstance(section, dict):
            continue
        for key in _CONTEXT_WINDOW_KEYS:
            value = section.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    logger.warning(
        "%s names no %s; assuming a context window of %d tokens",
        config_file,
        " or ".join(_CONTEXT_WINDOW_KEYS),
        DEFAULT_CONTEXT_WINDOW,
    )
    return DEFAULT_CONTEXT_WINDOW
