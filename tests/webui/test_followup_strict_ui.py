"""The web UI shows a follow-up's rewritten query and toggles a knowledge base's strict mode."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.webui.test_app import KB_PAGE, app_test, ask, texts
from webui.api_client import ApiClient


def captions(at: AppTest) -> list[str]:
    return [str(caption.value) for caption in at.caption]


def test_a_followup_answer_shows_what_was_searched(api_url: str, shop_kb: str) -> None:
    at = app_test(api_url).run()
    ask(at, "extractive", "Refunds: how long until they are paid?")
    assert not any(caption.startswith("检索问题") for caption in captions(at))
    at.chat_input[0].set_value("Do they need the receipt?").run()
    assert not at.exception
    assert "检索问题：Do Refunds need the receipt?" in captions(at)


def test_the_strict_toggle_sets_the_kbs_strict_mode(
    api_url: str, api_client: ApiClient, shop_kb: str
) -> None:
    at = app_test(api_url).run()
    at.switch_page(KB_PAGE).run()
    toggle = at.toggle(key=f"kb_strict_{shop_kb}")
    assert toggle.value is False
    toggle.set_value(True).run()
    assert not at.exception
    assert [kb.strict for kb in api_client.list_knowledge_bases()] == [True]
    at.toggle(key=f"kb_strict_{shop_kb}").set_value(False).run()
    assert [kb.strict for kb in api_client.list_knowledge_bases()] == [False]


def test_strict_mode_chosen_in_the_chat_sidebar_refuses_an_unrelated_question(
    api_url: str, shop_kb: str
) -> None:
    at = app_test(api_url).run()
    ask(at, "extractive", "How does a rocket reach orbit?")
    assert "严格模式" not in texts(at)
    at.selectbox(key="chat_strict").set_value("开启").run()
    at.chat_input[0].set_value("How does a rocket reach orbit?").run()
    assert not at.exception
    assert "严格模式只依据检索到的资料作答" in texts(at)
