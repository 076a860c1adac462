"""Entry point of the web UI: ``streamlit run webui/app.py``.

The API address comes from $KB_WEBUI__API_BASE_URL, else settings.yaml (``webui.api_base_url``,
or the API's own host and port).
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run` puts only webui/ on sys.path; the `webui` package lives in the project root.
PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)
if PROJECT_ROOT not in sys.path:
    sys.path.insert(0, PROJECT_ROOT)

import streamlit as st  # noqa: E402

from webui.api_client import ApiClient  # noqa: E402
from webui.state import get_client  # noqa: E402
from webui.transport import ApiError  # noqa: E402

PAGES_DIR = Path(__file__).resolve().parent / "pages"


def render_status(client: ApiClient) -> None:
    try:
        health = client.health()
    except ApiError as exc:
        st.sidebar.caption(f"🔴 {exc.message}")
        return
    st.sidebar.caption(
        f"🟢 API 已连接 · 默认模型 {health.default_model} · 知识库 {health.knowledge_bases} 个"
    )


def main() -> None:
    st.set_page_config(page_title="知识库问答", page_icon="📚", layout="wide")
    navigation = st.navigation(
        [
            st.Page(PAGES_DIR / "chat.py", title="对话", icon="💬", default=True),
            st.Page(PAGES_DIR / "knowledge_base.py", title="知识库管理", icon="📚"),
        ]
    )
    render_status(get_client())
    navigation.run()


if __name__ == "__main__":
    main()
