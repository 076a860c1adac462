"""OCR speed and accuracy on the benchmark corpus's images (benchmarks/corpus.py).

Writes the corpus into a folder, then reads every rendered image (screenshots and the scanned
PDF page) with the project's OCR reader and settings; prints each image's wall and CPU seconds
and character accuracy, then the median / p90 over the screenshots; then the latency of the
1000x600-class screenshots (median of 5 reads each) with ocr.threads 1 and 2.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/ocr_check.py DIR
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
import unicodedata
from pathlib import Path

from corpus import CorpusSummary, generate_corpus
from PIL import Image


def _normalized(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split())


def substring_distance(needle: str, haystack: str) -> int:
    """Fewest edits that turn ``needle`` into some substring of ``haystack``."""
    previous = [0] * (len(haystack) + 1)  # the match may start anywhere
    for i, char in enumerate(needle, start=1):
        current = [i]
        for j, other in enumerate(haystack, start=1):
            cost = previous[j - 1] + (char != other)
            current.append(min(cost, previous[j] + 1, current[j - 1] + 1))
        previous = current
    return min(previous)


def _image_bytes(folder: Path, name: str) -> bytes:
    if "#page=" not in name:
        return (folder / name).read_bytes()
    from pypdf import PdfReader

    file_name, page = name.split("#page=")
    (image,) = PdfReader(folder / file_name).pages[int(page) - 1].images
    return image.data


def ocr_check(folder: Path, summary: CorpusSummary) -> list[str]:
    """OCR every rendered image with the project's reader: seconds and character accuracy.

    Accuracy is 1 - edits / characters, each drawn string matched against the best substring
    of what OCR read (so reading order does not count), NFKC-normalized, whitespace removed.
    """
    from kb_server.documents.ocr import get_ocr_reader
    from kb_server.settings import load_settings

    reader = get_ocr_reader(load_settings().ocr)
    reader.warm_up()
    lines, walls, cpus, errors, chars = [], [], [], 0, 0
    for name, drawn in summary.rendered_text.items():
        data = _image_bytes(folder, name)
        started, cpu_started = time.perf_counter(), time.process_time()
        read = _normalized(reader.read_image(data))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        image_chars = sum(len(_normalized(text)) for text in drawn)
        image_errors = sum(substring_distance(_normalized(text), read) for text in drawn)
        errors, chars = errors + image_errors, chars + image_chars
        size = "x".join(map(str, Image.open(io.BytesIO(data)).size))
        accuracy = 1 - image_errors / image_chars
        lines.append(
            f"{name:<22} {size:>9} {wall:6.2f} s ({cpu:5.2f} s CPU)  accuracy {accuracy:.3f}"
        )
        if "#page=" not in name:
            walls.append(wall)
            cpus.append(cpu)
    for label, values in (("wall", walls), ("CPU", cpus)):
        values.sort()
        median, p90 = statistics.median(values), values[round(0.9 * (len(values) - 1))]
        lines.append(
            f"screenshots ({len(values)}), {label} seconds: median {median:.2f}, p90 {p90:.2f}, "
            f"max {values[-1]:.2f}, total {sum(values):.1f}"
        )
    lines.append(f"character accuracy: {1 - errors / chars:.4f} ({errors} edits, {chars} chars)")
    return lines


# The latency figure is for a 1000x600 screenshot; the corpus draws widths from 1000.
LATENCY_MAX_WIDTH = 1020
LATENCY_READS = 5


def screenshot_latency(folder: Path, summary: CorpusSummary, threads: list[int]) -> list[str]:
    """Median seconds of LATENCY_READS reads (PNG decoding included) of each corpus screenshot
    at most LATENCY_MAX_WIDTH wide, with ``ocr.threads`` at each of ``threads``."""
    from kb_server.documents.ocr import get_ocr_reader
    from kb_server.settings import load_settings

    images = {}
    for name in summary.rendered_text:
        data = _image_bytes(folder, name)
        size = Image.open(io.BytesIO(data)).size
        if "#page=" not in name and size[0] <= LATENCY_MAX_WIDTH:
            images[f"{name} {size[0]}x{size[1]}"] = data
    lines = []
    for count in threads:
        reader = get_ocr_reader(load_settings().ocr.model_copy(update={"threads": count}))
        reader.warm_up()
        medians = []
        for label, data in images.items():
            reader.read_image(data)  # the first read of a new size sets up buffers
            seconds = []
            for _ in range(LATENCY_READS):
                started = time.perf_counter()
                reader.read_image(data)
                seconds.append(time.perf_counter() - started)
            medians.append(statistics.median(seconds))
            lines.append(f"threads {count}  {label:<26} {medians[-1]:.3f} s")
        lines.append(
            f"threads {count}  {len(medians)} screenshots up to {LATENCY_MAX_WIDTH} px wide: "
            f"median {statistics.median(medians):.3f} s, max {max(medians):.3f} s"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--latency-threads",
        default="1,2",
        help="ocr.threads values for the latency of 1000x600 screenshots ('' to skip)",
    )
    args = parser.parse_args(argv)
    summary = generate_corpus(args.folder, args.seed)
    sys.stdout.writelines(f"{line}\n" for line in ocr_check(args.folder, summary))
    threads = [int(count) for count in args.latency_threads.split(",") if count.strip()]
    if threads:
        lines = screenshot_latency(args.folder, summary, threads)
        sys.stdout.writelines(f"{line}\n" for line in lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
