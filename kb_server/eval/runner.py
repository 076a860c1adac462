"""Ask every question in every search mode and keep where the first hit was and how long it took.

Latency is the wall time of one ``KnowledgeBaseService.search`` call: the query embedding, the
retrievers, fusion, reranking where on, and the SQLite lookup of the chunks. One untimed search
per mode comes first, so loading an index or a model is not counted.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from tqdm import tqdm

from kb_server.eval.datasets import EvalQuestion
from kb_server.eval.metrics import first_hit_rank, hit_rate, mean_reciprocal_rank, percentile
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.retrieval.reranker import load_reranker
from kb_server.settings import SearchMode, Settings

logger = logging.getLogger(__name__)

RERANK_MODE = "hybrid+rerank"
# Evaluation mode -> (search mode, rerank). Reranking is off unless the mode names it, so
# "hybrid" measures the fusion alone even where a reranker is configured.
EVAL_MODES: dict[str, tuple[SearchMode, bool]] = {
    "dense": ("dense", False),
    "bm25": ("bm25", False),
    "hybrid": ("hybrid", False),
    RERANK_MODE: ("hybrid", True),
}
DEFAULT_KS = (1, 5, 10)


def reranker_available(settings: Settings) -> bool:
    """Whether a reranker model can be loaded here."""
    return load_reranker(settings) is not None


def default_modes(settings: Settings) -> list[str]:
    modes = ["dense", "bm25", "hybrid"]
    if reranker_available(settings):
        modes.append(RERANK_MODE)
    return modes


def report_ks(top_k: int) -> list[int]:
    """The k of hit@k worth reporting: 1, 5 and 10 up to top_k, and top_k itself."""
    return sorted({k for k in DEFAULT_KS if k <= top_k} | {top_k})


@dataclass
class ModeResult:
    """One mode's outcome: the rank of the first hit per question, and each search's time."""

    mode: str
    ranks: list[int | None] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)

    def hit_at(self, k: int) -> float:
        return hit_rate(self.ranks, k)

    @property
    def mrr(self) -> float:
        return mean_reciprocal_rank(self.ranks)

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies_ms, 50)

    @property
    def p95_ms(self) -> float:
        return percentile(self.latencies_ms, 95)


@dataclass
class EvalReport:
    kb_name: str
    embedding_model: str
    top_k: int
    questions: list[EvalQuestion]
    results: dict[str, ModeResult]

    @property
    def ks(self) -> list[int]:
        return report_ks(self.top_k)


def run_mode(
    service: KnowledgeBaseService,
    kb_name: str,
    questions: Sequence[EvalQuestion],
    mode: str,
    top_k: int,
    *,
    show_progress: bool = False,
) -> ModeResult:
    search_mode, rerank = EVAL_MODES[mode]
    result = ModeResult(mode)

    def search(text: str) -> list[tuple[str, str]]:
        hits = service.search(kb_name, text, top_k=top_k, search_mode=search_mode, rerank=rerank)
        return [(hit.chunk.file_name, hit.chunk.text) for hit in hits]

    if questions:
        search(questions[0].question)  # warm-up: opens the indexes, loads the models
    bar = tqdm(
        questions, desc=f"{kb_name} {mode}", unit="q", file=sys.stderr, disable=not show_progress
    )
    for question in bar:
        started = time.perf_counter()
        retrieved = search(question.question)
        result.latencies_ms.append((time.perf_counter() - started) * 1000)
        result.ranks.append(first_hit_rank(retrieved, question))
    return result


def run_eval(
    service: KnowledgeBaseService,
    kb_name: str,
    questions: Sequence[EvalQuestion],
    modes: Sequence[str],
    top_k: int = 10,
    *,
    show_progress: bool = False,
) -> EvalReport:
    """Search ``top_k`` chunks for every question in every mode (names from ``EVAL_MODES``)."""
    unknown = [mode for mode in modes if mode not in EVAL_MODES]
    if unknown:
        raise ValueError(f"unknown modes {unknown}; known: {', '.join(EVAL_MODES)}")
    kb = service.get_kb(kb_name)
    results = {}
    for mode in modes:
        results[mode] = run_mode(
            service, kb.name, questions, mode, top_k, show_progress=show_progress
        )
        logger.info("%s %s: hit@1 %.3f", kb.name, mode, results[mode].hit_at(1))
    return EvalReport(kb.name, kb.embed_model, top_k, list(questions), results)
