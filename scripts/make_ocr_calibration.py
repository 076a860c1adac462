"""Write the OCR calibration images of kb_server/documents/ocr_calibration/.

The int8 OCR models are quantized on each machine from RapidOCR's own models; the activation
ranges come from running the float models over these images (kb_server/documents/ocr_models.py).
They are committed, so that a machine without CJK fonts can quantize too; this script records
how they were made. They are drawn by the benchmark corpus's generator with a seed the
benchmark does not use: two UI screenshots, one in dark mode, and the top of a scanned page.
Needs a CJK TrueType font (Debian's fonts-wqy-zenhei).
Usage: .venv/bin/python scripts/make_ocr_calibration.py
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from corpus import cjk_font, scanned_page, screenshot  # noqa: E402
from corpus_text import Prose  # noqa: E402

from kb_server.documents.ocr_models import CALIBRATION_DIR as OUTPUT  # noqa: E402

SEED = 20261206
SCANNED_TOP_PX = 900


def main() -> int:
    font = cjk_font()
    prose = Prose(random.Random(SEED))
    OUTPUT.mkdir(parents=True, exist_ok=True)
    images: dict[str, Image.Image] = {}
    images["screenshot_light.png"], _ = screenshot(prose, font)
    dark, _ = screenshot(prose, font)
    images["screenshot_dark.png"] = ImageOps.invert(dark.convert("RGB"))
    page, _ = scanned_page(prose, font)
    images["scanned_page_top.png"] = page.crop((0, 0, page.width, SCANNED_TOP_PX))
    for name, image in images.items():
        image.save(OUTPUT / name, optimize=True)
        size = (OUTPUT / name).stat().st_size
        sys.stdout.write(f"{name}: {image.width}x{image.height}, {size:,} bytes\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
