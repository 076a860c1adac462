"""The knowledge-base page's file table, its file actions, and the chunk editor."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from functools import partial
from typing import Any

import streamlit as st

from webui.api_client import ApiClient
from webui.api_models import DocsResult, FileDetails
from webui.state import notify
from webui.transport import ApiError

STATUS_LABELS = {"indexed": "已入库", "failed": "失败", "saved": "仅保存，未向量化"}


def _size_label(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KB", "MB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def _updated_label(details: FileDetails) -> str:
    if details.updated_at:
        return details.updated_at.replace("T", " ")[:19]
    if details.mtime:
        return datetime.fromtimestamp(details.mtime, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return ""


def file_rows(files: list[FileDetails]) -> list[dict[str, Any]]:
    return [
        {
            "文件名": item.file_name,
            "类型": item.ext,
            "大小": _size_label(item.size),
            "文本块": item.chunk_count,
            "状态": STATUS_LABELS.get(item.status, item.status),
            "更新时间": _updated_label(item),
            "错误": item.error,
        }
        for item in files
    ]


def _run_action(label: str, action: Callable[[], DocsResult]) -> None:
    try:
        result = action()
    except ApiError as exc:
        st.error(exc.message)
        return
    for name, reason in result.failed_files.items():
        notify("error", f"{name}：{reason}")
    notify("success", label)
    st.rerun()


def render_file_table(client: ApiClient, kb_name: str) -> None:
    st.subheader("文件")
    try:
        files = client.list_files(kb_name)
    except ApiError as exc:
        st.error(exc.message)
        return
    if not files:
        st.info("知识库中还没有文件")
        return
    st.dataframe(file_rows(files), hide_index=True, key="kb_file_table")
    selected = st.multiselect(
        "选择文件", [item.file_name for item in files], key=f"kb_file_select_{kb_name}"
    )
    if not selected:
        return
    update_col, delete_col, content_col = st.columns(3)
    if update_col.button("重新向量化所选文件", key="kb_update_docs"):
        _run_action("已重新向量化所选文件", lambda: client.update_docs(kb_name, selected))
    delete_content = content_col.checkbox("同时删除源文件", True, key="kb_delete_content")
    if delete_col.button("删除所选文件", key="kb_delete_docs"):
        _run_action(
            "已删除所选文件",
            lambda: client.delete_docs(kb_name, selected, delete_content=delete_content),
        )
    # Fetched by the client on click, with the API key; a plain link would not be.
    for name in selected:
        st.download_button(
            f"下载 {name}",
            data=partial(client.download_doc, kb_name, name),
            file_name=name,
            on_click="ignore",
            key=f"kb_download_{kb_name}_{name}",
        )


def render_chunk_editor(client: ApiClient, kb_name: str) -> None:
    with st.expander("查看与编辑文本块"):
        try:
            files = [item.file_name for item in client.list_files(kb_name) if item.chunk_count]
        except ApiError as exc:
            st.error(exc.message)
            return
        if not files:
            st.caption("没有已向量化的文件")
            return
        file_name = st.selectbox("文件", files, key=f"chunk_file_{kb_name}")
        if file_name is None:
            return
        try:
            chunks = client.list_file_chunks(kb_name, file_name)
        except ApiError as exc:
            st.error(exc.message)
            return
        by_id = {chunk.id: chunk for chunk in chunks}
        chunk_id = st.selectbox(
            "文本块",
            list(by_id),
            format_func=lambda key: f"#{by_id[key].seq} {by_id[key].text[:40]}",
            key=f"chunk_select_{kb_name}_{file_name}",
        )
        if chunk_id is None:
            return
        chunk = by_id[chunk_id]
        st.caption(f"元数据：{chunk.metadata}")
        text = st.text_area("内容", chunk.text, height=200, key=f"chunk_text_{chunk.id}")
        if st.button("保存文本块", key="chunk_save"):
            try:
                client.update_chunk(kb_name, chunk.id, text)
            except ApiError as exc:
                st.error(exc.message)
                return
            notify("success", f"已保存文本块 #{chunk.seq}，并重新向量化")
            st.session_state.pop(f"chunk_text_{chunk.id}", None)
            st.rerun()
