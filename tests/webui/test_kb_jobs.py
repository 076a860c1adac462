"""The knowledge-base page's background jobs, driven by AppTest against the real API."""

from __future__ import annotations

import time

from tests.webui.test_app import KB_PAGE, app_test
from webui.api_client import ApiClient
from webui.api_models import Job


def wait_for_end(client: ApiClient, job_id: str, timeout_s: float = 120) -> Job:
    deadline = time.monotonic() + timeout_s
    while (job := client.get_job(job_id)).active:
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    return job


def test_a_background_upload_shows_its_job_with_stages_and_a_retry(
    api_url: str, api_client: ApiClient
) -> None:
    api_client.create_knowledge_base("docs")
    at = app_test(api_url).run()
    at.switch_page(KB_PAGE).run()
    at.file_uploader(key="kb_files").set_value(
        [
            ("a.txt", b"Refunds are paid within fourteen days.", "text/plain"),
            ("bad.docx", b"not a word file", "application/octet-stream"),
        ]
    ).run()
    at.checkbox(key="kb_background").check().run()
    at.button(key="kb_upload").click().run()
    assert not at.exception

    jobs = api_client.list_jobs("docs")
    assert [job.kind for job in jobs] == ["upload"]
    job = wait_for_end(api_client, jobs[0].id)
    assert job.counts["stored"] == 1
    assert job.counts["failed"] == 1
    at.run()
    assert not at.exception
    assert "后台任务" in [header.value for header in at.subheader]
    tables = "\n".join(str(table.value) for table in at.dataframe)
    assert "已入库" in tables
    assert "失败" in tables
    assert any("共 2 个文件" in str(caption.value) for caption in at.caption)

    at.button(key=f"job_retry_{job.id}").click().run()

    assert not at.exception
    assert any("已重新排队" in str(item.value) for item in at.success)
    again = wait_for_end(api_client, job.id)
    assert [file.stage for file in again.files] == ["stored", "failed"]
    assert again.status == "succeeded"
