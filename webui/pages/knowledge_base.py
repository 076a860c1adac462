"""Knowledge-base page: create and delete knowledge bases, upload files, rebuild the index."""

from __future__ import annotations

import streamlit as st

from webui.api_client import ApiClient
from webui.api_models import KbDetails
from webui.kb_files import render_chunk_editor, render_file_table
from webui.kb_jobs import render_jobs
from webui.state import get_client, notify, show_notices
from webui.transport import ApiError

NEW_KB = "＋ 新建知识库"
_SELECT_KEY = "kb_select"
# Set before st.rerun() so the selectbox shows a KB created (or emptied) in the last run.
_PENDING_KEY = "_kb_pending_select"


def render_create_form(client: ApiClient) -> None:
    with st.form("kb_create", clear_on_submit=False):
        name = st.text_input(
            "知识库名称", key="kb_new_name", placeholder="仅支持字母、数字、中文等"
        )
        description = st.text_area("知识库介绍", key="kb_new_description")
        embed_model = st.text_input(
            "向量模型", key="kb_new_embed_model", help="留空则使用服务端配置的向量模型"
        )
        submitted = st.form_submit_button("新建")
    if not submitted:
        return
    if not name.strip():
        st.error("知识库名称不能为空")
        return
    try:
        kb = client.create_knowledge_base(
            name.strip(), description=description, embed_model=embed_model.strip() or None
        )
    except ApiError as exc:
        st.error(exc.message)
        return
    notify("success", f"已新建知识库 {kb.name}")
    st.session_state[_PENDING_KEY] = kb.name
    st.rerun()


def render_delete(client: ApiClient, kb: KbDetails) -> None:
    with st.expander("删除知识库"):
        confirm_key = f"kb_delete_confirm_{kb.name}"
        confirmed = st.checkbox(f"确认删除知识库 {kb.name} 及其全部文件", key=confirm_key)
        if st.button("删除知识库", disabled=not confirmed, type="primary", key="kb_delete"):
            try:
                client.delete_knowledge_base(kb.name)
            except ApiError as exc:
                st.error(exc.message)
                return
            st.session_state.pop(confirm_key, None)
            notify("success", f"已删除知识库 {kb.name}")
            st.session_state[_PENDING_KEY] = NEW_KB
            st.rerun()


def render_upload(client: ApiClient, kb: KbDetails) -> None:
    with st.expander("上传文件", expanded=kb.file_count == 0):
        uploads = st.file_uploader("选择文件（可多选）", accept_multiple_files=True, key="kb_files")
        size_col, overlap_col = st.columns(2)
        chunk_size = size_col.number_input(
            "单段文本最大长度", 20, 20_000, kb.chunk_size or 250, key="kb_chunk_size"
        )
        chunk_overlap = overlap_col.number_input(
            "相邻文本重合长度", 0, 19_999, kb.chunk_overlap, key="kb_chunk_overlap"
        )
        zh_title = st.checkbox("开启中文标题加强", kb.zh_title_enhance, key="kb_zh_title")
        override = st.checkbox("覆盖已有文件", False, key="kb_override")
        background = st.checkbox(
            "后台处理",
            False,
            key="kb_background",
            help="在后台向量化并显示每个文件的进度；文件较大或较多时服务端会自动转为后台任务",
        )
        if not st.button("上传并向量化", disabled=not uploads, key="kb_upload") or not uploads:
            return
        with st.spinner("正在上传…"):
            try:
                result = client.upload_docs(
                    kb.name,
                    [(upload.name, upload.getvalue()) for upload in uploads],
                    override=override,
                    chunk_size=int(chunk_size),
                    chunk_overlap=int(chunk_overlap),
                    zh_title_enhance=zh_title,
                    background=True if background else None,
                )
            except ApiError as exc:
                st.error(exc.message)
                return
        for name, reason in result.failed_files.items():
            notify("error", f"{name}：{reason}")
        if result.job_id:
            notify("info", f"已转为后台任务 {result.job_id[:8]}，进度见下方“后台任务”")
        for item in result.files:
            if item.status not in ("failed", "saved"):
                notify("success", f"{item.file_name}：{item.chunks} 个文本块（{item.status}）")
        st.rerun()


def render_rebuild(client: ApiClient, kb: KbDetails) -> None:
    with st.expander("重建向量库"):
        force = st.checkbox("全部重新向量化（包括未改动的文件）", key="kb_rebuild_force")
        if not st.button("重建向量库", key="kb_rebuild"):
            return
        progress = st.progress(0.0, text="开始重建…")
        try:
            for event in client.recreate_vector_store(kb.name, force=force):
                if event.summary is not None:
                    progress.progress(1.0, text="重建完成")
                    summary = event.summary
                    indexed, unchanged = summary.get("indexed", 0), summary.get("unchanged", 0)
                    failed = summary.get("failed", 0)
                    st.success(
                        f"重建完成：新向量化 {indexed} 个，未改动 {unchanged} 个，失败 {failed} 个"
                    )
                    for name, reason in (summary.get("failed_files") or {}).items():
                        st.warning(f"{name}：{reason}")
                elif event.total:
                    progress.progress(event.finished / event.total, text=event.msg)
        except ApiError as exc:
            st.error(exc.message)


def _save_strict(client: ApiClient, kb_name: str, key: str) -> None:
    strict = bool(st.session_state[key])
    try:
        client.set_kb_strict(kb_name, strict)
    except ApiError as exc:
        notify("error", exc.message)
        return
    notify("success", f"知识库 {kb_name} 已{'开启' if strict else '关闭'}严格模式")


def render_strict_toggle(client: ApiClient, kb: KbDetails) -> None:
    key = f"kb_strict_{kb.name}"
    st.toggle(
        "严格模式：只依据检索到的内容回答，没有足够相关的内容时拒答",
        value=kb.strict,
        key=key,
        on_change=_save_strict,
        args=(client, kb.name, key),
        help="对话请求未指定 strict 时使用该设置",
    )


def render_kb_page(client: ApiClient) -> None:
    st.title("📚 知识库管理")
    show_notices()
    try:
        kbs = client.list_knowledge_bases()
    except ApiError as exc:
        st.error(exc.message)
        return
    by_name = {kb.name: kb for kb in kbs}
    options = [*by_name, NEW_KB]
    pending = st.session_state.pop(_PENDING_KEY, None)
    if pending in options:
        st.session_state[_SELECT_KEY] = pending
    elif st.session_state.get(_SELECT_KEY) not in options:
        st.session_state[_SELECT_KEY] = options[0]
    choice = st.selectbox("知识库", options, key=_SELECT_KEY)
    if choice is None or choice not in by_name:
        render_create_form(client)
        return
    kb = by_name[choice]
    st.caption(
        f"{kb.description or '（无介绍）'} · 向量模型 {kb.embed_model} · "
        f"{kb.file_count} 个文件 · {kb.chunk_count} 个文本块"
    )
    render_strict_toggle(client, kb)
    render_upload(client, kb)
    render_jobs(client, kb.name)
    render_file_table(client, kb.name)
    render_chunk_editor(client, kb.name)
    render_rebuild(client, kb)
    render_delete(client, kb)


if __name__ == "__main__":
    render_kb_page(get_client())
