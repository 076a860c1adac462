from __future__ import annotations

import difflib
import random
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from kb_server.documents.base import OcrReader
from kb_server.documents.ocr import (
    RapidOcrReader,
    TextBox,
    UnreadableImageError,
    decode_image,
    get_ocr_reader,
    reading_order_text,
    text_height_px,
    to_rgb,
)
from kb_server.settings import OcrSettings, load_settings
from tests.unit.documents.rendering import image_bytes, render_text_image

LINES = ["知识库问答系统", "Offline RAG 2024"]


def test_reads_chinese_and_english_lines_in_order(
    ocr_reader: OcrReader, cjk_font_path: Path
) -> None:
    png = image_bytes(render_text_image(LINES, cjk_font_path), "PNG")

    assert ocr_reader.read_image(png).splitlines() == LINES


def test_reads_jpeg_from_a_path(ocr_reader: OcrReader, cjk_font_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "scan.jpg"
    render_text_image(["扫描文件"], cjk_font_path).save(path, quality=90)

    assert ocr_reader.read_image(path) == "扫描文件"


def test_reads_dark_text_on_a_transparent_background(
    ocr_reader: OcrReader, cjk_font_path: Path
) -> None:
    image = render_text_image(["透明背景"], cjk_font_path, mode="RGBA", background=(0, 0, 0, 0))

    assert ocr_reader.read_image(image_bytes(image, "PNG")) == "透明背景"


def test_one_reader_serves_several_threads(ocr_reader: OcrReader, cjk_font_path: Path) -> None:
    words = ["第一张", "第二张", "第三张", "第四张"]
    images = [image_bytes(render_text_image([word], cjk_font_path), "PNG") for word in words]

    with ThreadPoolExecutor(max_workers=2) as pool:
        texts = list(pool.map(ocr_reader.read_image, images))

    assert texts == words


def test_image_below_minimum_side_gives_empty_text(ocr_reader: OcrReader) -> None:
    thin_rule = Image.new("L", (400, 20), 0)

    assert ocr_reader.read_image(image_bytes(thin_rule, "PNG")) == ""


def test_image_without_text_gives_empty_text(ocr_reader: OcrReader) -> None:
    assert ocr_reader.read_image(image_bytes(Image.new("RGB", (200, 200), "white"), "PNG")) == ""


@pytest.mark.parametrize("data", [b"", b"definitely not an image", b"\x89PNG\r\n\x1a\n\x00\x00"])
def test_undecodable_bytes_raise_unreadable_image_error(ocr_reader: OcrReader, data: bytes) -> None:
    with pytest.raises(UnreadableImageError):
        ocr_reader.read_image(data)


def test_unreadable_image_error_is_a_value_error() -> None:
    assert issubclass(UnreadableImageError, ValueError)


def test_lines_are_grouped_by_vertical_overlap_and_read_left_to_right() -> None:
    boxes = [
        TextBox("第二行", left=10, top=60, bottom=90),
        TextBox("2024", left=200, top=12, bottom=38),
        TextBox("RAG", left=120, top=10, bottom=40),
        TextBox("版本", left=300, top=11, bottom=39),
        TextBox("结尾", left=150, top=62, bottom=88),
    ]

    assert reading_order_text(boxes) == "RAG 2024版本\n第二行结尾"


def test_no_boxes_give_empty_text() -> None:
    assert reading_order_text([]) == ""


@pytest.mark.parametrize(
    ("image", "expected_corner"),
    [
        (Image.new("RGBA", (4, 4), (0, 0, 0, 0)), (255, 255, 255)),
        (Image.new("LA", (4, 4), (0, 0)), (255, 255, 255)),
        (Image.new("CMYK", (4, 4), (0, 0, 0, 255)), (0, 0, 0)),
        (Image.new("I;16", (4, 4), 65535), (255, 255, 255)),
        (Image.new("P", (4, 4), 0), (0, 0, 0)),
    ],
)
def test_images_are_converted_to_8bit_rgb(
    image: Image.Image, expected_corner: tuple[int, int, int]
) -> None:
    converted = to_rgb(image)

    assert converted.mode == "RGB"
    assert converted.getpixel((0, 0)) == expected_corner


def test_one_reader_per_distinct_settings() -> None:
    assert get_ocr_reader(OcrSettings()) is get_ocr_reader(OcrSettings())
    assert get_ocr_reader(OcrSettings(threads=1)) is not get_ocr_reader(OcrSettings())


def test_missing_rapidocr_raises_ocr_unavailable() -> None:
    # A child process where the optional package cannot be imported, as when the extra is absent.
    script = textwrap.dedent(
        """
        import sys
        sys.modules["rapidocr_onnxruntime"] = None
        from kb_server.documents.ocr import get_ocr_reader
        from kb_server.errors import OcrUnavailableError
        from kb_server.settings import OcrSettings
        try:
            get_ocr_reader(OcrSettings())
        except OcrUnavailableError as exc:
            sys.exit(0 if exc.code == "ocr_unavailable" and "[ocr]" in exc.message else 2)
        sys.exit(1)
        """
    )
    root = Path(__file__).resolve().parents[3]

    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=False
    )

    assert completed.returncode == 0, completed.stderr


