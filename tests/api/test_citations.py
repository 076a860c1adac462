"""Pinpoint citations through the API: page, offsets and heading path of every source, the
passage around a chunk (chunk_context), and a PDF opened at the cited page."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docx
import pytest
from fastapi.testclient import TestClient

from kb_server.chunking import DocumentPipeline
from kb_server.settings import Settings
from tests.api.test_kb_upload import search, uploaded
from tests.unit.documents.rendering import write_pdf

pytestmark = pytest.mark.both_backends

KB = "cite"
CONTEXT = "/knowledge_base/chunk_context"
# Small chunks with overlap, so every file has several chunks that share characters.
SPLITTER = {"chunk_size": 60, "chunk_overlap": 20, "zh_title_enhance": False}

TRAVEL = (
    "公司差旅管理规定适用于全体员工。\n"
    "出差前需要在系统中提交申请，并由部门经理审批。机票应当预订经济舱，特殊情况需要说明理由。\n"
    "住宿标准按照城市等级确定，一线城市每晚不超过六百元。\n"
    "差旅报销必须在出差结束后十五个工作日内提交。逾期提交的报销单需要分管副总审批。\n"
    "报销时应附上发票原件和行程单，电子发票需要打印并签字。"
)
GUIDE = """# 安装指南

本指南说明如何在没有网络的机器上部署知识库服务。

## 离线安装

先在有网络的机器上下载全部依赖包。离线安装时请先把模型文件复制到 models 目录。
然后运行初始化脚本，等待索引建立完成。

## 升级

