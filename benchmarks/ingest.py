"""Ingest benchmark: how much the pipeline adds on top of embedding, and what a re-run costs.

Builds a knowledge base in a temporary KB root from a folder (default: the samples KB) or
from N generated Chinese documents, then prints:
  - embedder-only seconds: the same chunks, same batches, embedding alone;
  - whole-pipeline seconds: load, OCR, split, embed, SQLite rows, FAISS save;
  - their ratio (the pipeline overhead; target <= 1.15), chunks per second, peak RSS;
  - the seconds and embedded chunks of an unchanged second run.
Usage: .venv/bin/python benchmarks/ingest.py [--folder DIR | --generate N] [--model NAME]
"""

from __future__ import annotations

import argparse
import logging
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from kb_server.embedding import get_embedder
from kb_server.knowledge.maintenance import KbMaintenance
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.settings import PROJECT_ROOT, load_settings

SUBJECTS = [
    "知识库",
    "检索系统",
    "嵌入模型",
    "向量索引",
    "本地大模型",
    "文档解析器",
    "切分器",
    "重排序模型",
]
VERBS = ["提升了", "降低了", "改变了", "决定了", "影响了", "保证了"]
OBJECTS = ["回答的准确率", "查询的延迟", "内存的占用", "索引的大小", "引用的精度", "上传的速度"]
CLAUSES = [
    "在离线环境中",
    "对于中文文档",
    "当并发用户增多时",
    "在只有两个核心的机器上",
    "经过多次测试",
]


def generate_documents(folder: Path, count: int, seed: int = 7) -> None:
    """Deterministic Chinese documents of a few paragraphs each."""
    rng = random.Random(seed)
    for index in range(count):
        paragraphs = []
        for _ in range(rng.randint(3, 6)):
            sentences = [
                f"{rng.choice(CLAUSES)}，{rng.choice(SUBJECTS)}{rng.choice(VERBS)}"
                f"{rng.choice(OBJECTS)}，第{rng.randint(1, 999)}号实验记录了这一点。"
                for _ in range(rng.randint(3, 8))
            ]
            paragraphs.append("".join(sentences))
        title = f"第{index + 1}章 实验报告"
        (folder / f"doc_{index:04d}.txt").write_text(
            title + "\n" + "\n\n".join(paragraphs), "utf-8"
        )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--folder", type=Path, help="folder of documents to ingest")
    source.add_argument("--generate", type=int, metavar="N", help="N generated Chinese documents")
    parser.add_argument("--model", help="embedding model (default: settings, with fallback)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="kb-bench-") as temp:
        kb_root = Path(temp)
        content = kb_root / "bench" / "content"
        if args.generate:
            content.mkdir(parents=True)
            generate_documents(content, args.generate)
            label = f"{args.generate} generated Chinese documents"
        else:
            folder = args.folder or PROJECT_ROOT / "knowledge_base" / "samples" / "content"
            shutil.copytree(folder, content)
            label = str(folder)
        overrides = {"kb_root": kb_root}
        settings = load_settings(**overrides)
        if args.model:
            settings = load_settings(**overrides, embedding={"model": args.model})
        embedder = get_embedder(settings.embedding)  # load (and warm) before timing
        embedder.embed_documents(["预热"])

        service = KnowledgeBaseService(settings)
        service.create_kb("bench")
        maintenance = KbMaintenance(service)
        started = time.perf_counter()
        first = maintenance.recreate("bench")
        pipeline_s = time.perf_counter() - started

        texts = [
            c.text
            for f in service.list_files("bench")
            for c in service.list_chunks("bench", f.file_name)
        ]
        batch = settings.embedding.batch_size
        ordered = sorted(texts, key=len, reverse=True)
        started = time.perf_counter()
        for start in range(0, len(ordered), batch):
            embedder.embed_documents(ordered[start : start + batch])
        embed_s = time.perf_counter() - started

        started = time.perf_counter()
        second = maintenance.recreate("bench")
        rerun_s = time.perf_counter() - started

    files = len(first.files_indexed) + len(first.files_failed)
    rows = [
        ("input", label),
        ("embedding model", embedder.name),
        ("files / chunks", f"{files} / {len(texts)} ({len(first.files_failed)} failed)"),
        ("embedder-only seconds", f"{embed_s:.2f}"),
        ("whole-pipeline seconds", f"{pipeline_s:.2f}"),
        ("pipeline / embedder ratio", f"{pipeline_s / embed_s:.2f}" if embed_s else "n/a"),
        ("chunks per second", f"{len(texts) / pipeline_s:.1f}"),
        ("unchanged re-run seconds", f"{rerun_s:.2f} ({second.chunks_embedded} chunks embedded)"),
        ("peak RSS MB", f"{peak_rss_mb():.0f}"),
    ]
    width = max(len(name) for name, _ in rows)
    sys.stdout.writelines(f"{name:<{width}}  {value}\n" for name, value in rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
