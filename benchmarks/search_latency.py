"""Search latency per mode: p50/p95 of KnowledgeBaseService.search at 10k and 100k chunks.

How the knowledge base is filled quickly (read this before quoting the figures):
- Chunk texts are synthetic: Chinese words drawn with a fixed seed from a word list (a Zipf-like
  mix of common words and a long tail of rarer ones), about 200 characters per chunk, one chunk
  per paragraph, 1,000 chunks per file. The files are written to the KB's content folder and
  indexed with ``service.add_files``, so the real write path fills SQLite, the FAISS index and
  the keyword index.
- Document vectors are NOT computed by the model: the service gets an embedder wrapper whose
  ``embed_documents`` returns deterministic random unit vectors, while ``embed_query`` runs the
  real model, whose name and dimension the wrapper reports. Every timed search therefore
  includes a real query embedding; only the dense scores are meaningless.
Latency is the wall time of one ``service.search(top_k=10)`` call, reranking off, after a few
untimed warm-up searches per mode. Larger sizes are reached by adding files to the same KB.
Backends: faiss (FAISS + tantivy + SQLite) and pg (pgvector HNSW + keyword tables + metadata in
PostgreSQL; a temporary local server unless --pg-url names one). The same synthetic corpus
(same seed) goes into each.
Usage: .venv/bin/python benchmarks/search_latency.py [--sizes 10000,100000] [--queries 200]
       [--model NAME] [--backend faiss|pg|both] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from kb_server.embedding import get_embedder
from kb_server.embedding.base import Embedder
from kb_server.eval.metrics import percentile
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.settings import PROJECT_ROOT, SearchMode, Settings, SplitterSettings, load_settings

KB_NAME = "latency"
T = TypeVar("T")
R = TypeVar("R")
# backend, chunks, mode, p50 ms, p95 ms
Row = tuple[str, int, str, float, float]
CHUNKS_PER_FILE = 1000
MODES: tuple[SearchMode, ...] = ("dense", "bm25", "hybrid")
WARMUP_SEARCHES = 5
# Real words, the most frequent first (split in vocabulary()).
COMMON_WORDS_TEXT = """
知识库 检索 系统 模型 向量 索引 文档 问题 答案 用户 数据 服务 查询 文本
中文 句子 段落 方法 结果 研究 技术 公司 城市 历史 文化 经济 社会 发展
政府 国家 市场 教育 学生 老师 医院 医生 病人 工程 建筑 道路 河流 山脉
气候 季节 农业 工业 产品 价格 成本 质量 标准 管理 计划 项目 团队 会议
报告 分析 设计 测试 版本 功能 性能 安全 网络 软件 硬件 电脑 手机 平台
应用 视频 音乐 电影 小说 作者 读者 语言 文字 地区 人口 交通 铁路 机场
港口
"""
# Characters the long tail of rarer two-character words is made of.
RARE_CHARS = (
    "鹤松梅竹兰菊桂枫柳杏桃李梨橙柚莲荷藕菱蕉葵芦苇萍藻蛙蝶蜂蚁燕鹊鸥鹭鹰隼雀鸽獭狸貂鹿麋"
    "獐猿狐狼豹熊貘犀驼骡驴矿铜锡铅锌铬钨钼钛钒镍钴硅硼磷硫碘溴氟氖氩氪氙氡钾钠钙镁铝铁钢"
)


def vocabulary(
    rng: np.random.Generator, rare_words: int = 3000
) -> tuple[list[str], NDArray[np.float64]]:
    """Words and their probabilities: common words first, rank-frequency ~ 1/rank."""
    chars = list(RARE_CHARS)
    rare: set[str] = set()
    while len(rare) < rare_words:
        first, second = rng.choice(len(chars), size=2)
        rare.add(chars[first] + chars[second])
    words = COMMON_WORDS_TEXT.split() + sorted(rare)
    weights = 1.0 / np.arange(1, len(words) + 1, dtype=np.float64)
    return words, weights / weights.sum()


def chunk_texts(
    rng: np.random.Generator, words: list[str], probs: NDArray[np.float64], count: int
) -> list[str]:
    """``count`` texts of 180-220 characters: sentences of 4-9 words ending in 。."""
    # Words are drawn in bulk: one numpy call per file, not one per sentence.
    drawn = iter(rng.choice(len(words), size=count * 120, p=probs).tolist())
    texts = []
    for target in rng.integers(180, 221, size=count).tolist():
        parts: list[str] = []
        length = 0
        while length < target:
            sentence = "".join(words[next(drawn)] for _ in range(int(rng.integers(4, 10))))
            parts.append(sentence + "。")
            length += len(sentence) + 1
        texts.append("".join(parts)[:target])
    return texts


class RandomDocumentEmbedder:
    """The real model for queries; deterministic random unit vectors for documents."""

    def __init__(self, real: Embedder, seed: int) -> None:
        self.real = real
        self.rng = np.random.default_rng(seed)

    @property
    def name(self) -> str:
        return self.real.name

    @property
    def dimension(self) -> int:
        return self.real.dimension

    def embed_documents(self, texts: Sequence[str]) -> NDArray[np.float32]:
        vectors = self.rng.standard_normal((len(texts), self.dimension), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors

    def embed_query(self, text: str) -> NDArray[np.float32]:
        return self.real.embed_query(text)


def fill_to(
    service: KnowledgeBaseService,
    size: int,
    rng: np.random.Generator,
    words: list[str],
    probs: NDArray[np.float64],
) -> float:
    """Add files of CHUNKS_PER_FILE chunks until the KB holds ``size`` chunks; returns seconds."""
    content = service.paths(KB_NAME).content
    have = service.get_kb(KB_NAME).chunk_count
    first = len(service.content_files(KB_NAME))
    names: list[str] = []
    while have < size:
        count = min(CHUNKS_PER_FILE, size - have)
        name = f"synthetic_{first + len(names):04d}.txt"
        (content / name).write_text("\n\n".join(chunk_texts(rng, words, probs, count)), "utf-8")
        names.append(name)
        have += count
    started = time.perf_counter()
    service.add_files(KB_NAME, names)
    return time.perf_counter() - started


def time_searches(
    service: KnowledgeBaseService, queries: Sequence[str], mode: SearchMode
) -> list[float]:
    for query in queries[:WARMUP_SEARCHES]:
        service.search(KB_NAME, query, top_k=10, search_mode=mode, rerank=False)
    latencies = []
    for query in queries:
        started = time.perf_counter()
        service.search(KB_NAME, query, top_k=10, search_mode=mode, rerank=False)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def timed(function: Callable[[T], R], inputs: Sequence[T]) -> tuple[list[float], list[R]]:
    """Milliseconds of each call and what it returned."""
    milliseconds, results = [], []
    for item in inputs:
        started = time.perf_counter()
        results.append(function(item))
        milliseconds.append((time.perf_counter() - started) * 1000)
    return milliseconds, results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10000,100000", help="chunk counts, comma-separated")
    parser.add_argument("--queries", type=int, default=200, help="timed searches per mode")
    parser.add_argument("--model", help="embedding model for queries (default: settings)")
    parser.add_argument(
        "--backend", choices=["faiss", "pg", "both"], default="both", help="storage backends"
    )
    parser.add_argument(
        "--pg-url",
        help="PostgreSQL (with pgvector) URL for the pg backend; default: a temporary server "
        "started from the pgserver package (pip install -e '.[pg,dev]')",
    )
    args = parser.parse_args(argv)
    sizes = sorted(int(size) for size in args.sizes.split(","))
    backends = ["faiss", "pg"] if args.backend == "both" else [args.backend]
    logging.basicConfig(level=logging.WARNING)
    rng = np.random.default_rng(20261123)
    words, probs = vocabulary(rng)
    queries = [
        "".join(words[i] for i in rng.choice(len(words), rng.integers(2, 5), p=probs)) + "是什么？"
        for _ in range(args.queries)
    ]

    query_ms: list[float] = []
    rows: list[Row] = []
    with ExitStack() as stack:
        for backend in backends:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kb-latency-")))
            options: dict[str, Any] = {"database_url": None}
            if backend == "pg":
                url = args.pg_url or stack.enter_context(temporary_pg_database(folder / "pg"))
                options = {"database_url": url, "vector_store": {"default_type": "pg"}}
            base = load_settings(kb_root=folder / "kb", **options)
            settings = load_settings(
                kb_root=folder / "kb",
                embedding={
                    **base.embedding.model_dump(),
                    "model": args.model or base.embedding.model,
                    "batch_size": 4096,
                },
                **options,
            )
            real = get_embedder(settings.embedding)
            if not query_ms:
                query_ms, vectors = timed(real.embed_query, queries)
            rows += measure_backend(backend, settings, real, sizes, queries, vectors)

    out = [
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}; query model {args.model or 'from settings'}; "
        f"{args.queries} queries per mode",
        "query embedding alone (part of every dense and hybrid search): "
        f"p50 {percentile(query_ms, 50):.1f} ms, p95 {percentile(query_ms, 95):.1f} ms",
        "",
        "| backend | chunks | mode | p50 ms | p95 ms |",
        "| --- | ---: | --- | ---: | ---: |",
        *(
            f"| {backend} | {chunks:,} | {mode} | {p50:.1f} | {p95:.1f} |"
            for backend, chunks, mode, p50, p95 in rows
        ),
    ]
    sys.stdout.write("\n".join(out) + "\n")
    return 0


def measure_backend(
    backend: str,
    settings: Settings,
    real: Embedder,
    sizes: Sequence[int],
    queries: Sequence[str],
    vectors: Sequence[NDArray[np.float32]],
) -> list[Row]:
    rng = np.random.default_rng(20261123)
    words, probs = vocabulary(rng)
    embedder = RandomDocumentEmbedder(real, seed=7)
    service = KnowledgeBaseService(settings, embedder_provider=lambda _model: embedder)
    service.create_kb(KB_NAME, splitter=SplitterSettings(chunk_size=250, chunk_overlap=0))
    rows: list[Row] = []
    for size in sizes:
        ingest_s = fill_to(service, size, rng, words, probs)
        chunks = service.get_kb(KB_NAME).chunk_count
        sys.stderr.write(f"{backend}: {chunks} chunks indexed ({ingest_s:.1f} s, new files)\n")
        for mode in MODES:
            latencies = time_searches(service, queries, mode)
            rows.append(
                (backend, chunks, mode, percentile(latencies, 50), percentile(latencies, 95))
            )
        # The English model takes no part in hybrid search for these Chinese queries; a
        # model fit for Chinese would, which costs what this second service measures.
        voting_settings = settings.model_copy(
            update={"retrieval": settings.retrieval.model_copy(update={"unfit_dense_factor": 1.0})}
        )
        voting = KnowledgeBaseService(voting_settings, embedder_provider=lambda _m: embedder)
        latencies = time_searches(voting, queries, "hybrid")
        label = "hybrid, dense side voting"
        rows.append((backend, chunks, label, percentile(latencies, 50), percentile(latencies, 95)))
        voting.db.dispose()
        # The vector search alone, for as many candidates as hybrid fusion takes.
        store = service.store_for(service.kb_row(KB_NAME))
        k = settings.retrieval.candidates
        scan_ms, _ = timed(functools.partial(store.search, k=k), vectors)
        label = f"(vector search alone, k={k})"
        rows.append((backend, chunks, label, percentile(scan_ms, 50), percentile(scan_ms, 95)))
    service.db.dispose()
    return rows


@contextmanager
def temporary_pg_database(folder: Path) -> Iterator[str]:
    """A throw-away PostgreSQL 16 + pgvector (the pgserver package) on a loopback port."""
    # The test suite's server helper; this script runs from benchmarks/, beside tests/.
    sys.path.insert(0, str(PROJECT_ROOT))
    from tests.pg_server import running_pg_server

    with running_pg_server(folder) as server:
        yield server.new_database("kb_latency")


if __name__ == "__main__":
    sys.exit(main())
