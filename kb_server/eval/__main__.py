"""Evaluate retrieval: hit@1/5/10, MRR and search latency per search mode.

    python -m kb_server.eval --kb NAME --qa questions.jsonl [--modes dense,bm25,hybrid]
    python -m kb_server.eval --squad cmrc2018_trial.json [--limit 200] [--out results.json]

``--qa`` evaluates an existing knowledge base with a JSONL file of questions, each with the
answer text a retrieved chunk should contain and/or the source file it should come from.
``--squad`` indexes a SQuAD-style file into a temporary KB root (one document per paragraph)
and evaluates it; the configured KB root is never touched.
Exit codes: 0 done, 2 an input error (one message on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kb_server.cli.errors import exit_status_of
from kb_server.cli.progress import TqdmProgress
from kb_server.eval.datasets import EvalInputError, EvalQuestion, load_qa_jsonl
from kb_server.eval.report import format_table, report_json, summary_line, write_json
from kb_server.eval.runner import (
    EVAL_MODES,
    RERANK_MODE,
    EvalReport,
    default_modes,
    reranker_available,
    run_eval,
)
from kb_server.eval.squad_kb import SQUAD_KB_NAME, build_squad_kb, temporary_kb_settings
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.settings import Settings, load_settings

EXIT_OK = 0


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m kb_server.eval",
        description="Evaluate retrieval (hit@k, MRR, latency) per search mode.",
    )
    add = parser.add_argument
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--qa", type=Path, help="JSONL questions for the KB named by --kb")
    source.add_argument(
        "--squad", type=Path, help="SQuAD-style JSON, indexed into a temporary KB root"
    )
    add("--kb", help="knowledge base to evaluate (with --qa)")
    add("--modes", help=f"comma-separated, from: {', '.join(EVAL_MODES)} (default: all available)")
    add("--limit", type=positive_int, help="evaluate only the first N questions")
    add("--top-k", type=positive_int, default=10, help="chunks retrieved per question")
    add("--out", type=Path, default=Path("eval_results.json"), help="JSON results file")
    add("-c", "--config", type=Path, help="settings file (default: configs/settings.yaml)")
    add("-q", "--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.qa is not None and not args.kb:
        parser.error("--qa needs --kb NAME")
    if args.squad is not None and args.kb:
        parser.error("--squad builds its own temporary KB; --kb goes with --qa")
    return args


def chosen_modes(requested: str | None, settings: Settings) -> list[str]:
    if requested is None:
        return default_modes(settings)
    modes = list(dict.fromkeys(mode.strip() for mode in requested.split(",") if mode.strip()))
    unknown = [mode for mode in modes if mode not in EVAL_MODES]
    if unknown or not modes:
        raise EvalInputError(
            f"unknown search modes {unknown or requested!r}; choose from {', '.join(EVAL_MODES)}"
        )
    if RERANK_MODE in modes and not reranker_available(settings):
        raise EvalInputError(
            f"mode {RERANK_MODE!r} needs a reranker, and none can be loaded here "
            "(retrieval.reranker.model)"
        )
    return modes


def existing_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise EvalInputError(f"{what} not found: {path}")
    return path


def evaluate_squad(
    args: argparse.Namespace, settings: Settings
) -> tuple[EvalReport, dict[str, Any]]:
    squad = existing_file(args.squad, "SQuAD file")
    modes = chosen_modes(args.modes, settings)
    with temporary_kb_settings(settings) as temp_settings:
        service = KnowledgeBaseService(temp_settings)
        try:
            progress = TqdmProgress("building temporary KB", enabled=not args.quiet)
            questions = build_squad_kb(service, SQUAD_KB_NAME, squad, progress=progress)
            progress.close()
            kb = service.get_kb(SQUAD_KB_NAME)
            report = run_eval(
                service,
                SQUAD_KB_NAME,
                questions[: args.limit],
                modes,
                args.top_k,
                show_progress=not args.quiet,
            )
        finally:
            service.db.dispose()
    dataset = {
        "kind": "squad",
        "path": str(squad),
        "paragraphs": kb.file_count,
        "chunks": kb.chunk_count,
        "questions_in_file": len(questions),
    }
    return report, dataset


def evaluate_qa(args: argparse.Namespace, settings: Settings) -> tuple[EvalReport, dict[str, Any]]:
    questions: list[EvalQuestion] = load_qa_jsonl(existing_file(args.qa, "QA file"))
    service = KnowledgeBaseService(settings)
    kb = service.get_kb(args.kb)  # KbNotFoundError before any model is loaded
    modes = chosen_modes(args.modes, settings)
    report = run_eval(
        service, kb.name, questions[: args.limit], modes, args.top_k, show_progress=not args.quiet
    )
    dataset = {
        "kind": "qa",
        "path": str(args.qa),
        "files": kb.file_count,
        "chunks": kb.chunk_count,
        "questions_in_file": len(questions),
    }
    return report, dataset


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if args.squad is not None:
        report, dataset = evaluate_squad(args, settings)
    else:
        report, dataset = evaluate_qa(args, settings)
    write_json(args.out, report_json(report, settings.retrieval, dataset))
    sys.stdout.write(summary_line(report) + "\n\n" + format_table(report) + "\n")
    sys.stdout.write(f"results written to {args.out}\n")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    return exit_status_of(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
