"""Names users supply, checked before they touch the disk; every path stays under the KB root.

Layout under the KB root:
    <kb>/content/<file name>              uploaded files (sub-folders allowed)
    <kb>/vector_store/<model folder>/     one index per embedding model
    <kb>/keyword_index/                   BM25 index (rebuilt from info.db when lost)
    .locks/<kb>.lock                      cross-process write lock of a KB
    info.db                               default metadata database
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path, PurePosixPath

from kb_server.errors import InvalidInputError

KB_NAME_MAX_CHARS = 64
FILE_NAME_MAX_CHARS = 255
FILE_PATH_MAX_CHARS = 512
# Letters of any script (Chinese included), digits, and - _ . inside the name.
_KB_NAME_PATTERN = re.compile(r"^[^\W_][\w.\-]*$")
_FORBIDDEN_IN_FILE_NAMES = set('\\:*?"<>|\0')
# Controls, invisible format characters (bidi overrides such as U+202E, zero-width ones),
# lone surrogates (unwritable to disk) and line/paragraph separators.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_MODEL_FOLDER_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class InvalidNameError(InvalidInputError):
    code = "invalid_name"


def validate_kb_name(name: str) -> str:
    """The normalized KB name, or InvalidNameError saying what is wrong."""
    normalized = unicodedata.normalize("NFC", name).strip()
    if not normalized:
        raise InvalidNameError("knowledge base name is empty")
    if len(normalized) > KB_NAME_MAX_CHARS:
        raise InvalidNameError(f"knowledge base name is longer than {KB_NAME_MAX_CHARS} characters")
    if ".." in normalized or not _KB_NAME_PATTERN.match(normalized):
        raise InvalidNameError(
            f"invalid knowledge base name {name!r}: use letters (Chinese included), digits, "
            "'-', '_' or '.', starting with a letter or digit"
        )
    return normalized


def validate_file_name(name: str) -> str:
    """A file name relative to a KB's content folder, normalized to NFC and forward slashes.

    Sub-folders are allowed; absolute paths, '..', empty parts, drive letters, control and
    shell-special characters are not.
    """
    normalized = unicodedata.normalize("NFC", name).strip().replace("\\", "/")
    if not normalized:
        raise InvalidNameError("file name is empty")
    if len(normalized) > FILE_PATH_MAX_CHARS:
        raise InvalidNameError(f"file path is longer than {FILE_PATH_MAX_CHARS} characters")
    if normalized.startswith("/"):
        raise InvalidNameError(f"file name {name!r} must be relative, not absolute")
    parts = PurePosixPath(normalized).parts
    for part in parts:
        if part in ("", ".", "..") or part.startswith("."):
            raise InvalidNameError(f"file name {name!r} has a forbidden part {part!r}")
        if len(part) > FILE_NAME_MAX_CHARS:
            raise InvalidNameError(f"a part of {name!r} is longer than {FILE_NAME_MAX_CHARS}")
        if any(_forbidden_in_file_name(ch) for ch in part):
            raise InvalidNameError(f"file name {name!r} contains a forbidden character")
        if _looks_like_path_syntax(part):
            raise InvalidNameError(f"file name {name!r} has a part {part!r} that reads as a path")
    return "/".join(parts)


def _forbidden_in_file_name(char: str) -> bool:
    return char in _FORBIDDEN_IN_FILE_NAMES or unicodedata.category(char) in _FORBIDDEN_CATEGORIES


def _looks_like_path_syntax(part: str) -> bool:
    """Whether compatibility folding (NFKC, as some clients and archivers apply) turns ``part``
    into a separator or a dot name: fullwidth '．．／' or the one-dot leader U+2024 does.
    Other fullwidth punctuation, common in Chinese titles ('：', '（'), stays allowed."""
    folded = unicodedata.normalize("NFKC", part)
    return "/" in folded or "\\" in folded or folded.startswith(".")


def model_folder_name(model: str) -> str:
    """Folder name of a model: 'BAAI/bge-small-zh-v1.5' -> 'BAAI--bge-small-zh-v1.5'."""
    return _MODEL_FOLDER_UNSAFE.sub("_", model.replace("/", "--")).strip(".") or "model"


def ensure_under(root: Path, path: Path) -> Path:
    """``path`` resolved, or InvalidNameError when it would leave ``root`` (symlinks included)."""
    resolved_root = root.resolve()
    resolved = path.resolve()
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise InvalidNameError(f"path {path} leaves {root}")
    return resolved


class KbPaths:
    """Where one knowledge base keeps its files, every path checked to stay under the root."""

    def __init__(self, kb_root: Path, kb_name: str) -> None:
        self.kb_root = kb_root
        self.name = validate_kb_name(kb_name)
        self.root = ensure_under(kb_root, kb_root / self.name)

    @property
    def content(self) -> Path:
        return self.root / "content"

    def vector_store(self, embed_model: str) -> Path:
        return self.root / "vector_store" / model_folder_name(embed_model)

    @property
    def keyword_index(self) -> Path:
        return self.root / "keyword_index"

    def content_file(self, file_name: str) -> Path:
        relative = validate_file_name(file_name)
        return ensure_under(self.content, self.content / relative)

    def lock_file(self) -> Path:
        return self.kb_root / ".locks" / f"{self.name}.lock"
