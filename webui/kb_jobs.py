"""The knowledge-base page's ingestion jobs: live progress of running ones, the recent ones,
cancel and retry. Progress is polled from GET /knowledge_base/jobs (a fragment reruns every
second while a job is active)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from webui.api_client import ApiClient
from webui.api_models import Job
from webui.state import notify
from webui.transport import ApiError

STAGE_LABELS = {
    "queued": "排队中",
    "loading": "读取中",
    "ocr": "OCR 识别中",
    "splitting": "分段中",
    "embedding": "向量化中",
    "stored": "已入库",
    "unchanged": "未改动",
    "failed": "失败",
    "cancelled": "已取消",
}
STATUS_LABELS = {
    "queued": "排队中",
    "running": "进行中",
    "succeeded": "已完成",
    "failed": "失败",
    "cancelled": "已取消",
}
KIND_LABELS = {"upload": "上传", "update": "重新向量化", "rebuild": "重建向量库"}
REFRESH_S = 1.0
RECENT_JOBS = 5


def eta_label(seconds: float | None) -> str:
    if seconds is None:
        return "估算中"
    if seconds < 60:
        return f"约 {seconds:.0f} 秒"
    return f"约 {seconds / 60:.0f} 分钟"


def job_file_rows(job: Job) -> list[dict[str, Any]]:
    return [
        {
            "文件名": file.file_name,
            "阶段": STAGE_LABELS.get(file.stage, file.stage),
            "进度": f"{file.done}/{file.total}" if file.total else "",
            "文本块": file.chunks,
            "说明": file.detail,
        }
        for file in job.files
    ]


def counts_label(job: Job) -> str:
    shown = ("stored", "unchanged", "failed", "cancelled")
    parts = [f"{STAGE_LABELS[stage]} {job.counts.get(stage, 0)}" for stage in shown]
    return " · ".join([*parts, f"共 {job.files_total} 个文件", f"{job.chunks_stored} 个文本块"])


def _act(label: str, action: Any) -> None:
    try:
        action()
    except ApiError as exc:
        st.error(exc.message)
        return
    notify("success", label)


def render_job(client: ApiClient, job: Job) -> None:
    kind = KIND_LABELS.get(job.kind, job.kind)
    status = STATUS_LABELS.get(job.status, job.status)
    st.markdown(f"**{kind}任务 {job.id[:8]}** · {status}")
    text = f"剩余时间 {eta_label(job.eta_seconds)}" if job.active else status
    st.progress(min(max(job.progress, 0.0), 1.0), text=text)
    st.caption(counts_label(job))
    if job.error:
        st.warning(job.error)
    st.dataframe(job_file_rows(job), hide_index=True, key=f"job_files_{job.id}")
    if job.active:
        if st.button("取消任务", key=f"job_cancel_{job.id}", disabled=job.cancel_requested):
            _act(f"已请求取消任务 {job.id[:8]}", lambda: client.cancel_job(job.id))
        return
    retriable = job.counts.get("failed", 0) + job.counts.get("cancelled", 0)
    if retriable and st.button("重试失败的文件", key=f"job_retry_{job.id}"):
        _act(f"任务 {job.id[:8]} 已重新排队", lambda: client.retry_job(job.id))
        st.rerun()


def render_jobs(client: ApiClient, kb_name: str) -> None:
    try:
        jobs = client.list_jobs(kb_name, RECENT_JOBS)
    except ApiError as exc:
        st.error(exc.message)
        return
    if not jobs:
        return
    st.subheader("后台任务")
    active = any(job.active for job in jobs)

    @st.fragment(run_every=REFRESH_S if active else None)
    def live_jobs() -> None:
        try:
            current = client.list_jobs(kb_name, RECENT_JOBS)
        except ApiError as exc:
            st.error(exc.message)
            return
        for job in current:
            with st.container(border=True):
                render_job(client, job)
        if active and not any(job.active for job in current):
            # The last job ended: refresh the whole page (file table, counts), stop polling.
            st.rerun()

    live_jobs()
