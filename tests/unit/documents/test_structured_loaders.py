from __future__ import annotations

import json
from pathlib import Path

import pytest

from kb_server.documents.base import LoaderContext
from kb_server.documents.structured import JsonlLoader, JsonLoader
from kb_server.errors import DocumentLoadError
from kb_server.settings import Settings


@pytest.fixture
def context(settings: Settings) -> LoaderContext:
    return LoaderContext(documents=settings.documents)


def _write_json(path: Path, value: object) -> Path:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def test_json_list_gives_one_document_per_item(context: LoaderContext, tmp_path: Path) -> None:
    faq = [
        {"问题": "如何请假", "答案": "提前三天申请", "标签": ["人事", "假期"]},
        {"问题": "报销期限", "答案": "三十日内", "附件": None},
    ]
    path = _write_json(tmp_path / "faq.json", faq)

    documents = JsonLoader(context).load(path)

    assert [(doc.page_content, doc.metadata) for doc in documents] == [
        ("问题: 如何请假\n答案: 提前三天申请\n标签: 人事, 假期", {"row": 1}),
        ("问题: 报销期限\n答案: 三十日内", {"row": 2}),
    ]


def test_nested_json_object_is_flattened_to_dotted_paths(
    context: LoaderContext, tmp_path: Path
) -> None:
    company = {
        "名称": "示例科技",
        "地址": {"城市": "北京", "街道": {"名称": "中关村大街", "门牌": 27}},
        "上市": False,
        "部门": [{"名称": "研发", "人数": 40}, {"名称": "销售"}],
    }
    path = _write_json(tmp_path / "company.json", company)

    documents = JsonLoader(context).load(path)

    assert len(documents) == 1
    assert documents[0].metadata == {}
    assert documents[0].page_content.splitlines() == [
        "名称: 示例科技",
        "地址.城市: 北京",
        "地址.街道.名称: 中关村大街",
        "地址.街道.门牌: 27",
        "上市: false",
        "部门[0].名称: 研发",
        "部门[0].人数: 40",
        "部门[1].名称: 销售",
    ]


def test_single_key_wrapper_around_records_is_split(context: LoaderContext, tmp_path: Path) -> None:
    path = _write_json(tmp_path / "export.json", {"data": [{"id": 1}, {"id": 2}, {"id": 3}]})

    documents = JsonLoader(context).load(path)

    assert [(doc.page_content, doc.metadata["row"]) for doc in documents] == [
        ("id: 1", 1),
        ("id: 2", 2),
        ("id: 3", 3),
    ]


def test_invalid_json_reports_the_parser_position(context: LoaderContext, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "名称": "示例",\n  "城市" "北京"\n}\n', encoding="utf-8")

    with pytest.raises(DocumentLoadError) as caught:
        JsonLoader(context).load(path)
    assert caught.value.file_name == "broken.json"
    assert "line 3 column 8" in caught.value.reason


def test_jsonl_rows_are_line_numbers(context: LoaderContext, tmp_path: Path) -> None:
    lines = [
        json.dumps({"问题": "如何请假", "答案": "提前三天"}, ensure_ascii=False),
        "",
        json.dumps({"问题": "报销期限", "元数据": {"作者": "人事部"}}, ensure_ascii=False),
    ]
    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    documents = JsonlLoader(context).load(path)

    assert [(doc.page_content, doc.metadata) for doc in documents] == [
        ("问题: 如何请假\n答案: 提前三天", {"row": 1}),
        ("问题: 报销期限\n元数据.作者: 人事部", {"row": 3}),
    ]


def test_jsonl_bad_line_names_its_line_number(context: LoaderContext, tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": \n{"a": 4}\n', encoding="utf-8")

    with pytest.raises(DocumentLoadError) as caught:
        JsonlLoader(context).load(path)
    assert "line 3" in caught.value.reason


def test_empty_json_files_give_no_documents(context: LoaderContext, tmp_path: Path) -> None:
    (tmp_path / "empty.json").write_bytes(b"")
    (tmp_path / "empty.jsonl").write_bytes(b"\n\n")
    _write_json(tmp_path / "list.json", [])

    assert JsonLoader(context).load(tmp_path / "empty.json") == []
    assert JsonlLoader(context).load(tmp_path / "empty.jsonl") == []
    assert JsonLoader(context).load(tmp_path / "list.json") == []
