"""Retrieval quality on CMRC 2018 (trial): hit@1/5/10, MRR and search latency per search mode.

Indexes the 256 paragraphs of the trial set into a temporary KB root (one document per
paragraph, default chunk settings) and asks its 1,000 non-empty questions in dense, bm25 and
hybrid mode, plus hybrid+rerank where a reranker model can be loaded. A question is a hit at k
when one of its first k chunks comes from its paragraph or contains an answer text. Prints a
markdown table ready for docs/BENCHMARKS.md.
Usage: .venv/bin/python benchmarks/retrieval_cmrc.py [PATH] [--model NAME] [--limit N]
       [--out FILE.json]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

from kb_server.cli.progress import TqdmProgress
from kb_server.eval.report import format_table, report_json, summary_line, write_json
from kb_server.eval.runner import default_modes, run_eval
from kb_server.eval.squad_kb import SQUAD_KB_NAME, build_squad_kb, temporary_kb_settings
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.settings import PROJECT_ROOT, load_settings

DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data" / "cmrc2018_trial.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("path", type=Path, nargs="?", default=DEFAULT_DATA, help="SQuAD JSON")
    parser.add_argument("--model", help="embedding model (default: settings, with fallback)")
    parser.add_argument("--limit", type=int, help="ask only the first N questions")
    parser.add_argument("--out", type=Path, help="also write the JSON results here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not args.path.is_file():
        sys.stderr.write(f"error: data set not found: {args.path}\n")
        return 2

    settings = load_settings()
    if args.model:
        settings = load_settings(embedding={**settings.embedding.model_dump(), "model": args.model})
    modes = default_modes(settings)
    with temporary_kb_settings(settings) as temp_settings:
        service = KnowledgeBaseService(temp_settings)
        progress = TqdmProgress("CMRC 2018 trial")
        started = time.perf_counter()
        questions = build_squad_kb(service, SQUAD_KB_NAME, args.path, progress=progress)
        build_s = time.perf_counter() - started
        progress.close()
        kb = service.get_kb(SQUAD_KB_NAME)
        report = run_eval(
            service, SQUAD_KB_NAME, questions[: args.limit], modes, top_k=10, show_progress=True
        )
        service.db.dispose()
    if args.out:
        dataset = {"kind": "squad", "path": str(args.path), "paragraphs": kb.file_count}
        write_json(args.out, report_json(report, settings.retrieval, dataset))

    lines = [
        f"date: {date.today().isoformat()}; machine: {os.cpu_count()} cores, "
        f"{platform.machine()}, Python {platform.python_version()}",
        f"data: {args.path.name}: {kb.file_count} paragraphs -> {kb.chunk_count} chunks "
        f"(chunk_size {kb.splitter.chunk_size}, overlap {kb.splitter.chunk_overlap}), "
        f"built in {build_s:.1f} s",
        summary_line(report),
        f"retrieval settings: {settings.retrieval.model_dump(mode='json', exclude={'reranker'})}",
        "",
        format_table(report),
    ]
    sys.stdout.write("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