SCREENSHOT_LINES = [
    "知识库管理页面",
    "上传文档后系统会自动切分并生成向量索引。",
    "点击重建向量库可以重新处理全部文件。",
    "当前知识库共有四十七个文件，其中三十三张截图。",
    "检索模式为混合检索，返回五条结果。",
    "离线环境下所有模型都从本地目录加载。",
]


def render_screenshot(font_path: Path) -> bytes:
    """A 1000x600 UI screenshot with 22 px text: a title bar and five lines, as PNG."""
    font = ImageFont.truetype(str(font_path), 22)
    image = Image.new("RGB", (1000, 600), (245, 245, 245))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, 1000, 44], fill=(40, 90, 160))
    for index, line in enumerate(SCREENSHOT_LINES):
        color = "white" if index == 0 else "black"
        draw.text((30, 10 + index * 60), line, font=font, fill=color)
    return image_bytes(image, "PNG")


def test_default_settings_read_a_screenshot_exactly(cjk_font_path: Path) -> None:
    """Read with the default (int8) models."""
    settings = load_settings().ocr
    reader = get_ocr_reader(settings)

    assert reader.read_image(render_screenshot(cjk_font_path)).splitlines() == SCREENSHOT_LINES
    assert settings.model_variant == "int8"
    assert reader.model_variant == "int8"


class RecordingSession:
    """Wraps the recognizer's model session: the input shape and thread of every run."""

    def __init__(self, session: Any) -> None:
        self.wrapped = session
        self.shapes: list[tuple[int, ...]] = []
        self.threads: set[str] = set()

    def __call__(self, batch: Any) -> Any:
        self.shapes.append(tuple(batch.shape))
        self.threads.add(threading.current_thread().name)
        return self.wrapped(batch)


def recording_reader(settings: OcrSettings) -> tuple[RapidOcrReader, RecordingSession]:
    reader = RapidOcrReader(settings)
    reader.warm_up()
    recognizer = reader._engine.text_rec  # type: ignore[union-attr]
    recorder = RecordingSession(recognizer.session)
    recognizer.session = recorder
    return reader, recorder


def test_each_text_line_is_recognized_alone_at_its_own_width(cjk_font_path: Path) -> None:
    """RapidOCR pads every line to at least 320 px at the model's 48 px height; a short
    label costs as little as its width here."""
    lines = ["设置", "上传文档后系统会自动切分并生成向量索引。"]
    reader, recorder = recording_reader(load_settings().ocr)

    text = reader.read_image(image_bytes(render_text_image(lines, cjk_font_path), "PNG"))

    assert text.splitlines() == lines
    assert [shape[0] for shape in recorder.shapes] == [1, 1]
    widths = sorted(shape[3] for shape in recorder.shapes)
    assert widths[0] < 160 < 320 < widths[1]
    assert {shape[2] for shape in recorder.shapes} == {48}


def test_two_threads_read_lines_at_once_in_reading_order(cjk_font_path: Path) -> None:
    settings = load_settings().ocr.model_copy(update={"threads": 2})
    reader, recorder = recording_reader(settings)

    text = reader.read_image(render_screenshot(cjk_font_path))

    assert text.splitlines() == SCREENSHOT_LINES
    assert len(recorder.shapes) == len(SCREENSHOT_LINES)
    assert len(recorder.threads) == 2
    assert all(name.startswith("ocr-line") for name in recorder.threads)
    engine: Any = reader._engine
    detector_options = engine.text_det.infer.session.get_session_options()
    recognizer_options = recorder.wrapped.session.get_session_options()
    assert detector_options.intra_op_num_threads == 2
    assert recognizer_options.intra_op_num_threads == 1
    # RapidOCR turns the memory arena off; with it the detector is 40 % faster, and the
    # recognizer's feature maps are not faulted in again after each image's memory release.
    assert detector_options.enable_cpu_mem_arena
    assert recognizer_options.enable_cpu_mem_arena


SMALL_TEXT_WORDS = (
    "知识库问答系统离线部署向量检索文档上传索引构建模型推理缓存配置日志权限管理接口服务重排序切分器"
)


