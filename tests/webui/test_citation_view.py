"""Sources in the chat page: heading path, and the cited passage highlighted in its context."""

from __future__ import annotations

from typing import Any

from tests.webui.test_app import app_test, ask
from webui.api_client import ApiClient
from webui.api_models import ChunkContext
from webui.chat_view import passage_html


def test_passage_html_marks_the_span_and_escapes_the_text() -> None:
    text = "前文<b>。\n引用的句子 & 更多。后文"
    start = text.index("引用")
    end = text.index("后文")
    context = ChunkContext(
        text=text, highlight_start=start, highlight_end=end, truncated_before=True
    )

    html = passage_html(context)

    assert "<mark>引用的句子 &amp; 更多。</mark>" in html
    assert "&lt;b&gt;" in html
    assert "<b>" not in html
    assert "…前文" in html


def test_the_api_client_fetches_a_chunks_context(api_client: ApiClient, shop_kb: str) -> None:
    [chunk, *_] = api_client.list_file_chunks(shop_kb, "hours.txt")

    context = api_client.chunk_context(shop_kb, "hours.txt", chunk.id)

    assert context.text[context.highlight_start : context.highlight_end] == chunk.text


def test_a_source_shows_its_passage_highlighted_on_request(api_url: str, shop_kb: str) -> None:
    at = app_test(api_url).run()
    ask(at, "extractive")
    assert not at.exception

    at.toggle(key="context_turn1_0").set_value(True).run()

    assert not at.exception
    assert not at.error
    shown = at.get("html")
    assert len(shown) == 1
    body: Any = getattr(shown[0], "proto", None)
    assert "<mark>" in body.body
