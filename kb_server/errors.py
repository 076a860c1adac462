"""Errors raised by kb_server services.

Each error carries a stable ``code`` (for programs) and a readable message (for people).
The HTTP layer maps ``http_status`` onto the response; the CLI prints the message and exits
non-zero. Nothing here depends on FastAPI.
"""

from __future__ import annotations

from collections.abc import Iterable


class KbError(Exception):
    """Base class for every error a user can cause or fix."""

    code = "kb_error"
    http_status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInputError(KbError):
    """A value a user supplied is not acceptable (empty text, bad name, ...)."""

    code = "invalid_input"
    http_status = 422


class UnsupportedFileTypeError(KbError):
    code = "unsupported_file_type"
    http_status = 415

    def __init__(self, suffix: str, supported: Iterable[str]) -> None:
        shown = suffix or "(no extension)"
        supported_list = ", ".join(sorted(supported))
        super().__init__(f"Unsupported file type {shown!r}. Supported types: {supported_list}")
        self.suffix = suffix
        self.supported = sorted(supported)


class DocumentLoadError(KbError):
    """A file of a supported type that cannot be read: corrupt, encrypted, wrong content."""

    code = "document_unreadable"
    http_status = 422

    def __init__(self, file_name: str, reason: str) -> None:
        super().__init__(f"Cannot read {file_name!r}: {reason}")
        self.file_name = file_name
        self.reason = reason


class UploadTooLargeError(KbError):
    """An upload, or one file in it, is larger than the settings allow; nothing is stored."""

    code = "upload_too_large"
    http_status = 413

    def __init__(self, message: str, *, setting: str, limit_mb: float, file_name: str = "") -> None:
        super().__init__(message)
        self.setting = setting
        self.limit_mb = limit_mb
        self.file_name = file_name


class OcrUnavailableError(KbError):
    code = "ocr_unavailable"
    http_status = 503


class EmbeddingModelUnavailableError(KbError):
    """No embedding model could be found or loaded, nor its fallback where one is set."""

    code = "embedding_model_unavailable"
    http_status = 503

    def __init__(self, model: str, reason: str) -> None:
        super().__init__(f"Embedding model {model!r} is unavailable: {reason}")
        self.model = model
        self.reason = reason


class LlmUnavailableError(KbError):
    """The LLM server cannot be reached, or stopped answering (connect/read timeout)."""

    code = "llm_unavailable"
    http_status = 503


class LlmRequestError(KbError):
    """The LLM server answered with an error; ``upstream_status`` is its HTTP status."""

    code = "llm_error"
    http_status = 502

    def __init__(self, message: str, upstream_status: int) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status


class UnknownModelError(KbError):
    code = "unknown_model"
    http_status = 404


def require_valid_unicode(text: str, what: str) -> str:
    """``text`` itself, or InvalidInputError when it holds lone surrogates (a JSON "\\ud800"
    escape decodes to one), which no tokenizer, index or file can take."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(
            f"{what} contains characters that are not valid Unicode (lone surrogates)"
        ) from None
    return text
