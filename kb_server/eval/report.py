"""An evaluation report as a markdown table (for people and docs) and as JSON (for programs)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kb_server.eval.runner import EvalReport
from kb_server.settings import RetrievalSettings


def format_table(report: EvalReport) -> str:
    """One markdown row per mode: hit@k, MRR, latency p50/p95 in ms."""
    header = ["mode", *(f"hit@{k}" for k in report.ks), "MRR", "p50 ms", "p95 ms"]
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |",
    ]
    for mode, result in report.results.items():
        cells = [
            mode,
            *(f"{result.hit_at(k):.3f}" for k in report.ks),
            f"{result.mrr:.3f}",
            f"{result.p50_ms:.1f}",
            f"{result.p95_ms:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summary_line(report: EvalReport) -> str:
    return (
        f"knowledge base {report.kb_name!r}, {len(report.questions)} questions, "
        f"embedding model {report.embedding_model}, top_k {report.top_k}"
    )


def report_json(
    report: EvalReport, retrieval: RetrievalSettings, dataset: dict[str, Any]
) -> dict[str, Any]:
    """Everything needed to compare two runs: inputs, settings, metrics, per-question ranks."""
    return {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "dataset": dataset,
        "kb": report.kb_name,
        "embedding_model": report.embedding_model,
        "questions": len(report.questions),
        "top_k": report.top_k,
        "retrieval_settings": retrieval.model_dump(mode="json"),
        "modes": {
            mode: {
                **{f"hit@{k}": result.hit_at(k) for k in report.ks},
                "mrr": result.mrr,
                "latency_ms": {"p50": result.p50_ms, "p95": result.p95_ms},
            }
            for mode, result in report.results.items()
        },
        "per_question": [
            {
                "question": question.question,
                "first_hit_rank": {
                    mode: result.ranks[index] for mode, result in report.results.items()
                },
            }
            for index, question in enumerate(report.questions)
        ],
    }


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
