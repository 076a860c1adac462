"""Ingest benchmark: a first build of a knowledge base, and what unchanged re-runs cost.

Input, one of:
  --corpus (the default)  the generated corpus of benchmarks/corpus.py, shaped like
                          Langchain-Chatchat's samples KB: 47 files (6 Markdown, 33 screenshots
                          for OCR, 3 icons too small for OCR, an 8-page PDF with one scanned
                          page, csv/xlsx/jsonl tables, a text file), ~1,900 chunks at the
                          default chunk_size 250 / overlap 50;
  --folder [DIR]          a folder of documents (no DIR: the shipped samples KB);
  --generate N            N generated Chinese text documents.
The input is written into a temporary KB root; the build then runs in a child process (this
script with a hidden flag), so that its peak RSS counts the build alone, not the generating
and rendering of the input. Printed:
  - first build: wall seconds with the model load (and the load apart); the child process's
    wall from its start (interpreter, imports, model, build: what `init_database.py` costs),
    its CPU seconds and the load average, since other processes on the machine skew the wall;
    peak RSS; images OCR'd and images per OCR second; chunks and chunks/s; each stage's
    seconds with its share of the stage sum (stages overlap, as files are read in a thread
    beside the embedding, so their sum is not the wall);
  - an unchanged `recreate`: seconds, share of the first build's ingest (target <= 5 %),
    chunks embedded and images OCR'd (both should be 0); an unchanged `increment` likewise;
  - embedder-only seconds on the same chunks and batches, and the pipeline / embedder ratio.
Stage seconds and images OCR'd come from IngestReport.stage_seconds / images_ocred and show
"n/a" where the report lacks them. --backend sets embedding.backend (where the settings have
it); --json PATH also writes every figure as JSON; --chatchat-seconds S compares the build
with Chatchat's time on this machine (benchmarks/chatchat_baseline.py) instead of the 150 s
measured once on another.
Usage: .venv/bin/python benchmarks/ingest.py [--corpus | --folder [DIR] | --generate N]
       [--seed N] [--model NAME] [--backend torch|onnx|onnx-int8] [--json PATH]
       [--chatchat-seconds S] [--no-embed-only]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kb_server.settings import PROJECT_ROOT, EmbeddingSettings, Settings, load_settings

if TYPE_CHECKING:
    from kb_server.knowledge.types import IngestReport

KB_NAME = "bench"
SAMPLES = PROJECT_ROOT / "knowledge_base" / "samples" / "content"
STAGES = ("read", "ocr", "split", "embed", "store")
BACKENDS = ("torch", "onnx", "onnx-int8")
# Langchain-Chatchat 0.2.10 `init_database.py --recreate-vs` on its samples KB (47 files,
# ~2,000 chunks) with all-MiniLM-L6-v2 on a 2-core machine; ../shared/ENV_NOTES.md has another
# run of it at 170 s and 3.5 GB with the other core busy.
CHATCHAT_SECONDS = 150.0
CHATCHAT_RSS_MB = 3700.0
RERUN_TARGET_SHARE = 0.05

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


@dataclass
class RunFigures:
    """One ingest call: what it did and how long it took."""

    seconds: float
    files_indexed: int
    files_unchanged: int
    files_failed: dict[str, str]
    chunks_embedded: int
    chunks_reused: int
    model_load_seconds: float
    images_ocred: int | None
    stage_seconds: dict[str, float]


@dataclass
class BuildFigures:
    """What the child process measured; travels to the parent as JSON."""

    embed_model: str
    backend: str | None  # embedding.backend as set
    backend_used: str | None  # what the embedder says runs (an ONNX export may fall back)
    import_seconds: float
    create_kb_seconds: float  # loads the embedding model
    process_seconds: float  # from spawning the child to the end of the first build
    process_cpu_seconds: float  # CPU time of the child until then (all its threads)
    load_average: tuple[float, float]  # 1-minute load average before and after the first build
    peak_rss_mb: float  # after the first build
    peak_rss_mb_end: float
    first: RunFigures
    rerun: RunFigures
    increment: RunFigures
    embedder_only_seconds: float | None = None
    chunks_total: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildFigures:
        fields: dict[str, Any] = dict(data)
        fields["load_average"] = tuple(data["load_average"])
        for key in ("first", "rerun", "increment"):
            fields[key] = RunFigures(**data[key])
        return cls(**fields)


@dataclass
class Figures:
    """Everything printed, and written by --json."""

    input: str
    input_counts: dict[str, int] = field(default_factory=dict)
    input_seconds: float = 0.0
    model_preparation: dict[str, float] = field(default_factory=dict)
    build: BuildFigures | None = None
    # Chatchat's build time the speed-up is taken against (--chatchat-seconds).
    chatchat_seconds: float = CHATCHAT_SECONDS


def build_settings(kb_root: Path, model: str | None, backend: str | None) -> Settings:
    # A top-level override replaces the whole section: start from the configured one. ONNX
    # exports of the embedder and the OCR models stay where the installation keeps them (made
    # once per machine, like a download).
    installed = load_settings()
    embedding = installed.embedding.model_dump()
    if model is not None:
        embedding["model"] = model
    if backend is not None:
        embedding["backend"] = backend
    return load_settings(kb_root=kb_root, embedding=embedding, ocr=installed.ocr.model_dump())


def prepare_model(args: argparse.Namespace) -> int:
    """A child process: load the embedder and the OCR engine once, exporting the embedder to
    ONNX and building the OCR models if this machine has none yet, so that the build measures
    a machine that has run the product before."""
    started = time.perf_counter()
    from kb_server.documents.ocr import get_ocr_reader
    from kb_server.embedding import get_embedder

    settings = build_settings(args.prepare_model, args.model, args.backend)
    get_embedder(settings.embedding).embed_documents(["预热"])
    if settings.ocr.enabled:
        get_ocr_reader(settings.ocr).warm_up()
    figures = {"seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb()}
    args.result.write_text(json.dumps(figures), encoding="utf-8")
    return 0


def run_figures(report: IngestReport, seconds: float) -> RunFigures:
    """Older IngestReports lack stage_seconds and images_ocred: those show as n/a."""
    return RunFigures(
        seconds=seconds,
        files_indexed=len(report.files_indexed),
        files_unchanged=len(report.files_unchanged),
        files_failed=dict(report.files_failed),
        chunks_embedded=report.chunks_embedded,
        chunks_reused=report.chunks_reused,
        model_load_seconds=report.model_load_seconds,
        images_ocred=getattr(report, "images_ocred", None),
        stage_seconds=dict(getattr(report, "stage_seconds", None) or {}),
    )


def timed(run: Callable[[str], IngestReport]) -> RunFigures:
    """One ingest of the benchmark KB, with its wall seconds."""
    started = time.perf_counter()
    report = run(KB_NAME)
    return run_figures(report, time.perf_counter() - started)


def build(args: argparse.Namespace) -> int:
    """The child process: build the KB under ``args.build``, write figures to ``args.result``."""
    logging.basicConfig(level=logging.WARNING)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    # Imported here, timed, so that the parent process (which renders the corpus) stays light.
    from kb_server.knowledge.maintenance import KbMaintenance
    from kb_server.knowledge.service import KnowledgeBaseService

    import_seconds = time.perf_counter() - started
    settings = build_settings(args.build, args.model, args.backend)
    service = KnowledgeBaseService(settings)
    maintenance = KbMaintenance(service)

    started = time.perf_counter()
    service.create_kb(KB_NAME)
    create_kb_seconds = time.perf_counter() - started
    first = timed(maintenance.recreate)
    process_seconds = time.time() - args.spawned_at
    usage = resource.getrusage(resource.RUSAGE_SELF)
    load_average = (load_before, os.getloadavg()[0])
    rss_first = peak_rss_mb()

    rerun = timed(maintenance.recreate)
    increment = timed(maintenance.increment)

    kb = service.get_kb(KB_NAME)
    embedder = service.embedder_provider(kb.embed_model)  # loaded already
    embedder_only = None
    if args.embed_only:
        texts = [
            chunk.text
            for info in service.list_files(KB_NAME)
            for chunk in service.list_chunks(KB_NAME, info.file_name)
        ]
        batch = settings.embedding.batch_size
        ordered = sorted(texts, key=len, reverse=True)
        started = time.perf_counter()
        for start in range(0, len(ordered), batch):
            embedder.embed_documents(ordered[start : start + batch])
        embedder_only = time.perf_counter() - started

    figures = BuildFigures(
        embed_model=kb.embed_model,
        backend=getattr(settings.embedding, "backend", None),
        backend_used=getattr(embedder, "backend", None),
        import_seconds=import_seconds,
        create_kb_seconds=create_kb_seconds,
        process_seconds=process_seconds,
        process_cpu_seconds=usage.ru_utime + usage.ru_stime,
        load_average=load_average,
        peak_rss_mb=rss_first,
        peak_rss_mb_end=peak_rss_mb(),
        first=first,
        rerun=rerun,
        increment=increment,
        embedder_only_seconds=embedder_only,
        chunks_total=kb.chunk_count,
    )
    args.result.write_text(json.dumps(dataclasses.asdict(figures)), encoding="utf-8")
    return 0


def run_model_preparation(kb_root: Path, args: argparse.Namespace) -> dict[str, float]:
    figures: dict[str, float] = run_self(
        "--prepare-model", kb_root, args, [], "loading the models failed (exit status {status})"
    )
    return figures


def run_child(kb_root: Path, args: argparse.Namespace) -> BuildFigures:
    extra = ["--spawned-at", repr(time.time())]
    extra += [] if args.embed_only else ["--no-embed-only"]
    failure = "the build process failed with exit status {status}"
    return BuildFigures.from_dict(run_self("--build", kb_root, args, extra, failure))


def run_self(
    mode: str, kb_root: Path, args: argparse.Namespace, extra: list[str], failure: str
) -> dict[str, Any]:
    """Run this script in a child process in ``mode`` on ``kb_root``; the figures it wrote."""
    result = kb_root.parent / f"{mode.lstrip('-')}.json"
    command = [sys.executable, str(Path(__file__).resolve()), mode, str(kb_root)]
    command += ["--result", str(result), *extra]
    command += ["--model", args.model] if args.model else []
    command += ["--backend", args.backend] if args.backend else []
    completed = subprocess.run(command, check=False)
    if completed.returncode != 0:
        raise SystemExit(failure.format(status=completed.returncode))
    figures: dict[str, Any] = json.loads(result.read_text(encoding="utf-8"))
    return figures


def prepare_input(args: argparse.Namespace, content: Path) -> Figures:
    started = time.perf_counter()
    if args.generate:
        content.mkdir(parents=True)
        generate_documents(content, args.generate, args.seed)
        figures = Figures(f"{args.generate} generated Chinese documents")
    elif args.folder is not None:
        shutil.copytree(args.folder, content)
        figures = Figures(str(args.folder))
    else:
        # Only the parent renders the corpus: Pillow and reportlab stay out of the build's RSS.
        from corpus import generate_corpus

        summary = generate_corpus(content, args.seed)
        figures = Figures(f"generated corpus (benchmarks/corpus.py, seed {args.seed})")
        figures.input_counts = dict(summary.counts)
    figures.input_seconds = time.perf_counter() - started
    return figures


def _ratio(part: float | None, whole: float | None, digits: int = 1) -> str:
    return f"{part / whole:.{digits}f}" if part is not None and whole else "n/a"


def _images_rate(images: int | None, ocr_seconds: float | None) -> str:
    if not images or not ocr_seconds:
        return "n/a"
    return f"{images / ocr_seconds:.2f} ({ocr_seconds / images:.2f} s per image)"


def _run_line(run: RunFigures, first_seconds: float) -> str:
    images = "n/a" if run.images_ocred is None else str(run.images_ocred)
    failed = f", {len(run.files_failed)} files failed" if run.files_failed else ""
    return (
        f"{run.seconds:.2f} s = {run.seconds / first_seconds:.2%} of the first build "
        f"(target <= {RERUN_TARGET_SHARE:.0%}); {run.chunks_embedded} chunks embedded, "
        f"{images} images OCR'd, {run.files_indexed} files indexed{failed}"
    )


def _first_build_rows(build: BuildFigures) -> list[tuple[str, str]]:
    first = build.first
    wall = build.create_kb_seconds + first.seconds
    load = build.create_kb_seconds + first.model_load_seconds
    ingest = first.seconds - first.model_load_seconds
    images = first.images_ocred
    ocr_seconds = first.stage_seconds.get("ocr")
    cores = build.process_cpu_seconds / build.process_seconds
    before, after = build.load_average
    cpu = (
        f"{build.process_cpu_seconds:.1f} = {cores:.2f} cores busy on average "
        f"(1-min load average {before:.1f} before, {after:.1f} after; other processes share them)"
    )
    chunk_rate = first.chunks_embedded / first.seconds
    process = (
        f"{build.process_seconds:.2f} (start, imports {build.import_seconds:.2f}, model, build)"
    )
    return [
        ("chunks", f"{first.chunks_embedded} ({build.chunks_total} stored)"),
        ("first build wall seconds", f"{wall:.2f} (model load {load:.2f} + ingest {ingest:.2f})"),
        ("  process wall seconds", process),
        ("  CPU seconds", cpu),
        (
            "peak RSS MB",
            f"{build.peak_rss_mb:.0f} after the first build ({build.peak_rss_mb_end:.0f} at exit)",
        ),
        ("images OCR'd", "n/a" if images is None else str(images)),
        ("images per OCR second", _images_rate(images, ocr_seconds)),
        ("chunks per second", f"{chunk_rate:.1f} ({first.chunks_embedded / wall:.1f} with load)"),
    ]


def _stage_rows(first: RunFigures) -> list[tuple[str, str]]:
    stage_sum = sum(first.stage_seconds.values())
    rows = []
    for stage in (*STAGES, *sorted(set(first.stage_seconds) - set(STAGES))):
        seconds = first.stage_seconds.get(stage)
        if seconds is None:
            rows.append((f"  stage {stage} seconds", "n/a"))
            continue
        share = f" ({seconds / stage_sum:.0%} of the stage sum)" if stage_sum else ""
        rows.append((f"  stage {stage} seconds", f"{seconds:.2f}{share}"))
    if first.stage_seconds:
        overlap = f"{stage_sum:.2f} (stages overlap; ingest wall {first.seconds:.2f})"
        rows.append(("  stage sum seconds", overlap))
    return rows


def report_rows(figures: Figures) -> list[tuple[str, str]]:
    build = figures.build
    assert build is not None
    first = build.first
    counts = ", ".join(f"{kind} {count}" for kind, count in figures.input_counts.items())
    failed = "; ".join(f"{name}: {reason}" for name, reason in sorted(first.files_failed.items()))
    backend = ""
    if build.backend:
        ran = (
            f"; {build.backend_used} ran" if build.backend_used not in (None, build.backend) else ""
        )
        backend = f" (backend {build.backend}{ran})"
    rows = [
        ("input", figures.input + (f" ({counts})" if counts else "")),
        ("input preparation seconds", f"{figures.input_seconds:.2f} (not part of the build)"),
        ("embedding model", build.embed_model + backend),
        ("files indexed / failed", f"{first.files_indexed} / {len(first.files_failed)}"),
    ]
    if failed:
        rows.append(("failed files", failed))
    rows += _first_build_rows(build) + _stage_rows(first)
    if figures.input_counts:  # the corpus: shaped like Chatchat's samples KB
        speedup = _ratio(figures.chatchat_seconds, build.process_seconds)
        memory = build.peak_rss_mb / CHATCHAT_RSS_MB
        rows += [
            (
                "vs Chatchat's samples KB",
                f"{speedup}x faster than {figures.chatchat_seconds:.0f} s (target 3x)",
            ),
            ("", f"{memory:.0%} of its {CHATCHAT_RSS_MB:.0f} MB peak RSS (target <= 33%)"),
        ]
    rows += [
        ("unchanged recreate", _run_line(build.rerun, first.seconds)),
        ("unchanged increment", _run_line(build.increment, first.seconds)),
    ]
    if build.embedder_only_seconds is not None:
        ingest = first.seconds - first.model_load_seconds
        rows += [
            ("embedder-only seconds", f"{build.embedder_only_seconds:.2f}"),
            ("pipeline / embedder ratio", _ratio(ingest, build.embedder_only_seconds, 2)),
        ]
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--corpus", action="store_true", help="the generated corpus (default)")
    source.add_argument(
        "--folder", type=Path, nargs="?", const=SAMPLES, help="documents (default: samples KB)"
    )
    source.add_argument("--generate", type=int, metavar="N", help="N generated Chinese documents")
    parser.add_argument("--seed", type=int, default=7, help="seed of --corpus and --generate")
    parser.add_argument("--model", help="embedding model (default: settings, with fallback)")
    parser.add_argument("--backend", choices=BACKENDS, help="embedding.backend, where supported")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    parser.add_argument(
        "--chatchat-seconds",
        type=float,
        default=CHATCHAT_SECONDS,
        metavar="S",
        help="Chatchat's build time to compare with (default: the 150 s measured once; "
        "benchmarks/chatchat_baseline.py prints a lower bound for this machine)",
    )
    parser.add_argument(
        "--no-embed-only",
        dest="embed_only",
        action="store_false",
        help="skip the embedder-only pass",
    )
    # The child process's arguments.
    parser.add_argument("--build", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--prepare-model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--spawned-at", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.backend and "backend" not in EmbeddingSettings.model_fields:
        parser.error("--backend: this version's EmbeddingSettings has no backend field")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.build is not None:
        return build(args)
    if args.prepare_model is not None:
        return prepare_model(args)
    with tempfile.TemporaryDirectory(prefix="kb-bench-") as temp:
        kb_root = Path(temp) / "kb"
        figures = prepare_input(args, kb_root / KB_NAME / "content")
        figures.chatchat_seconds = args.chatchat_seconds
        figures.model_preparation = run_model_preparation(kb_root, args)
        figures.build = run_child(kb_root, args)
    preparation = figures.model_preparation
    rows = [
        (
            "model load or export",
            f"{preparation['seconds']:.1f} s, peak RSS {preparation['peak_rss_mb']:.0f} MB "
            "(separate process before the build; the ONNX export and the OCR models are made "
            "once per machine)",
        ),
        *report_rows(figures),
    ]
    width = max(len(name) for name, _ in rows)
    sys.stdout.writelines(f"{name:<{width}}  {value}\n" for name, value in rows)
    if args.json:
        args.json.write_text(
            json.dumps(dataclasses.asdict(figures), ensure_ascii=False, indent=2) + "\n",
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
