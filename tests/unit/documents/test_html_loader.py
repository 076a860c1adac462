from __future__ import annotations

from pathlib import Path

import pytest

from kb_server.documents.base import LoaderContext
from kb_server.documents.html import HtmlLoader, html_to_text
from kb_server.documents.outline import Heading
from kb_server.errors import DocumentLoadError
from kb_server.settings import Settings

PAGE = """<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>水果 价格表</title>
  <style>p { color: red; }</style>
  <script>var secret = "脚本里的秘密";</script>
</head>
<body>
  <h1>今日价格</h1>
  <p>这是<b>重要</b>的说明，
     请仔细阅读。</p>
  <div>第一行<br>第二行</div>
  <table>
    <thead><tr><th>产品</th><th>价格</th></tr></thead>
    <tbody>
      <tr><td>苹果</td><td>3元</td></tr>
      <tr><td>香蕉</td><td>5元</td></tr>
    </tbody>
  </table>
  <ul><li>条目一</li><li>条目二</li></ul>
  <noscript>请启用脚本</noscript>
  <!-- 注释不是正文 -->
  <script>document.write("另一个秘密");</script>
</body>
</html>
"""


@pytest.fixture
def loader(settings: Settings) -> HtmlLoader:
    return HtmlLoader(LoaderContext(documents=settings.documents))


def lines_of(text: str) -> list[str]:
    return text.splitlines()


def test_html_blocks_become_lines_and_table_rows_keep_headers(
    tmp_path: Path, loader: HtmlLoader
) -> None:
    path = tmp_path / "page.html"
    path.write_text(PAGE, encoding="utf-8")

    documents = loader.load(path)

    assert len(documents) == 1
    assert lines_of(documents[0].page_content) == [
        "今日价格",
        "这是重要的说明，请仔细阅读。",
        "第一行",
        "第二行",
        "产品: 苹果; 价格: 3元",
        "产品: 香蕉; 价格: 5元",
        "条目一",
        "条目二",
    ]
    assert documents[0].metadata == {"title": "水果 价格表", "outline": [Heading(0, 1, "今日价格")]}


def test_html_script_style_and_comments_are_dropped(tmp_path: Path, loader: HtmlLoader) -> None:
    path = tmp_path / "page.htm"
    path.write_text(PAGE, encoding="utf-8")

    text = loader.load(path)[0].page_content

    for hidden in ("秘密", "color", "请启用脚本", "注释"):
        assert hidden not in text


def test_gbk_page_is_decoded_from_its_meta_charset(tmp_path: Path, loader: HtmlLoader) -> None:
    page = '<html><head><meta charset="gbk"><title>编码</title></head>'
    page += "<body><p>中文网页内容</p></body></html>"
    path = tmp_path / "gbk.html"
    path.write_bytes(page.encode("gbk"))

    documents = loader.load(path)

    assert documents[0].page_content == "中文网页内容"
    assert documents[0].metadata["title"] == "编码"


def test_page_declared_gb2312_may_use_characters_beyond_it(
    tmp_path: Path, loader: HtmlLoader
) -> None:
    # 镕 is in GBK but not in GB2312; real pages labelled gb2312 contain such characters.
    page = '<html><head><meta http-equiv="Content-Type" content="text/html; charset=gb2312">'
    page += "</head><body><p>朱镕基</p></body></html>"
    path = tmp_path / "gb2312.html"
    path.write_bytes(page.encode("gbk"))

    assert loader.load(path)[0].page_content == "朱镕基"


def test_header_cells_in_the_first_row_name_the_columns() -> None:
    page = b"""<table>
      <tr><th>\xe5\x9f\x8e\xe5\xb8\x82</th><th colspan="2">\xe6\x95\xb0\xe6\x8d\xae</th></tr>
      <tr><td>\xe5\x8c\x97\xe4\xba\xac</td><td>1</td><td>2</td></tr>
    </table>"""

    assert html_to_text(page).text == "城市: 北京; 数据: 1; 数据: 2"


def test_nested_table_rows_are_not_repeated() -> None:
    page = """<meta charset="utf-8"><table>
      <tr><th>名称</th><th>详情</th></tr>
      <tr><td>甲</td><td><table><tr><th>键</th></tr><tr><td>值</td></tr></table></td></tr>
    </table>""".encode()

    assert html_to_text(page).text == "名称: 甲; 详情: 键: 值"


def test_page_without_text_gives_no_documents(tmp_path: Path, loader: HtmlLoader) -> None:
    path = tmp_path / "empty.html"
    path.write_text("<html><head><title>空</title></head><body> </body></html>", "utf-8")

    assert loader.load(path) == []


def test_pathologically_nested_page_raises_document_load_error(
    tmp_path: Path, loader: HtmlLoader
) -> None:
    path = tmp_path / "deep.html"
    path.write_bytes(b"<table><tr><td>" * 2000 + b"x")

    with pytest.raises(DocumentLoadError):
        loader.load(path)
