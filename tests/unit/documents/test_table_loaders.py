from __future__ import annotations

import csv
import datetime as dt
import io
import random
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import openpyxl
import pytest
from langchain_core.documents import Document

from kb_server.documents.base import LoaderContext
from kb_server.documents.tables import CsvLoader, XlsxLoader
from kb_server.errors import DocumentLoadError
from kb_server.settings import Settings


@pytest.fixture
def context(settings: Settings) -> LoaderContext:
    return LoaderContext(documents=settings.documents)


def _write_csv(
    path: Path, rows: Sequence[Sequence[str]], encoding: str = "utf-8", delimiter: str = ","
) -> Path:
    buffer = io.StringIO(newline="")
    csv.writer(buffer, delimiter=delimiter).writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def _contents_and_rows(documents: Sequence[Document]) -> list[tuple[str, object]]:
    return [(doc.page_content, doc.metadata.get("row")) for doc in documents]


def test_gbk_csv_rows_keep_chinese_headers_and_row_numbers(
    context: LoaderContext, tmp_path: Path
) -> None:
    rows = [["姓名", "部门", "电话"], ["张三", "研发部", "010-1234"], ["李四", "", "021-5678"]]
    path = _write_csv(tmp_path / "通讯录.csv", rows, encoding="gbk")

    documents = CsvLoader(context).load(path)

    assert _contents_and_rows(documents) == [
        ("姓名: 张三; 部门: 研发部; 电话: 010-1234", 2),
        ("姓名: 李四; 电话: 021-5678", 3),
    ]


@pytest.mark.parametrize("delimiter", ["\t", ";"], ids=["tab", "semicolon"])
def test_csv_delimiter_is_sniffed(context: LoaderContext, tmp_path: Path, delimiter: str) -> None:
    rows = [["产品", "价格", "备注"], ["笔记本", "4999", "含税, 包邮"], ["鼠标", "99", "无"]]
    path = _write_csv(tmp_path / "products.csv", rows, delimiter=delimiter)

    documents = CsvLoader(context).load(path)

    assert [doc.page_content for doc in documents] == [
        "产品: 笔记本; 价格: 4999; 备注: 含税, 包邮",
        "产品: 鼠标; 价格: 99; 备注: 无",
    ]


def test_csv_header_is_first_non_empty_row_and_empty_rows_are_skipped(
    context: LoaderContext, tmp_path: Path
) -> None:
    text = ',,\n问题,答案\n如何请假,提前三天申请\n,\n报销期限,"三十日内，\n逾期不受理"\n'
    path = tmp_path / "faq.csv"
    path.write_text(text, encoding="utf-8")

    documents = CsvLoader(context).load(path)

    assert _contents_and_rows(documents) == [
        ("问题: 如何请假; 答案: 提前三天申请", 3),
        ("问题: 报销期限; 答案: 三十日内，\n逾期不受理", 5),
    ]


def test_csv_with_only_a_header_gives_no_documents(context: LoaderContext, tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "header.csv", [["a", "b"]])

    assert CsvLoader(context).load(path) == []


def _write_workbook(path: Path) -> Path:
    workbook = openpyxl.Workbook()
    staff = workbook.active
    assert staff is not None
    staff.title = "员工"
    staff.append(["姓名", "入职日期", "工号", "绩效系数"])
    staff.append(["张三", dt.datetime(2024, 1, 5), 3.0, 1.25])
    staff.append([])
    staff.append(["李四", dt.datetime(2023, 7, 1, 9, 30), 12, None])
    departments = workbook.create_sheet("部门")
    departments.append([None])
    departments.append(["部门", "人数"])
    departments.append(["研发", 10])
    workbook.save(path)
    return path


def test_xlsx_gives_one_document_per_row_of_every_sheet(
    context: LoaderContext, tmp_path: Path
) -> None:
    documents = XlsxLoader(context).load(_write_workbook(tmp_path / "hr.xlsx"))

    assert [(doc.page_content, doc.metadata) for doc in documents] == [
        ("姓名: 张三; 入职日期: 2024-01-05; 工号: 3; 绩效系数: 1.25", {"sheet": "员工", "row": 2}),
        ("姓名: 李四; 入职日期: 2023-07-01 09:30:00; 工号: 12", {"sheet": "员工", "row": 4}),
        ("部门: 研发; 人数: 10", {"sheet": "部门", "row": 3}),
    ]


def _zip_without_workbook(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "不是工作簿")


def _truncated_worksheet(path: Path) -> None:
    source = _write_workbook(path.with_name("source.xlsx"))
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(path, "w") as damaged:
        for item in original.infolist():
            data = original.read(item.filename)
            if item.filename.startswith("xl/worksheets/"):
                data = data[: len(data) // 2]
            damaged.writestr(item, data)


@pytest.mark.parametrize(
    "make",
    [
        lambda path: path.write_bytes(random.Random(5).randbytes(4096)),
        _zip_without_workbook,
        _truncated_worksheet,
    ],
    ids=["random-bytes", "zip-without-workbook", "truncated-worksheet"],
)
def test_corrupt_xlsx_is_unreadable(
    context: LoaderContext, tmp_path: Path, make: Callable[[Path], object]
) -> None:
    path = tmp_path / "broken.xlsx"
    make(path)

    with pytest.raises(DocumentLoadError) as caught:
        XlsxLoader(context).load(path)
    assert caught.value.file_name == "broken.xlsx"


def test_ole_container_is_reported_as_encrypted_or_not_xlsx(
    context: LoaderContext, tmp_path: Path
) -> None:
    # Office saves a password-protected workbook as an OLE2 compound file, like a legacy .xls.
    path = tmp_path / "protected.xlsx"
    path.write_bytes(bytes.fromhex("d0cf11e0a1b11ae1") + bytes(504))

    with pytest.raises(DocumentLoadError) as caught:
        XlsxLoader(context).load(path)
    assert "encrypted" in caught.value.reason
