"""Where an ONNX export of a model lives, what its manifest records, and reading it back.

This module is light on purpose: a process whose export already exists reads it from here
without importing torch or sentence-transformers.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ValidationError

from kb_server.embedding.probes import ProbeAgreement
from kb_server.embedding.resolution import ResolvedModel, weights_location
from kb_server.fingerprints import digest, installed_versions

logger = logging.getLogger(__name__)

# Bump when the files or the manifest an export holds change: older exports are then redone.
# 4: int8 up-projections; 5: + attention; 6: int8 searched; 7: + row-scaled int8
EXPORT_FORMAT_VERSION: Final = 7
MANIFEST_FILE: Final = "manifest.json"
FLOAT_MODEL_FILE: Final = "model.onnx"
INT8_MODEL_FILE: Final = "model_int8.onnx"
TOKENIZER_FILE: Final = "tokenizer.json"
OUTPUT_NAME: Final = "sentence_embedding"
# The packages whose versions shape an export (their change means a new fingerprint).
_VERSIONED_PACKAGES: Final = (
    "torch",
    "onnxruntime",
    "onnx",
    "sentence-transformers",
    "transformers",
)
_UNSAFE_SLUG_CHARACTERS: Final = re.compile(r"[^A-Za-z0-9._-]+")


class OnnxBackendError(Exception):
    """The ONNX backend cannot serve this model (export or session failed); torch can."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TokenizerSpec(BaseModel):
    """How texts become model inputs, as the model's Hugging Face tokenizer does it."""

    # tokenizers: the tokenizer.json run by the tokenizers library alone (no torch import);
    # transformers: AutoTokenizer, for a tokenizer the first cannot reproduce exactly.
    runtime: Literal["tokenizers", "transformers"]
    max_length: int
    pad_id: int
    pad_token: str
    pad_type_id: int
    padding_side: Literal["left", "right"]
    truncation_side: Literal["left", "right"]


class ExportManifest(BaseModel):
    """manifest.json: what was exported, from where, with what, and how well int8 agreed."""

    format_version: int
    fingerprint: str
    model: str
    source: str
    location: str
    dimension: int
    max_seq_length: int
    input_names: list[str]
    output_name: str
    tokenizer: TokenizerSpec
    versions: dict[str, str]
    export_seconds: float
    created_at: str
    # The float32 ONNX graph against the torch model, on the probe texts.
    float_check: ProbeAgreement
    # The int8 graph against the float32 one; int8 is used only when accepted.
    int8_check: ProbeAgreement
    int8_accepted: bool
    # ONNX Runtime operators the float graph was fused into, with counts ({}: none).
    fused_operators: dict[str, int] = {}
    # MatMuls of the int8 file left in float (kb_server/embedding/int8_selection.py).
    int8_kept_float: list[str] = []
    # MatMuls of the int8 file in row-scaled int8 (kb_server/embedding/row_scaled_int8.py).
    int8_row_scaled: list[str] = []


@dataclass(frozen=True)
class OnnxExport:
    """A finished export folder and its manifest."""

    folder: Path
    manifest: ExportManifest

    @property
    def float_model(self) -> Path:
        return self.folder / FLOAT_MODEL_FILE

    @property
    def int8_model(self) -> Path:
        return self.folder / INT8_MODEL_FILE


def export_folder(resolved: ResolvedModel, export_dir: Path) -> Path:
    """``<export_dir>/<model slug>-<fingerprint>``: one folder per model and set of weights."""
    return export_dir / f"{model_slug(resolved.name)}-{weights_fingerprint(resolved)}"


def model_slug(name: str) -> str:
    """A file-name-safe model name: "BAAI/bge-small-zh-v1.5" -> "BAAI-bge-small-zh-v1.5"."""
    slug = _UNSAFE_SLUG_CHARACTERS.sub("-", name).strip("-.")
    return slug[-80:].lstrip("-.") or "model"


def weights_fingerprint(resolved: ResolvedModel) -> str:
    """A hash of the weight files (real path, sizes, mtimes), the library versions and format.

    Any change to the model folder, an upgrade of torch, ONNX Runtime, onnx, transformers or
    sentence-transformers, or a new export format gives a new fingerprint, so a stale export is
    never used.
    """
    location = weights_location(resolved)
    description = {
        "format": EXPORT_FORMAT_VERSION,
        "location": location,
        "files": _file_stats(Path(location)) if resolved.is_local else [],
        "versions": package_versions(),
    }
    return digest(description)


def package_versions() -> dict[str, str]:
    """The installed versions of the packages that shape an export (read without importing)."""
    return installed_versions(_VERSIONED_PACKAGES)


def read_export(folder: Path) -> OnnxExport | None:
    """The finished export in ``folder``, or None when there is none (or it is unusable)."""
    manifest_path = folder / MANIFEST_FILE
    try:
        text = manifest_path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        logger.warning("Cannot read the ONNX export manifest %s: %s", manifest_path, error)
        return None
    try:
        manifest = ExportManifest.model_validate_json(text)
    except ValidationError as error:
        logger.warning("Ignoring the ONNX export in %s: bad manifest (%s)", folder, error)
        return None
    export = OnnxExport(folder=folder, manifest=manifest)
    required = (export.float_model, export.int8_model, folder / TOKENIZER_FILE)
    if manifest.format_version != EXPORT_FORMAT_VERSION or not all(
        path.is_file() for path in required
    ):
        logger.warning("Ignoring the ONNX export in %s: outdated or incomplete", folder)
        return None
    return export


def _file_stats(root: Path) -> list[tuple[str, int, int]]:
    stats = []
    for directory, folders, files in os.walk(root):
        # Hidden entries (.git, .cache/huggingface download records) are not weights.
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(directory) / name
            try:
                stat = path.stat()
            except OSError:
                continue
            stats.append((str(path.relative_to(root)), stat.st_size, stat.st_mtime_ns))
    return stats
