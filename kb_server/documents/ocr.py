"""Text in images through RapidOCR (ONNX Runtime, bundled Chinese + English models).

Error design: ``read_image`` raises :class:`UnreadableImageError` (a ``ValueError``) when the
bytes are not an image it can decode. It does not know the file's name, so each loader turns
it into a ``DocumentLoadError`` naming the file (or skips one bad image inside a PDF).
A missing ``rapidocr_onnxruntime`` package raises ``OcrUnavailableError``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import io
import logging
import math
import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from kb_server.documents.ocr_models import OcrEngine, ocr_model_files, source_models
from kb_server.errors import OcrUnavailableError
from kb_server.onnx_sessions import cpu_session
from kb_server.settings import OcrSettings

logger = logging.getLogger(__name__)

_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_WIDE_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
# Measured on rendered Chinese/English pages (18 lines): the 180-degree line classifier
# read up to a third of upright lines as upside down (garbage or dropped), and the default box
# padding (unclip 1.6) dropped spaces between English words. Without the classifier and
# with unclip 2.0 character accuracy went from ~0.63-0.95 to 0.99, and OCR got faster.
_ENGINE_FIXED_OPTIONS: dict[str, Any] = {"use_cls": False, "det_unclip_ratio": 2.0}
# The detector settings the models are built and calibrated with: the int8 recognizer's ranges
# come from the lines found, and the models' folder is named by the model files and libraries
# only, so they must not depend on the settings of the process that happens to build them.
_CALIBRATION_DETECTOR: dict[str, Any] = {
    "det_limit_type": "max",
    "det_limit_side_len": 960,
    "det_small_text_px": 0,
}
# Larger than any image decoded (documents.max_image_pixels bounds them).
_NO_IMAGE_SCALING: Final = 1_000_000
# Boxes whose vertical spans share at least this fraction of the shorter box are one line.
_SAME_LINE_OVERLAP = 0.5


class UnreadableImageError(ValueError):
    """The bytes are not an image that can be decoded; the caller names the file."""


class ImageTooLargeError(UnreadableImageError):
    """The image has more pixels than ``documents.max_image_pixels``; it is not decoded."""

    def __init__(self, width: int, height: int, max_pixels: int) -> None:
        super().__init__(
            f"the image is {width}x{height} = {width * height:,} pixels, more than "
            f"documents.max_image_pixels ({max_pixels:,}); too large to decode and OCR"
        )
        self.pixels = width * height
        self.max_pixels = max_pixels


@dataclass(frozen=True)
class TextBox:
    """One recognised text fragment and where it sits (pixels, origin top-left)."""

    text: str
    left: float
    top: float
    bottom: float


def _import_engine_class() -> Callable[..., OcrEngine]:
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as exc:
        raise OcrUnavailableError(
            "OCR needs the rapidocr-onnxruntime package: install the 'ocr' extra "
            f"(pip install 'kb-server[ocr]'), or set ocr.enabled=false ({exc})"
        ) from exc
    engine_class: Callable[..., OcrEngine] = RapidOCR
    return engine_class


class RapidOcrReader:
    """An :class:`~kb_server.documents.base.OcrReader` over one lazily created RapidOCR engine.

    Safe to share between threads: the engine is built once under a lock, and calls into it
    are serialised because RapidOCR keeps per-call state on the engine object.
    """

    def __init__(self, settings: OcrSettings) -> None:
        self.settings = settings
        self._engine: OcrEngine | None = None
        # Which models the engine runs ("original", "optimized", "int8"); known once built.
        self.model_variant: str | None = None
        self._lock = threading.Lock()

    def read_image(self, image: bytes | Path) -> str:
        """Text lines of ``image`` in reading order joined by newlines; "" when there is none.

        Images whose shorter side is below ``min_image_side_px`` (icons, rules, bullets)
        are not read and give "". Raises ``UnreadableImageError`` for undecodable data.
        """
        data = image.read_bytes() if isinstance(image, Path) else image
        pixels = decode_image(data)
        height, width = pixels.shape[:2]
        if min(height, width) < self.settings.min_image_side_px:
            logger.debug("Skipping OCR of a %dx%d image (too small)", width, height)
            return ""
        started = time.perf_counter()
        with self._lock:
            result, _ = self._engine_locked()(pixels)
            release_freed_memory()
        logger.debug(
            "OCR of a %dx%d image took %.3f s", width, height, time.perf_counter() - started
        )
        return reading_order_text(_text_boxes(result or []))

    def warm_up(self) -> None:
        """Build the engine now (about a second) instead of on the first image."""
        with self._lock:
            self._engine_locked()

    def _engine_locked(self) -> OcrEngine:
        if self._engine is None:
            _import_engine_class()
            started = time.perf_counter()
            calibration = RapidOcrReader(self.settings.model_copy(update=_CALIBRATION_DETECTOR))
            files = ocr_model_files(self.settings, calibration._build_engine)
            self._engine = self._build_engine(files.det, files.rec)
            self.model_variant = files.variant
            logger.info(
                "RapidOCR engine ready in %.2f s (%s models)",
                time.perf_counter() - started,
                files.variant,
            )
        return self._engine

    def _build_engine(self, det_model: Path | None, rec_model: Path | None) -> OcrEngine:
        """An engine over these model files (None: RapidOCR's bundled one)."""
        threads = self.settings.threads
        options: dict[str, Any] = {
            option: str(path)
            for option, path in (("det_model_path", det_model), ("rec_model_path", rec_model))
            if path is not None
        }
        if self.settings.det_limit_type == "max":
            # RapidOCR scales any image above 2000 px down to 2000 before detecting and reading
            # it; the detector's scale is set below, and lines are read at full size (12 px
            # text on a 2560x1440 screenshot read 9.4 px tall, and 16 px on a 4K one 8.3 px).
            options["max_side_len"] = _NO_IMAGE_SCALING
        # Every session on one thread; both models get sessions of their own below (the
        # detector on ``threads`` threads), and the recognizer reads ``threads`` lines at once.
        engine = _import_engine_class()(
            det_limit_type=self.settings.det_limit_type,
            det_limit_side_len=self.settings.det_limit_side_len,
            intra_op_num_threads=1,
            inter_op_num_threads=1,
            **options,
            **_ENGINE_FIXED_OPTIONS,
        )
        use_detector_limit = _preprocess_detector_input(
            engine, self.settings.det_limit_type, self.settings.det_limit_side_len
        )
        if (
            use_detector_limit is not None
            and self.settings.det_limit_type == "max"
            and self.settings.det_small_text_px > 0
        ):
            _detect_small_text_again(
                engine,
                use_detector_limit,
                self.settings.det_limit_side_len,
                self.settings.det_small_text_px,
                self.settings.det_max_side_len,
            )
        sources = source_models()
        _give_models_own_sessions(
            engine, det_model or sources["det"], rec_model or sources["rec"], threads
        )
        _recognize_lines_at_own_width(engine, threads)
        return engine


def _preprocess_detector_input(
    engine: Any, limit_type: str, limit_side_len: int
) -> Callable[[int], None] | None:
    """Scale the detector's input by our rule and normalize it in float32; returns a function
    that sets the limit for the detector's next calls (None where RapidOCR's layout differs).

    "max": images whose longer side is above ``limit_side_len`` are scaled down to it. RapidOCR
    1.4 ignores det_limit_side_len with this type: it picks 960, 1500 or 2000 from the image's
    own size, so screenshots and scans ran at full size. Text lines are found as well at 736
    or 960 where the text is not small (measured on 34 rendered images: the same characters
    read) in a third or half of the time; recognition still reads each line from the
    full-size image. "min": RapidOCR's own rule.
    """
    try:
        from rapidocr_onnxruntime.ch_ppocr_det.utils import DetPreProcess

        detector = engine.text_det
        mean, std = detector.mean, detector.std
    except (ImportError, AttributeError) as error:
        logger.warning("OCR detector input left as it is (unexpected RapidOCR layout: %s)", error)
        return None

    class Float32DetPreProcess(DetPreProcess):  # type: ignore[misc]
        """RapidOCR's resizing, then normalization straight into a float32 CHW array.

        RapidOCR normalizes with float64 mean/std arrays (several passes over a float64 copy,
        then a strided cast): 31 ms for a 960x576 input where this takes 3 ms, same values.
        """

        def __call__(self, image: NDArray[np.uint8]) -> NDArray[np.float32] | None:
            resized = self.resize(image)
            if resized is None:
                return None
            height, width = resized.shape[:2]
            scale = (self.scale / np.asarray(self.std)).astype(np.float32)
            offset = (-np.asarray(self.mean) / np.asarray(self.std)).astype(np.float32)
            normalized = np.empty((1, 3, height, width), dtype=np.float32)
            for channel in range(3):
                np.multiply(resized[:, :, channel], scale[channel], out=normalized[0, channel])
                normalized[0, channel] += offset[channel]
            return normalized

    def use_limit(side_len: int) -> None:
        def preprocess(longest_side_of_image: int) -> Any:
            return Float32DetPreProcess(side_len, limit_type, mean, std)

        detector.get_preprocess = preprocess

    use_limit(limit_side_len)
    return use_limit


def _detect_small_text_again(
    engine: Any,
    use_limit: Callable[[int], None],
    limit_side_len: int,
    small_text_px: int,
    max_side_len: int,
) -> None:
    """Detect again, finer, where the text found is small at the detector's scale.

    Scaled down too far, small text blurs: lines merge into boxes taller than they are apart
    (a 1920x1080 screenshot with 12 px text, detected at 960 px, read 22 of 30 lines exactly),
    or vanish (12 px text on a 2560x1440 screenshot at 640 px). The text's height is measured
    from its ink inside the boxes found (see text_height_px), so merged lines do not pass for
    large text; where it is below ``small_text_px`` at the detector's scale, the image is
    detected again at the scale that makes it ``TARGET_TEXT_PX``, and where nothing was found
    at under ``COARSEST_FALLBACK_SCALE``, at that scale. Never past full size or
    ``max_side_len``, nor under 1.25 times as fine as the run before. Callers hold the reader's
    lock, so swapping the limit affects no other image.
    """
    detect = engine.auto_text_det

    def finer_side_len(image: NDArray[np.uint8], boxes: Any, side_len: int) -> int | None:
        longest_side = max(image.shape[:2])
        finest = min(longest_side, max_side_len)
        if finest * 4 < side_len * 5:  # no run can be 1.25 times as fine: nothing to measure
            return None
        if boxes is None or len(boxes) == 0:
            wanted = math.ceil(longest_side * COARSEST_FALLBACK_SCALE)
        else:
            text_px = text_height_px(image, boxes)
            if text_px is None or text_px * side_len / longest_side >= small_text_px:
                return None
            wanted = math.ceil(longest_side * TARGET_TEXT_PX / text_px)
        finer = min(finest, wanted)
        return finer if finer * 4 >= side_len * 5 else None

    def auto_text_det(image: NDArray[np.uint8]) -> tuple[Any, float]:
        boxes, seconds = detect(image)
        side_len = min(max(image.shape[:2]), limit_side_len)
        finer = finer_side_len(image, boxes, side_len)
        if finer is None:
            return boxes, seconds
        runs = engine.text_det.infer
        session = runs.session
        # The finer runs' larger feature maps are not kept in the detector's memory arena.
        runs.session = _ArenaShrinkingSession(session)
        try:
            while finer is not None:
                logger.debug("Small or no text at %d px: detected again at %d px", side_len, finer)
                use_limit(finer)
                finer_boxes, finer_seconds = detect(image)
                seconds += finer_seconds
                if finer_boxes is not None and len(finer_boxes):
                    boxes = finer_boxes
                side_len, finer = finer, finer_side_len(image, finer_boxes, finer)
        finally:
            use_limit(limit_side_len)
            runs.session = session
        return boxes, seconds

    engine.auto_text_det = auto_text_det


# Where nothing is found at a coarser scale, the image is detected again at this one: text
# 8 px tall becomes 5 px: at 4 px the detector found lines on some images and none on others.
COARSEST_FALLBACK_SCALE: Final = 0.6
# The text height (pixels at the detector's scale) a second detection aims for: on rendered
# screenshots, lines 13-14 px tall at the detector's scale read as well as at full size.
TARGET_TEXT_PX: Final = 14
# Below this contrast (0-255) to its box's background, a box holds no measurable ink.
_MIN_INK_CONTRAST: Final = 40


def text_height_px(image: NDArray[np.uint8], boxes: Any) -> float | None:
    """The median height of the text in ``boxes`` (four corners each), in the image's pixels.

    Within each box wider than tall, rows holding ink (pixels at least half the box's highest
    contrast away from its median, its background) form runs; the tallest run is a line's
    height, also where one box took in several lines. None where no box holds ink.
    """
    heights = []
    for corners in np.asarray(boxes, dtype=np.float32):
        left, top = np.floor(corners.min(axis=0)).astype(int)
        right, bottom = np.ceil(corners.max(axis=0)).astype(int)
        if right - left <= bottom - top:  # vertical text or a stray blob
            continue
        crop = image[max(top, 0) : max(bottom, 0), max(left, 0) : max(right, 0)]
        if crop.size == 0:
            continue
        gray = crop.min(axis=2).astype(np.int16) if crop.ndim == 3 else crop.astype(np.int16)
        contrast = np.abs(gray - int(np.median(gray)))
        peak = int(contrast.max())
        if peak < _MIN_INK_CONTRAST:
            continue
        tallest = _longest_run(np.any(contrast * 2 >= peak, axis=1))
        if tallest:
            heights.append(tallest)
    return float(np.median(heights)) if heights else None


def _longest_run(flags: NDArray[np.bool_]) -> int:
    """The length of the longest run of True in ``flags``."""
    padded = np.concatenate(([False], flags, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    starts, ends = edges[::2], edges[1::2]
    return int((ends - starts).max()) if starts.size else 0


class _ArenaShrinkingSession:
    """An ONNX Runtime session whose runs give their memory arena's unused chunks back.

    The detector's arena keeps the largest feature maps it has held; one detection at twice the
    limit kept about 220 MB more for the rest of the process.
    """

    def __init__(self, session: Any) -> None:
        import onnxruntime

        self._session = session
        self._options = onnxruntime.RunOptions()
        self._options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def run(self, output_names: Any, feeds: Any) -> Any:
        return self._session.run(output_names, feeds, self._options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


class _LineRecognizer:
    """RapidOCR's text recognizer, run on one text line at a time at the line's own width.

    RapidOCR pads every line to at least 320 px (at the model's 48 px height) and a batch's
    lines to its widest; the model's time grows with the padded width, so a short UI label
    cost as much as a line of text. Each line here runs alone at its own width.
    ``session`` stays the wrapped recognizer's, so it can be swapped (calibration records
    the lines through it).
    """

    def __init__(self, recognizer: Any, workers: int) -> None:
        self._recognizer = recognizer
        self._pool = ThreadPoolExecutor(workers, "ocr-line") if workers > 1 else None

    @property
    def session(self) -> Any:
        return self._recognizer.session

    @session.setter
    def session(self, session: Any) -> None:
        self._recognizer.session = session

    def __call__(
        self, crops: Sequence[NDArray[np.uint8]], return_word_box: bool = False
    ) -> tuple[list[tuple[str, float]], float]:
        if return_word_box:  # word boxes need RapidOCR's own batch geometry
            result: tuple[list[tuple[str, float]], float] = self._recognizer(crops, return_word_box)
            return result
        started = time.perf_counter()
        if self._pool is None or len(crops) < 2:
            lines = [self._read_line(crop) for crop in crops]
        else:
            # Longest lines first, so that the workers finish at about the same time.
            order = sorted(range(len(crops)), key=lambda index: -_aspect_ratio(crops[index]))
            read = self._pool.map(self._read_line, [crops[index] for index in order])
            by_index = dict(zip(order, read, strict=True))
            lines = [by_index[index] for index in range(len(crops))]
        return lines, time.perf_counter() - started

    def _read_line(self, crop: NDArray[np.uint8]) -> tuple[str, float]:
        batch = self._recognizer.resize_norm_img(crop, _aspect_ratio(crop))[np.newaxis]
        predictions = self._recognizer.session(batch)[0]
        text, score = self._recognizer.postprocess_op(predictions)[0]
        return str(text), float(score)


def _aspect_ratio(crop: NDArray[np.uint8]) -> float:
    height, width = crop.shape[:2]
    return float(width) / float(height)


def _recognize_lines_at_own_width(engine: Any, workers: int) -> None:
    try:
        engine.text_rec = _LineRecognizer(engine.text_rec, workers)
    except AttributeError as error:
        logger.warning("OCR recognizer left as it is (unexpected RapidOCR layout: %s)", error)


def _give_models_own_sessions(
    engine: Any, det_model: Path, rec_model: Path, detector_threads: int
) -> None:
    """Run both models in sessions that keep ONNX Runtime's memory arena: the detector on
    ``detector_threads`` threads, the recognizer on one (lines run side by side instead).

    RapidOCR turns the arena off for every model, so each run took its feature maps from the C
    heap and gave them back, and release_freed_memory() after each image returned them to the
    system, to be faulted in again by the next. Measured on a 2-core machine: detection took
    0.25 s per 960x576 input instead of 0.15 s with the arena; with the recognizer's arena too,
    33 screenshots cost 22 CPU seconds instead of 24-26 (190,000 page faults instead of 1.1
    million) and the peak RSS fell from 450-465 to 355-360 MB. The detector's arena holds about
    130 MB between images, bounded since its input is (by ``det_limit_side_len`` with the "max"
    type, else by RapidOCR's 2,000 px limit). The recognizer's grows with the widest text line
    read so far (48 px high, as wide as its aspect ratio makes it, at most the image's
    ``documents.max_image_pixels`` bound), times the lines read at once: about 35 MB on the
    benchmark corpus's screenshots.
    """
    try:
        detector_holder, recognizer_holder = engine.text_det.infer, engine.text_rec.session
    except AttributeError as error:
        logger.warning("OCR sessions left as they are (unexpected RapidOCR layout: %s)", error)
        return
    detector_holder.session = cpu_session(det_model, detector_threads)
    recognizer_holder.session = cpu_session(rec_model, 1)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (musl, macOS, Windows)."""
    library = ctypes.util.find_library("c")
    if library is None:
        return None
    trim: Callable[[int], int] | None = getattr(ctypes.CDLL(library), "malloc_trim", None)
    return trim


def release_freed_memory() -> None:
    """Hand memory freed by the C heap back to the system.

    One OCR call allocates and frees tens of MB (the decoded image, its line crops and their
    model inputs) in sizes that differ with every image; glibc keeps such freed blocks mapped,
    so without this a process's RSS climbs to its largest OCR call and stays there. The
    models' feature maps stay in their sessions' arenas (see _give_models_own_sessions), so
    this hands back little that the next image faults in again. Measured on the benchmark
    corpus's build: peak RSS 650 MB with it, 685 without, in the same time.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def get_ocr_reader(settings: OcrSettings) -> RapidOcrReader:
    """The process's reader for ``settings`` (one per distinct configuration).

    Fails fast with ``OcrUnavailableError`` when RapidOCR is not installed; the engine itself
    loads on first use. Callers decide from ``settings.enabled`` whether to use OCR at all.
    """
    _import_engine_class()
    return RapidOcrReader(settings)


# What Pillow raises for broken or truncated files, depending on the format. Its own bomb check
# (Image.MAX_IMAGE_PIXELS) raises the error past twice its limit and warns past it; a warning
# turned into an error by a warnings filter is a refusal too.
_PIL_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


_NOT_AN_IMAGE = "not an image in a format Pillow reads (another kind of file renamed?)"


def check_image_pixels(image: bytes | Path, max_pixels: int) -> None:
    """Raise ``ImageTooLargeError`` when the image has more than ``max_pixels`` pixels.

    The size comes from the image's header (``Image.open`` is lazy), so a small file that
    declares a huge canvas is refused without being decoded. Undecodable headers raise
    ``UnreadableImageError``.
    """
    source = io.BytesIO(image) if isinstance(image, bytes) else image
    try:
        with Image.open(source) as opened:
            width, height = opened.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnreadableImageError(
            f"the image is too large to decode ({exc}); documents.max_image_pixels is "
            f"{max_pixels:,}"
        ) from exc
    except UnidentifiedImageError as exc:
        # Pillow's own message names the file's path on the server.
        raise UnreadableImageError(_NOT_AN_IMAGE) from exc
    except _PIL_ERRORS as exc:
        raise UnreadableImageError(f"not a readable image ({exc})") from exc
    if width * height > max_pixels:
        raise ImageTooLargeError(width, height, max_pixels)


def decode_image(data: bytes) -> NDArray[np.uint8]:
    """Decode any format Pillow opens into a BGR uint8 array (RapidOCR's input layout)."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            rgb = to_rgb(ImageOps.exif_transpose(opened))
    except UnidentifiedImageError as exc:
        raise UnreadableImageError(_NOT_AN_IMAGE) from exc
    except _PIL_ERRORS as exc:
        raise UnreadableImageError(f"not a readable image ({exc})") from exc
    pixels: NDArray[np.uint8] = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)[:, :, ::-1])
    return pixels


def to_rgb(image: Image.Image) -> Image.Image:
    """An 8-bit RGB copy: transparency over white, 16/32-bit depth scaled down to 8 bits."""
    if image.mode == "RGB":
        return image
    if image.mode in _WIDE_MODES:
        return _scale_to_8bit(image).convert("RGB")
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        # Dark text on a transparent background would become dark on black without this.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _scale_to_8bit(image: Image.Image) -> Image.Image:
    values = np.asarray(image, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if image.mode.startswith("I;16") or (low >= 0 and 255 < high <= 65535):
        values = values / 257.0
    elif low < 0 or high > 255:
        values = (values - low) * (255.0 / ((high - low) or 1.0))
    return Image.fromarray(np.clip(values.round(), 0, 255).astype(np.uint8))


def _text_boxes(result: Sequence[Sequence[Any]]) -> list[TextBox]:
    boxes = []
    for points, text, _score in result:
        text = str(text).strip()
        if not text:
            continue
        xs = [float(point[0]) for point in points]
        ys = [float(point[1]) for point in points]
        boxes.append(TextBox(text=text, left=min(xs), top=min(ys), bottom=max(ys)))
    return boxes


def reading_order_text(boxes: Sequence[TextBox]) -> str:
    """Group boxes into lines by vertical overlap; lines top-down, boxes left to right."""
    lines: list[list[TextBox]] = []
    line_top = line_bottom = 0.0
    for box in sorted(boxes, key=lambda b: (b.top + b.bottom) / 2):
        if lines and _overlaps(box, line_top, line_bottom):
            lines[-1].append(box)
            line_top, line_bottom = min(line_top, box.top), max(line_bottom, box.bottom)
        else:
            lines.append([box])
            line_top, line_bottom = box.top, box.bottom
    return "\n".join(_join_line(sorted(line, key=lambda b: b.left)) for line in lines)


def _overlaps(box: TextBox, line_top: float, line_bottom: float) -> bool:
    shared = min(box.bottom, line_bottom) - max(box.top, line_top)
    shorter = min(box.bottom - box.top, line_bottom - line_top)
    return shared > 0 and shared >= _SAME_LINE_OVERLAP * shorter


def _join_line(boxes: Sequence[TextBox]) -> str:
    text = ""
    for box in boxes:
        if text and _is_latin_or_digit(text[-1]) and _is_latin_or_digit(box.text[0]):
            text += " "
        text += box.text
    return text


def _is_latin_or_digit(char: str) -> bool:
    # Chinese and Japanese need no space between fragments; Latin words and numbers do.
    return char.isdigit() or "LATIN" in unicodedata.name(char, "")
