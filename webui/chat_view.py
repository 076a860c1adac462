"""How chat turns are kept in the session, drawn, and exported as Markdown."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from functools import partial
from pathlib import PurePosixPath

import streamlit as st

from webui.api_client import ApiClient
from webui.api_models import ChunkContext, Message, SourceDoc
from webui.state import notify
from webui.transport import ApiError

TURNS_KEY = "chat_turns"
KB_DOWNLOAD_PATH = "/knowledge_base/download_doc?"
# st.feedback's values: 0 is thumbs down, 1 thumbs up; the API stores -1 / 1 (0: none).
FEEDBACK_TO_SCORE = {0: -1, 1: 1}
SCORE_TO_FEEDBACK = {-1: 0, 1: 1}


@dataclass
class Turn:
    role: str
    content: str
    docs: list[SourceDoc] = field(default_factory=list)
    model: str | None = None
    message_id: str | None = None
    feedback: int | None = None
    # A follow-up's rewritten query, shown under the answer when it differs from the question.
    search_query: str | None = None

    @classmethod
    def of(cls, message: Message) -> Turn:
        return cls(
            role=message.role,
            content=message.content,
            docs=message.source_docs(),
            model=message.model,
            message_id=message.id,
            feedback=message.feedback,
        )


def turns() -> list[Turn]:
    value = st.session_state.setdefault(TURNS_KEY, [])
    assert isinstance(value, list)
    return value


def render_sources(client: ApiClient, docs: list[SourceDoc], key: str) -> None:
    """The sources of an answer; ``key`` tells apart the buttons of different answers."""
    with st.expander(f"出处（{len(docs)} 条）", expanded=False):
        for index, doc in enumerate(docs):
            page = f" · 第 {doc.page} 页" if doc.page is not None else ""
            # The API's score is a relevance in [0, 1] whatever the search mode.
            score = f" · 相关度 {doc.score:.2f}" if doc.score is not None else ""
            st.markdown(f"**[{doc.number}]** {doc.source}{page}{score}")
            if doc.heading_path:
                st.caption(" › ".join(doc.heading_path))
            if doc.url:
                # Fetched by the client on click, with the API key; a plain link would not be.
                st.download_button(
                    f"下载 {doc.source}",
                    data=partial(client.fetch, doc.url),
                    file_name=PurePosixPath(doc.source).name or "source",
                    on_click="ignore",
                    key=f"source_{key}_{index}",
                )
            render_citation(client, doc, key=f"{key}_{index}")


def passage_html(context: ChunkContext) -> str:
    """The passage as HTML with the cited span in <mark>; all text is escaped."""
    text, start, end = context.text, context.highlight_start, context.highlight_end
    before = ("…" if context.truncated_before else "") + text[:start]
    after = text[end:] + ("…" if context.truncated_after else "")
    body = f"{html.escape(before)}<mark>{html.escape(text[start:end])}</mark>{html.escape(after)}"
    return f'<div style="white-space: pre-wrap">{body}</div>'


def render_citation(client: ApiClient, doc: SourceDoc, key: str) -> None:
    """The chunk's text; on request, the passage around it with the chunk highlighted."""
    if doc.page_url and client.api_key is None:
        # A plain link carries no API key: offered only where the API needs none.
        st.markdown(f"[在浏览器中打开第 {doc.page} 页]({client.base_url}{doc.page_url})")
    # Sources of file chat come from a temporary knowledge base, which has no context route.
    chunk_id = doc.chunk_id if doc.url.startswith(KB_DOWNLOAD_PATH) else None
    if chunk_id is None or not st.toggle("在原文中查看", key=f"context_{key}"):
        st.text(doc.text)
        return
    try:
        context = client.chunk_context(doc.kb_name, doc.source, chunk_id)
    except ApiError as exc:
        notify("error", exc.message)
        st.text(doc.text)
        return
    st.html(passage_html(context))


def _save_feedback(client: ApiClient, conversation_id: str, turn: Turn, key: str) -> None:
    value = st.session_state.get(key)
    score = FEEDBACK_TO_SCORE.get(value, 0) if isinstance(value, int) else 0
    if turn.message_id is None:
        return
    try:
        client.set_feedback(conversation_id, turn.message_id, score)
    except ApiError as exc:
        notify("error", exc.message)
        return
    turn.feedback = score


def render_feedback(client: ApiClient, conversation_id: str | None, turn: Turn) -> None:
    if conversation_id is None or turn.message_id is None:
        return
    key = f"feedback_{turn.message_id}"
    st.feedback(
        "thumbs",
        key=key,
        default=SCORE_TO_FEEDBACK.get(turn.feedback or 0),
        on_change=_save_feedback,
        args=(client, conversation_id, turn, key),
    )


def render_search_query(search_query: str) -> None:
    st.caption(f"检索问题：{search_query}")


def render_turn(client: ApiClient, conversation_id: str | None, turn: Turn, position: int) -> None:
    """Draw a turn; ``position`` is its index in the session's turns."""
    with st.chat_message(turn.role):
        st.markdown(turn.content)
        if turn.search_query:
            render_search_query(turn.search_query)
        if turn.docs:
            render_sources(client, turn.docs, key=f"turn{position}")
        if turn.role == "assistant":
            render_feedback(client, conversation_id, turn)


def history(turn_list: list[Turn], rounds: int) -> tuple[tuple[str, str], ...]:
    """The last ``rounds`` question-answer pairs, oldest first."""
    if rounds <= 0:
        return ()
    recent = turn_list[-2 * rounds :]
    return tuple((turn.role, turn.content) for turn in recent if turn.role in ("user", "assistant"))


def to_markdown(title: str, turn_list: list[Turn]) -> str:
    lines = [f"# {title}", ""]
    for turn in turn_list:
        speaker = "用户" if turn.role == "user" else "助手"
        model = f"（{turn.model}）" if turn.model else ""
        lines += [f"## {speaker}{model}", "", turn.content, ""]
        if turn.docs:
            lines.append("出处：")
            lines += [f"- [{doc.number}] {doc.source}" for doc in turn.docs]
            lines.append("")
    return "\n".join(lines)