升级前请备份数据库文件和向量索引。
"""
PDF_PAGES = [
    ["打印机使用说明", "第一页介绍打印机的位置和开机方法。"],
    [
        "打印机常见问题",
        "卡纸时请先关闭电源再打开前盖。",
        "打印机的默认管理密码是八个零。",
        "更换墨盒后需要运行一次校准程序。",
    ],
]


@dataclass(frozen=True)
class Case:
    file_name: str
    sentence: str
    page: int | None
    heading_path: list[str]


CASES = [
    Case("travel.txt", "差旅报销必须在出差结束后十五个工作日内提交。", None, []),
    Case(
        "guide.md",
        "离线安装时请先把模型文件复制到 models 目录。",
        None,
        ["安装指南", "离线安装"],
    ),
    Case("printer.pdf", "打印机的默认管理密码是八个零。", 2, []),
    Case(
        "handbook.docx",
        "发票原件需要在每月二十日之前交给财务部。",
        None,
        ["员工手册", "第二章 报销流程", "2.1 提交材料"],
    ),
]


def handbook_docx() -> bytes:
    word = docx.Document()
    word.add_heading("员工手册", 0)
    word.add_heading("第一章 考勤", 1)
    word.add_paragraph("员工每天上午九点之前打卡。迟到三次以上会影响当月绩效。")
    word.add_heading("第二章 报销流程", 1)
    word.add_heading("2.1 提交材料", 2)
    word.add_paragraph("报销需要填写报销单并附上证明材料。发票原件需要在每月二十日之前交给财务部。")
    word.add_paragraph("财务部审核通过后，款项在五个工作日内打到工资卡。")
    buffer = io.BytesIO()
    word.save(buffer)
    return buffer.getvalue()


@pytest.fixture
def kb(client: TestClient, tmp_path: Path, cjk_font_path: Path) -> str:
    response = client.post(
        "/knowledge_base/create_knowledge_base", json={"knowledge_base_name": KB}
    )
    assert response.status_code == 200
    pdf = write_pdf(tmp_path / "printer.pdf", PDF_PAGES, cjk_font_path).read_bytes()
    files = [
        ("travel.txt", TRAVEL.encode()),
        ("guide.md", GUIDE.encode()),
        ("printer.pdf", pdf),
        ("handbook.docx", handbook_docx()),
    ]
    results = uploaded(client, KB, files, **SPLITTER)
    assert {result["status"] for result in results.values()} == {"indexed"}
    return KB


def loaded_texts(settings: Settings, file_name: str) -> list[str]:
    """The file's documents' texts as the loader gives them: what offsets count in."""
    path = settings.kb_root / KB / "content" / file_name
    return [document.page_content for document in DocumentPipeline(settings).load(path)]


def cited_hit(client: TestClient, case: Case) -> dict[str, Any]:
    hits = search(client, KB, case.sentence, top_k=50, file_name=case.file_name)
    return next(hit for hit in hits if case.sentence in hit["page_content"])


def kb_chat(client: TestClient, query: str) -> dict[str, Any]:
    body = {"query": query, "knowledge_base_name": KB, "model_name": "extractive", "top_k": 10}
    response = client.post("/knowledge_base/chat", json={**body, "search_mode": "bm25"})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def context(client: TestClient, file_name: str, chunk_id: int, **params: Any) -> Any:
    query = {"knowledge_base_name": KB, "file_name": file_name, "chunk_id": chunk_id, **params}
    return client.get(CONTEXT, params=query)


@pytest.mark.parametrize("case", CASES, ids=[case.file_name for case in CASES])
def test_search_hits_point_at_the_cited_sentence_in_the_loaded_text(
    client: TestClient, kb: str, api_settings: Settings, case: Case
) -> None:
    hit = cited_hit(client, case)
    metadata = hit["metadata"]

    assert metadata.get("page") == case.page
    assert metadata.get("heading_path", []) == case.heading_path
    text = loaded_texts(api_settings, case.file_name)[metadata["document_index"]]
    passage = text[metadata["start_index"] : metadata["end_index"]]
    assert passage == hit["page_content"]
    assert case.sentence in passage


@pytest.mark.parametrize("case", CASES, ids=[case.file_name for case in CASES])
def test_chat_sources_carry_page_offsets_and_heading_path(
    client: TestClient, kb: str, case: Case
) -> None:
    hit = cited_hit(client, case)

    docs = kb_chat(client, case.sentence)["docs"]

    source = next(doc for doc in docs if doc["chunk_id"] == hit["id"])
    assert source["page"] == case.page
    assert source["start_index"] == hit["metadata"]["start_index"]
    assert source["end_index"] == hit["metadata"]["end_index"]
    assert source["heading_path"] == case.heading_path
    is_pdf = case.file_name.endswith(".pdf")
    assert (source["page_url"] is not None) == is_pdf


def test_openai_sources_carry_the_citation(client: TestClient, kb: str) -> None:
    case = CASES[1]
    hit = cited_hit(client, case)
    body = {
        "model": f"kb/{KB}",
        "messages": [{"role": "user", "content": case.sentence}],
        "llm_model": "extractive",
        "search_mode": "bm25",
        "top_k": 10,
    }

    response = client.post("/v1/chat/completions", json=body)

    assert response.status_code == 200, response.text
    source = next(doc for doc in response.json()["docs"] if doc["chunk_id"] == hit["id"])
    assert (source["start_index"], source["end_index"]) == (
        hit["metadata"]["start_index"],
        hit["metadata"]["end_index"],
    )
    assert source["heading_path"] == ["安装指南", "离线安装"]


def test_page_url_opens_the_pdf_inline_at_the_cited_page(client: TestClient, kb: str) -> None:
    case = CASES[2]
    hit = cited_hit(client, case)
    source = next(
        doc for doc in kb_chat(client, case.sentence)["docs"] if doc["chunk_id"] == hit["id"]
    )

    path, fragment = source["page_url"].split("#", 1)
    response = client.get(path)

    assert fragment == "page=2"
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"].startswith("inline")
    assert response.content.startswith(b"%PDF-")


@pytest.mark.parametrize("case", CASES, ids=[case.file_name for case in CASES])
def test_chunk_context_highlights_the_chunk_within_its_page(
    client: TestClient, kb: str, api_settings: Settings, case: Case
) -> None:
    hit = cited_hit(client, case)

    response = context(client, case.file_name, hit["id"], window=40)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["text"][body["highlight_start"] : body["highlight_end"]] == hit["page_content"]
    assert body["page"] == case.page
    assert body["heading_path"] == case.heading_path
    assert len(body["text"]) <= len(hit["page_content"]) + 2 * 40 + 2
    # Stretches between chunks show as line breaks; every line is the loaded text's.
    text = loaded_texts(api_settings, case.file_name)[hit["metadata"]["document_index"]]
    assert all(line in text for line in body["text"].split("\n"))


def test_chunk_context_stitches_overlapping_chunks_back_into_the_text(
    client: TestClient, kb: str
) -> None:
    hit = cited_hit(client, CASES[0])

    body = context(client, "travel.txt", hit["id"], window=5000).json()

    # Lines end at sentence ends, so no chunk boundary falls in whitespace that is not "\n":
    # the whole file comes back character for character.
    assert body["text"] == TRAVEL
    assert body["start_index"] == 0
    assert TRAVEL[body["highlight_start"] : body["highlight_end"]] == hit["page_content"]
    assert (body["truncated_before"], body["truncated_after"]) == (False, False)


def test_chunk_context_window_bounds_the_passage(client: TestClient, kb: str) -> None:
    hit = cited_hit(client, CASES[0])

    body = context(client, "travel.txt", hit["id"], window=0).json()

    assert body["text"] == hit["page_content"]
    assert (body["highlight_start"], body["highlight_end"]) == (0, len(hit["page_content"]))
    assert (body["truncated_before"], body["truncated_after"]) == (True, True)


def test_an_edited_chunk_is_shown_alone(client: TestClient, kb: str) -> None:
    hit = cited_hit(client, CASES[0])
    edited = "差旅报销的期限改为二十个工作日。"
    response = client.post(
        "/knowledge_base/update_chunk",
        json={"knowledge_base_name": KB, "chunk_id": hit["id"], "text": edited},
    )
    assert response.status_code == 200

    body = context(client, "travel.txt", hit["id"]).json()

    assert (body["text"], body["highlight_start"], body["highlight_end"]) == (
        edited,
        0,
        len(edited),
    )
    assert body["start_index"] is None


def test_chunk_context_of_an_unknown_chunk_or_kb_is_404(client: TestClient, kb: str) -> None:
    other_file_chunk = cited_hit(client, CASES[1])["id"]

    wrong_file = context(client, "travel.txt", other_file_chunk)
    missing_kb = client.get(
        CONTEXT, params={"knowledge_base_name": "nope", "file_name": "travel.txt", "chunk_id": 1}
    )

    assert wrong_file.status_code == 404
    assert wrong_file.json()["detail"]["code"] == "chunk_not_found"
    assert missing_kb.status_code == 404
    assert missing_kb.json()["detail"]["code"] == "kb_not_found"
