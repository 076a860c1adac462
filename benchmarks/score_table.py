"""Typical ``score`` values per search mode, for relevant and unrelated chunks, on CMRC 2018.

Indexes the 256 paragraphs of the trial set (one document per paragraph, default chunk
settings) into a temporary KB root and asks its 1,000 non-empty questions in each mode:
- relevant: the best score among the top 10 chunks that come from the question's own
  paragraph (questions whose paragraph is not in the top 10 are left out of this column);
- unrelated: the top score when the search is limited to the other articles' paragraphs, i.e.
  what the best chunk scores when the knowledge base holds nothing about the question.
A last row repeats hybrid with retrieval.unfit_dense_factor 1, so that the blend of cosine
and keyword score shows (by default this English model takes no part in Chinese questions).
Each cell gives the median and, in brackets, the 10th and 90th percentiles. Reranked rows need
a cross-encoder that loads offline (retrieval.reranker.model, or --reranker NAME_OR_PATH).
Prints a markdown table ready for docs/RETRIEVAL.md.
Usage: .venv/bin/python benchmarks/score_table.py [PATH] [--model NAME] [--reranker NAME]
       [--step N]
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from tqdm import tqdm

from kb_server.eval.datasets import EvalQuestion
from kb_server.eval.metrics import percentile
from kb_server.eval.squad_kb import SQUAD_KB_NAME, build_squad_kb, temporary_kb_settings
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.retrieval.reranker import load_reranker
from kb_server.settings import PROJECT_ROOT, SearchMode, Settings, load_settings

DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data" / "cmrc2018_trial.json"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
TOP_K = 10
BLENDED_LABEL = "hybrid, full dense weight"
# Row label -> (search mode, rerank).
MODES: dict[str, tuple[SearchMode, bool]] = {
    "dense": ("dense", False),
    "bm25": ("bm25", False),
    "hybrid": ("hybrid", False),
    "dense + rerank": ("dense", True),
    "hybrid + rerank": ("hybrid", True),
}


@dataclass
class ModeScores:
    relevant: list[float] = field(default_factory=list)
    unrelated: list[float] = field(default_factory=list)


def article(file_name: str) -> str:
    """The article a paragraph file belongs to: ``<title>_<paragraph index>.txt``."""
    return file_name.rsplit("_", 1)[0]


def measure(
    service: KnowledgeBaseService,
    questions: Sequence[EvalQuestion],
    files: Sequence[str],
    search_mode: SearchMode,
    rerank: bool,
    label: str,
) -> ModeScores:
    result = ModeScores()
    for question in tqdm(questions, desc=label, unit="q", file=sys.stderr):
        own = set(question.sources)
        hits = service.search(
            SQUAD_KB_NAME, question.question, top_k=TOP_K, search_mode=search_mode, rerank=rerank
        )
        relevant = [hit.score for hit in hits if hit.chunk.file_name in own]
        if relevant:
            result.relevant.append(max(relevant))
        articles = {article(name) for name in own}
        others = [name for name in files if article(name) not in articles]
        elsewhere = service.search(
            SQUAD_KB_NAME,
            question.question,
            top_k=1,
            file_names=others,
            search_mode=search_mode,
            rerank=rerank,
        )
        result.unrelated.append(elsewhere[0].score if elsewhere else 0.0)
    return result


def cell(values: Sequence[float]) -> str:
    if not values:
        return "-"
    return (
        f"{percentile(values, 50):.2f} ({percentile(values, 10):.2f}-{percentile(values, 90):.2f})"
    )


def with_models(settings: Settings, model: str, reranker: str | None) -> Settings:
    values = settings.model_dump()
    values["embedding"].update(model=model, fallback_model=None)
    if reranker is not None:
        path = Path(reranker).expanduser()
        if path.is_dir():
            values["embedding"]["models"][reranker] = {"path": path}
        values["retrieval"]["reranker"]["model"] = reranker
    return Settings.model_validate(values)


def with_full_dense_weight(settings: Settings) -> Settings:
    values = settings.model_dump()
    values["retrieval"]["unfit_dense_factor"] = 1.0
    return Settings.model_validate(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("path", type=Path, nargs="?", default=DEFAULT_DATA, help="SQuAD JSON")
    parser.add_argument("--model", default=MINILM, help=f"embedding model (default {MINILM})")
    parser.add_argument("--reranker", help="cross-encoder name or folder (default: settings)")
    parser.add_argument("--step", type=int, default=1, help="ask every Nth question only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not args.path.is_file():
        sys.stderr.write(f"error: data set not found: {args.path}\n")
        return 2

    settings = with_models(load_settings(), args.model, args.reranker)
    has_reranker = load_reranker(settings) is not None
    modes = {label: mode for label, mode in MODES.items() if has_reranker or not mode[1]}
    with temporary_kb_settings(settings) as temp_settings:
        service = KnowledgeBaseService(temp_settings)
        questions = build_squad_kb(service, SQUAD_KB_NAME, args.path)[:: args.step]
        files = [file.file_name for file in service.list_files(SQUAD_KB_NAME)]
        results = {
            label: measure(service, questions, files, search_mode, rerank, label)
            for label, (search_mode, rerank) in modes.items()
        }
        # By default an English model gets no say on Chinese questions (hybrid = bm25); this
        # row shows the blend a model fit for the language would give, with this model's
        # cosines standing in.
        blended = KnowledgeBaseService(with_full_dense_weight(temp_settings), db=service.db)
        results[BLENDED_LABEL] = measure(blended, questions, files, "hybrid", False, BLENDED_LABEL)
        kb = service.get_kb(SQUAD_KB_NAME)
        service.db.dispose()

    lines = [
        f"date: {date.today().isoformat()}; data: {args.path.name}, {kb.file_count} paragraphs "
        f"-> {kb.chunk_count} chunks, {len(questions)} questions; embedding: {kb.embed_model}; "
        f"reranker: {settings.retrieval.reranker.model if has_reranker else 'none offline'}",
        "",
        "| mode | relevant: own paragraph's best chunk in the top 10 "
        "| unrelated: top chunk with the question's article left out | questions with a "
        "relevant chunk in the top 10 |",
        "| --- | --- | --- | --- |",
    ]
    for label, scores in results.items():
        lines.append(
            f"| {label} | {cell(scores.relevant)} | {cell(scores.unrelated)} "
            f"| {len(scores.relevant)} / {len(questions)} |"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
