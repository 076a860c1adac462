"""The whole app in a browser: startup.py -a on loopback ports, driven by headless Chromium.

Needs Debian's chromium (/usr/bin/chromium, installed by scripts/setup.sh --test) and the
playwright package from the dev extra; Playwright never downloads a browser of its own here.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from kb_server.embedding.base import Embedder
from kb_server.settings import PROJECT_ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
BANNER_RULE = "=" * 72
STARTUP_TIMEOUT_S = 90.0
UI_TIMEOUT_MS = 45_000
KB_NAME = "e2e_notes"
FILE_NAME = "lighthouse.txt"
ANSWER = "The old lighthouse on Gull Island was painted red in 1921."
FILE_TEXT = (
    "Gull Island lies two miles off the northern coast.\n\n"
    f"{ANSWER}\n\n"
    "Fishing boats from the harbour sail past the island every morning.\n"
)
QUESTION = "What colour was the old lighthouse on Gull Island painted?"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class RunningApp:
    webui_url: str
    process: subprocess.Popen[bytes]


def wait_for_banner(process: subprocess.Popen[bytes], out_path: Path, err_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while out_path.read_text("utf-8", errors="replace").count(BANNER_RULE) < 2:
        if process.poll() is not None or time.monotonic() > deadline:
            errors = err_path.read_text("utf-8", errors="replace")
            raise AssertionError(f"startup.py is not up (exit {process.poll()}):\n{errors}")
        time.sleep(0.2)


@pytest.fixture
def app(tmp_path: Path, embedder: Embedder, model_export_dir: Path) -> Iterator[RunningApp]:
    """startup.py -a with no LLM configured, so the extractive answerer replies.

    The app uses the run's ONNX export of MiniLM, made by the ``embedder`` fixture: exporting
    it again (about a minute on 2 cores) would happen inside the first click that needs it.
    """
    kept = {name: value for name, value in os.environ.items() if not name.startswith("KB_")}
    env = {
        **kept,
        "HF_HUB_OFFLINE": "1",
        "KB_KB_ROOT": str(tmp_path / "kbs"),
        "KB_EMBEDDING__MODEL": MINILM,
        "KB_EMBEDDING__DEVICE": "cpu",
        "KB_EMBEDDING__EXPORT_DIR": str(model_export_dir),
        "KB_OCR__ENABLED": "false",
    }
    api_port, webui_port = free_port(), free_port()
    out_path, err_path = tmp_path / "startup.out", tmp_path / "startup.err"
    command = [sys.executable, str(PROJECT_ROOT / "startup.py"), "-a"]
    command += ["--api-port", str(api_port), "--webui-port", str(webui_port)]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=tmp_path)
    try:
        wait_for_banner(process, out_path, err_path)
        yield RunningApp(f"http://127.0.0.1:{webui_port}", process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    """A page in headless Debian Chromium with a fresh profile folder under tmp_path."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1400, "height": 1000},
            timeout=30_000,
        )
        try:
            context.set_default_timeout(UI_TIMEOUT_MS)
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def wait_until_idle(page: Page) -> None:
    """Wait out the rerun that follows a streamed answer, so a click lands on the final DOM."""
    expect(page.get_by_test_id("stStatusWidget")).to_be_hidden(timeout=UI_TIMEOUT_MS)


def create_kb_and_upload(page: Page, upload: Path) -> None:
    page.get_by_role("link", name="知识库管理").click()
    expect(page.get_by_role("heading", name="📚 知识库管理")).to_be_visible(timeout=UI_TIMEOUT_MS)
    page.get_by_label("知识库名称").fill(KB_NAME)
    page.get_by_role("button", name="新建", exact=True).click()
    expect(page.get_by_text(f"已新建知识库 {KB_NAME}")).to_be_visible(timeout=UI_TIMEOUT_MS)
    page.locator("input[type=file]").set_input_files(upload)
    expect(page.get_by_text(FILE_NAME).first).to_be_visible(timeout=UI_TIMEOUT_MS)
    # Choosing the file reruns the page. Until that run ends, the button drawn before the file
    # was chosen (disabled, one notice lower) can still stand below the new, enabled one.
    upload_button = page.get_by_role("button", name="上传并向量化", disabled=False)
    expect(upload_button).to_be_visible(timeout=UI_TIMEOUT_MS)
    upload_button.click()
    # The success notice reads "<file>：<n> 个文本块（<status>）".
    notice = page.get_by_text(f"{FILE_NAME}：", exact=False).filter(has_text="个文本块（")
    expect(notice.first).to_be_visible(timeout=UI_TIMEOUT_MS)


def ask_the_kb(page: Page) -> None:
    page.get_by_role("link", name="对话").click()
    expect(page.get_by_role("heading", name="💬 对话")).to_be_visible(timeout=UI_TIMEOUT_MS)
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("知识库问答", exact=True).click()
    kb_select = sidebar.get_by_role("combobox", name="知识库", exact=True)
    kb_select.click()
    page.get_by_role("option", name=KB_NAME).click()
    expect(kb_select).to_have_value(KB_NAME, timeout=UI_TIMEOUT_MS)
    chat_input = page.get_by_placeholder("请输入问题")
    chat_input.fill(QUESTION)
    chat_input.press("Enter")


def test_kb_question_in_browser_streams_answer_with_its_source(
    app: RunningApp, page: Page, tmp_path: Path
) -> None:
    upload = tmp_path / FILE_NAME
    upload.write_text(FILE_TEXT, "utf-8")
    page.goto(app.webui_url)
    expect(page.get_by_text("API 已连接", exact=False)).to_be_visible(timeout=UI_TIMEOUT_MS)

    create_kb_and_upload(page, upload)
    ask_the_kb(page)

    answer = page.get_by_test_id("stChatMessage").last
    expect(answer).to_contain_text(ANSWER, timeout=UI_TIMEOUT_MS)
    wait_until_idle(page)
    answer.get_by_text("出处（", exact=False).click()
    expect(answer.get_by_text(FILE_NAME).first).to_be_visible(timeout=UI_TIMEOUT_MS)
    screenshot = tmp_path / "kb_answer.png"
    page.screenshot(path=screenshot, full_page=True)
    assert app.process.poll() is None
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000