def render_small_text_screenshot(
    font_path: Path,
    size: tuple[int, int] = (1920, 1080),
    line_count: int = 30,
    text_px: int = 12,
    line_pitch_px: int = 22,
) -> tuple[bytes, list[str]]:
    """A screenshot with lines of small text (12 px, 22 px apart by default), as PNG, and its
    lines."""
    choices = random.Random(5)
    font = ImageFont.truetype(str(font_path), text_px)
    image = Image.new("RGB", size, (250, 250, 250))
    draw = ImageDraw.Draw(image)
    lines = []
    for index in range(line_count):
        words = "".join(choices.choice(SMALL_TEXT_WORDS) for _ in range(choices.randint(8, 30)))
        lines.append(f"{words}{choices.randint(10, 9999)}")
        position = (10 + choices.randint(0, 40), 10 + index * line_pitch_px)
        draw.text(position, lines[-1], font=font, fill="black")
    return image_bytes(image, "PNG"), lines


class RecordingDetectorSession:
    """Wraps the detector's ONNX Runtime session: the input shape of every run."""

    def __init__(self, session: Any) -> None:
        self.wrapped = session
        self.shapes: list[tuple[int, ...]] = []
        self.shrinks_arena: list[bool] = []

    def run(self, output_names: Any, feeds: dict[str, Any], *options: Any) -> Any:
        self.shapes.extend(tuple(value.shape) for value in feeds.values())
        shrinkage = "memory.enable_memory_arena_shrinkage"
        self.shrinks_arena.append(
            bool(options) and options[0].get_run_config_entry(shrinkage) == "cpu:0"
        )
        return self.wrapped.run(output_names, feeds, *options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


def detector_recording_reader(
    settings: OcrSettings,
) -> tuple[RapidOcrReader, RecordingDetectorSession]:
    reader = RapidOcrReader(settings)
    reader.warm_up()
    runs = reader._engine.text_det.infer  # type: ignore[union-attr]
    recorder = RecordingDetectorSession(runs.session)
    runs.session = recorder
    return reader, recorder


def test_small_text_is_detected_again_at_a_larger_scale(cjk_font_path: Path) -> None:
    """At 736 px the 12 px lines of a 1080p screenshot are under 5 px tall; detected again
    finer (at the scale that makes them 14 px, here full size, capped at det_max_side_len:
    1600) every line is read."""
    reader, recorder = detector_recording_reader(load_settings().ocr)
    image, lines = render_small_text_screenshot(cjk_font_path)

    read_lines = reader.read_image(image).replace(" ", "").splitlines()

    assert read_lines == lines
    assert [shape[2:] for shape in recorder.shapes] == [(416, 736), (896, 1600)]
    # the larger run's feature maps are not kept in the detector's memory arena afterwards
    assert recorder.shrinks_arena == [False, True]

    recorder.shapes.clear()
    assert reader.read_image(render_screenshot(cjk_font_path)).splitlines() == SCREENSHOT_LINES
    assert [shape[2:] for shape in recorder.shapes] == [(448, 736)]  # 22 px text: 16 px at 736


def test_the_second_detection_is_capped_by_det_max_side_len(cjk_font_path: Path) -> None:
    settings = load_settings().ocr.model_copy(update={"det_max_side_len": 1440})
    reader, recorder = detector_recording_reader(settings)
    image, lines = render_small_text_screenshot(cjk_font_path)

    read_lines = reader.read_image(image).replace(" ", "").splitlines()

    assert [shape[2:] for shape in recorder.shapes] == [(416, 736), (800, 1440)]
    # 4 of the 30 lines are read exactly at 736 px alone
    assert sum(line in read_lines for line in lines) >= 28


def test_small_text_barely_above_the_limit_is_detected_once(cjk_font_path: Path) -> None:
    """900 px wide, scaled to 736: 10 px text is 8 px there, but full size is only 1.22 times
    as fine, not worth a second run."""
    reader, recorder = detector_recording_reader(load_settings().ocr)
    image, lines = render_small_text_screenshot(cjk_font_path, (900, 540), 24, 10, 20)

    read_lines = reader.read_image(image).replace(" ", "").splitlines()

    assert [shape[2:] for shape in recorder.shapes] == [(448, 736)]
    assert read_lines == lines


def test_text_too_small_to_find_at_the_limit_is_found_at_a_finer_scale(
    cjk_font_path: Path,
) -> None:
    """8 px text on a 2000x1120 screenshot is 3 px tall at 736 px, where nothing is found;
    at 0.6 of full size it is (5 px), and then detected again at det_max_side_len (1600)."""
    reader, recorder = detector_recording_reader(load_settings().ocr)
    image, lines = render_small_text_screenshot(cjk_font_path, (2000, 1120), 8, 8, 24)

    read_lines = reader.read_image(image).replace(" ", "").splitlines()

    assert [shape[2:] for shape in recorder.shapes] == [(416, 736), (672, 1216), (896, 1600)]
    assert recorder.shrinks_arena == [False, True, True]
    # every line is found; 8 px text is at the edge of what the recognizer reads (0.9 alike)
    assert len(read_lines) == len(lines)
    assert difflib.SequenceMatcher(None, "".join(lines), "".join(read_lines)).ratio() > 0.8

    recorder.shapes.clear()
    blank = image_bytes(Image.new("RGB", (2000, 1120), (250, 250, 250)), "PNG")
    assert reader.read_image(blank) == ""
    assert [shape[2:] for shape in recorder.shapes] == [(416, 736), (672, 1216)]


def test_images_larger_than_2000_px_are_read_at_full_size(cjk_font_path: Path) -> None:
    """RapidOCR scales such images down to 2000 px before detecting and reading them: 16 px
    text on a 4K screenshot became 8 px and none of these lines was read exactly."""
    reader, recorder = detector_recording_reader(load_settings().ocr)
    image, lines = render_small_text_screenshot(cjk_font_path, (3840, 2160), 12, 16, 30)

    read_lines = reader.read_image(image).replace(" ", "").splitlines()

    assert [shape[2:] for shape in recorder.shapes] == [(416, 736), (896, 1600)]
    assert sum(line in read_lines for line in lines) >= 10


def test_a_second_detection_can_be_turned_off(cjk_font_path: Path) -> None:
    settings = load_settings().ocr.model_copy(update={"det_small_text_px": 0})
    reader, recorder = detector_recording_reader(settings)
    image, lines = render_small_text_screenshot(cjk_font_path)

    read_lines = reader.read_image(image).replace(" ", "").splitlines()

    assert [shape[2:] for shape in recorder.shapes] == [(416, 736)]
    assert read_lines != lines


def test_text_height_is_measured_from_the_ink_inside_the_boxes(cjk_font_path: Path) -> None:
    image = Image.new("RGB", (900, 200), (245, 245, 245))
    draw = ImageDraw.Draw(image)
    large, small = (
        ImageFont.truetype(str(cjk_font_path), 22),
        ImageFont.truetype(str(cjk_font_path), 12),
    )
    draw.text((20, 20), "知识库问答系统离线部署", font=large, fill="black")
    draw.text((20, 70), "向量检索文档上传索引构建", font=small, fill="black")
    draw.text((20, 86), "模型推理缓存配置日志权限", font=small, fill="black")
    draw.text((600, 20), "知", font=large, fill="black")
    pixels = decode_image(image_bytes(image, "PNG"))

    def box(left: int, top: int, right: int, bottom: int) -> list[list[int]]:
        return [[left, top], [right, top], [right, bottom], [left, bottom]]

    large_box, two_small_lines = box(10, 12, 280, 52), box(10, 64, 200, 106)
    blank, tall_and_narrow = box(400, 120, 800, 160), box(596, 10, 626, 60)

    # CJK glyphs fill about their font size; faint anti-aliased edge rows (under half the
    # contrast) do not count
    assert text_height_px(pixels, [large_box]) == pytest.approx(22, abs=2)
    # one box 42 px tall around two lines of 12 px text: the height of one line
    assert text_height_px(pixels, [two_small_lines]) == pytest.approx(12, abs=2)
    assert text_height_px(pixels, [large_box, large_box, two_small_lines]) == pytest.approx(
        22, abs=2
    )
    assert text_height_px(pixels, [blank]) is None
    assert text_height_px(pixels, [tall_and_narrow]) is None  # vertical text is not measured


@pytest.mark.parametrize(
    ("limit_type", "image_size", "input_size"),
    [("max", (1600, 900), (960, 544)), ("min", (1000, 600), (1600, 960))],
)
def test_detector_input_is_scaled_by_the_settings_and_normalized_as_rapidocr_does(
    limit_type: str, image_size: tuple[int, int], input_size: tuple[int, int]
) -> None:
    from rapidocr_onnxruntime.ch_ppocr_det.utils import DetPreProcess

    settings = OcrSettings(det_limit_type=limit_type, det_limit_side_len=960)
    reader = RapidOcrReader(settings)
    reader.warm_up()
    detector = reader._engine.text_det  # type: ignore[union-attr]
    width, height = image_size
    pixels = np.random.default_rng(3).integers(0, 256, (height, width, 3), dtype=np.uint8)

    prepared = detector.get_preprocess(max(width, height))(pixels)
    reference = DetPreProcess(960, limit_type, detector.mean, detector.std)(pixels)

    assert prepared.shape == (1, 3, input_size[1], input_size[0])
    assert prepared.dtype == np.float32
    assert prepared.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(prepared, reference, rtol=0, atol=1e-6)
