"""Which loader reads which file: one explicit table, extended by settings.

``documents.extra_suffixes`` in the settings maps more extensions onto a built-in loader by
its name, e.g. ``{".log": "text"}``; an unknown loader name fails at start, not at upload.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from kb_server.documents.base import Loader, LoaderContext
from kb_server.documents.epub import EpubLoader
from kb_server.documents.html import HtmlLoader
from kb_server.documents.image import ImageLoader
from kb_server.documents.office import DocxLoader, PptxLoader
from kb_server.documents.pdf import PdfLoader
from kb_server.documents.structured import JsonlLoader, JsonLoader
from kb_server.documents.tables import CsvLoader, XlsxLoader
from kb_server.documents.text import MarkdownLoader, TextLoader
from kb_server.errors import UnsupportedFileTypeError

LOADER_CLASSES: Mapping[str, type[Loader]] = {
    cls.name: cls
    for cls in (
        TextLoader,
        MarkdownLoader,
        CsvLoader,
        XlsxLoader,
        JsonLoader,
        JsonlLoader,
        HtmlLoader,
        DocxLoader,
        PptxLoader,
        EpubLoader,
        PdfLoader,
        ImageLoader,
    )
}


def normalize_suffix(suffix: str) -> str:
    suffix = suffix.strip().lower()
    return suffix if suffix.startswith(".") else f".{suffix}"


class LoaderRegistry:
    """Maps file extensions to loader instances built once for a given context."""

    def __init__(self, context: LoaderContext) -> None:
        self._by_suffix: dict[str, Loader] = {}
        instances = {name: cls(context) for name, cls in LOADER_CLASSES.items()}
        for loader in instances.values():
            for suffix in loader.suffixes:
                self._by_suffix[suffix] = loader
        for suffix, loader_name in context.documents.extra_suffixes.items():
            if loader_name not in instances:
                raise ValueError(
                    f"documents.extra_suffixes maps {suffix!r} to unknown loader "
                    f"{loader_name!r}; known loaders: {', '.join(sorted(instances))}"
                )
            self._by_suffix[normalize_suffix(suffix)] = instances[loader_name]

    @property
    def supported_suffixes(self) -> list[str]:
        return sorted(self._by_suffix)

    def is_supported(self, path: Path | str) -> bool:
        return Path(path).suffix.lower() in self._by_suffix

    def loader_for(self, path: Path | str) -> Loader:
        suffix = Path(path).suffix.lower()
        try:
            return self._by_suffix[suffix]
        except KeyError:
            raise UnsupportedFileTypeError(suffix, self._by_suffix) from None
