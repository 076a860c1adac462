"""Chat page: LLM chat, knowledge-base questions or questions about uploaded files."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import streamlit as st

from webui.api_client import ApiClient
from webui.api_models import ChatDelta, ChatDocs, ChatEvent, ChatFailure, ChatParams, SourceDoc
from webui.chat_view import (
    Turn,
    history,
    render_search_query,
    render_sources,
    render_turn,
    to_markdown,
    turns,
)
from webui.conversations import (
    clear_current,
    current_conversation_id,
    load_turns,
    render_conversations,
    start_new,
)
from webui.state import get_client, notify, show_notices
from webui.transport import ApiError

LLM_MODE = "LLM 对话"
KB_MODE = "知识库问答"
FILE_MODE = "文件对话"
MODES = (LLM_MODE, KB_MODE, FILE_MODE)
# Label -> search_mode sent to the API (None: the server's default, hybrid as shipped).
SEARCH_MODES: dict[str, str | None] = {
    "混合检索（默认）": None,
    "关键词检索 BM25": "bm25",
    "向量检索": "dense",
}
# Strict mode per question: the knowledge base's own setting, or on/off for this question.
STRICT_CHOICES: dict[str, bool | None] = {
    "跟随知识库设置": None,
    "开启": True,
    "关闭": False,
}
EXTRACTIVE = "extractive"
FILE_CHAT_ID_KEY = "file_chat_id"


@dataclass
class ChatSetup:
    mode: str
    kb_name: str | None
    params: ChatParams
    history_rounds: int


@dataclass
class StreamOutcome:
    docs: list[SourceDoc] = field(default_factory=list)
    failure: ChatFailure | None = None
    search_query: str | None = None


def _model_choice(client: ApiClient, mode: str) -> str | None:
    try:
        models = client.list_models()
        default = client.health().default_model
    except ApiError as exc:
        st.error(exc.message)
        return None
    if mode == LLM_MODE:
        # The extractive answerer quotes documents; with no documents it has nothing to say.
        models = [name for name in models if name != EXTRACTIVE]
    if not models:
        st.warning("没有可用的模型")
        return None
    index = models.index(default) if default in models else 0
    return st.selectbox("模型", models, index=index, key=f"chat_model_{mode}")


def _kb_choice(client: ApiClient) -> str | None:
    try:
        names = [kb.name for kb in client.list_knowledge_bases()]
    except ApiError as exc:
        st.error(exc.message)
        return None
    if not names:
        st.warning("还没有知识库，请先在“知识库管理”中新建")
        return None
    return st.selectbox("知识库", names, key="chat_kb")


def _upload_files(client: ApiClient) -> None:
    uploads = st.file_uploader("上传文件（可多选）", accept_multiple_files=True, key="chat_files")
    if not uploads or not st.button("上传并解析", key="chat_upload"):
        return
    files = [(upload.name, upload.getvalue()) for upload in uploads]
    with st.spinner("正在解析文件…"):
        try:
            result = client.upload_temp_docs(files, prev_id=st.session_state.get(FILE_CHAT_ID_KEY))
        except ApiError as exc:
            st.error(exc.message)
            return
    st.session_state[FILE_CHAT_ID_KEY] = result.id
    for name, reason in result.failed_files.items():
        st.warning(f"{name}：{reason}")
    st.success(f"已上传 {len(files) - len(result.failed_files)} 个文件，可以开始提问")


def render_settings(client: ApiClient) -> ChatSetup:
    with st.sidebar:
        st.subheader("对话设置")
        mode = st.radio("模式", MODES, index=1, key="chat_mode", horizontal=True) or KB_MODE
        kb_name = _kb_choice(client) if mode == KB_MODE else None
        if mode == FILE_MODE:
            _upload_files(client)
        model = _model_choice(client, mode)
        top_k, threshold, search_mode, strict = 3, 0.0, None, None
        if mode != LLM_MODE:
            top_k = st.slider("匹配条数 top_k", 1, 20, 3, key="chat_top_k")
            search_mode = SEARCH_MODES[
                st.selectbox("检索方式", list(SEARCH_MODES), index=0, key="chat_search_mode")
                or "混合检索（默认）"
            ]
            threshold = st.slider(
                "相关度下限",
                0.0,
                1.0,
                0.0,
                step=0.05,
                key="chat_score_threshold",
                help="低于此分数的文本块不参与回答，0 表示不过滤。各检索方式的分数都在 0 到 1 "
                "之间，越高越相关：关键词与混合检索看问题的词在文本块中出现得多少，"
                "向量检索为余弦相似度（负值记为 0）。",
            )
            strict = STRICT_CHOICES[
                st.selectbox(
                    "严格模式",
                    list(STRICT_CHOICES),
                    index=0,
                    key="chat_strict",
                    help="开启后只根据检索到的原文回答；没有文本块达到相关度下限时直接拒答。",
                )
                or "跟随知识库设置"
            ]
        temperature = st.slider("温度 temperature", 0.0, 2.0, 0.7, step=0.05, key="chat_temp")
        rounds = st.number_input("历史对话轮数", 0, 20, 3, key="chat_history_rounds")
    params = ChatParams(
        model_name=model,
        temperature=temperature,
        top_k=top_k,
        score_threshold=threshold if threshold > 0 else None,
        search_mode=search_mode,
        strict=strict,
    )
    return ChatSetup(mode=mode, kb_name=kb_name, params=params, history_rounds=int(rounds))


def _events(
    client: ApiClient, setup: ChatSetup, query: str, params: ChatParams
) -> Iterator[ChatEvent]:
    if setup.mode == KB_MODE:
        if setup.kb_name is None:
            raise ApiError(0, "no_kb", "请先选择知识库")
        return client.kb_chat(query, setup.kb_name, params)
    if setup.mode == FILE_MODE:
        knowledge_id = st.session_state.get(FILE_CHAT_ID_KEY)
        if not knowledge_id:
            raise ApiError(0, "no_files", "请先上传文件")
        return client.file_chat(query, str(knowledge_id), params)
    return client.llm_chat(query, params)


def _deltas(events: Iterator[ChatEvent], outcome: StreamOutcome) -> Iterator[str]:
    for event in events:
        if isinstance(event, ChatDelta):
            yield event.text
        elif isinstance(event, ChatDocs):
            outcome.docs = event.docs
            outcome.search_query = event.search_query
        else:
            outcome.failure = event


def _store(client: ApiClient, turn: Turn) -> None:
    conversation_id = current_conversation_id()
    if conversation_id is None:
        return
    try:
        message = client.add_message(
            conversation_id, turn.role, turn.content, docs=turn.docs, model=turn.model
        )
    except ApiError as exc:
        notify("warning", f"对话记录未保存：{exc.message}")
        return
    turn.message_id = message.id


def ask(client: ApiClient, setup: ChatSetup, query: str) -> None:
    previous = history(turns(), setup.history_rounds)
    if current_conversation_id() is None:
        start_new(client, name=query[:20])
    question = Turn("user", query)
    turns().append(question)
    _store(client, question)
    render_turn(client, current_conversation_id(), question, len(turns()) - 1)
    params = replace(setup.params, history=previous)
    outcome = StreamOutcome()
    with st.chat_message("assistant"):
        try:
            events = _events(client, setup, query, params)
            written = st.write_stream(_deltas(events, outcome))
        except ApiError as exc:
            st.error(exc.message)
            return
        if outcome.failure is not None:
            st.error(outcome.failure.message)
        rewritten = outcome.search_query if outcome.search_query != query else None
        if rewritten:
            render_search_query(rewritten)
        if outcome.docs:
            render_sources(client, outcome.docs, key="live")
    answer = written if isinstance(written, str) else "".join(str(part) for part in written)
    if not answer:
        return
    reply = Turn("assistant", answer, docs=outcome.docs, model=setup.params.model_name)
    reply.search_query = rewritten
    turns().append(reply)
    _store(client, reply)
    if outcome.failure is None:
        st.rerun()


def render_toolbar() -> None:
    clear_col, export_col = st.columns(2)
    clear_col.button("清空对话", on_click=clear_current, key="chat_clear")
    export_col.download_button(
        "导出 Markdown",
        data=to_markdown("对话记录", turns()),
        file_name="conversation.md",
        mime="text/markdown",
        key="chat_export",
    )


def render_chat_page(client: ApiClient) -> None:
    st.title("💬 对话")
    render_conversations(client)
    setup = render_settings(client)
    show_notices()
    load_turns(client)
    render_toolbar()
    conversation_id = current_conversation_id()
    for position, turn in enumerate(turns()):
        render_turn(client, conversation_id, turn, position)
    query = st.chat_input("请输入问题")
    if query:
        ask(client, setup, query)


if __name__ == "__main__":
    render_chat_page(get_client())
