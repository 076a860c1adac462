"""A knowledge base with one document per SQuAD paragraph, in a KB root of its own.

The evaluation never writes into the user's KB root: ``temporary_kb_settings`` gives settings
whose KB root (and SQLite database) live in a temporary folder removed afterwards.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kb_server.eval.datasets import EvalInputError, EvalQuestion, load_squad
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.knowledge.types import IngestProgress
from kb_server.settings import Settings

SQUAD_KB_NAME = "squad_eval"


@contextmanager
def temporary_kb_settings(settings: Settings) -> Iterator[Settings]:
    """``settings`` with the KB root and the database in a temporary folder (deleted after)."""
    with tempfile.TemporaryDirectory(prefix="kb-eval-") as folder:
        yield settings.model_copy(update={"kb_root": Path(folder), "database_url": None})


def build_squad_kb(
    service: KnowledgeBaseService,
    kb_name: str,
    squad_path: Path,
    *,
    progress: IngestProgress | None = None,
) -> list[EvalQuestion]:
    """Create ``kb_name`` holding every paragraph of ``squad_path``; returns its questions.

    Each question's expected source is its paragraph's file (``<title>_<index>.txt``).
    """
    paragraphs = load_squad(squad_path)
    service.create_kb(kb_name, description=f"evaluation: {squad_path.name}")
    for paragraph in paragraphs:
        service.save_file(kb_name, paragraph.file_name, paragraph.context.encode(), override=False)
    report = service.add_files(
        kb_name, [paragraph.file_name for paragraph in paragraphs], progress=progress
    )
    if report.files_failed:
        shown = "; ".join(f"{name}: {why}" for name, why in list(report.files_failed.items())[:3])
        raise EvalInputError(
            f"{len(report.files_failed)} paragraphs of {squad_path} could not be indexed: {shown}"
        )
    return [question for paragraph in paragraphs for question in paragraph.questions]
