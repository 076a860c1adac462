from __future__ import annotations

import codecs
import random

import pytest

from kb_server.documents.encoding import decode_text
from kb_server.errors import DocumentLoadError

SHORT_CHINESE = [
    "你好",
    "中文",
    "今天天气很好。",
    "他说：“明天见。”",
    "价格：100元",
    "我们明天开会，请准时参加。",
    "报销流程：填写单据，主管签字，财务审核。",
]
PARAGRAPH = (
    "第三条：员工每年享有带薪年假十天（含法定节假日除外）。"
    "如有疑问，请联系人事部张经理，电话：010-12345678。\n"
    "报销须在发生后三十日内提交，逾期不予受理。"
)


def test_utf8_decodes_as_is() -> None:
    assert decode_text(PARAGRAPH.encode("utf-8"), "a.txt") == PARAGRAPH


def test_utf8_bom_is_removed() -> None:
    assert decode_text(b"\xef\xbb\xbf" + PARAGRAPH.encode("utf-8"), "a.txt") == PARAGRAPH


@pytest.mark.parametrize(
    ("bom", "codec"),
    [
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
        (codecs.BOM_UTF32_LE, "utf-32-le"),
    ],
)
def test_utf16_and_utf32_are_read_by_their_bom(bom: bytes, codec: str) -> None:
    assert decode_text(bom + PARAGRAPH.encode(codec), "a.txt") == PARAGRAPH


@pytest.mark.parametrize("text", SHORT_CHINESE)
def test_short_gbk_text_is_read_as_chinese(text: str) -> None:
    assert decode_text(text.encode("gbk"), "short.txt") == text


def test_gbk_paragraph() -> None:
    assert decode_text(PARAGRAPH.encode("gbk"), "a.txt") == PARAGRAPH


@pytest.mark.parametrize(
    "text",
    ["刘䶮是南汉的开国皇帝。", "生僻字𠀀也要保留。", PARAGRAPH + "生僻字：𠀀、䶮。"],
)
def test_gb18030_keeps_characters_outside_gbk(text: str) -> None:
    data = text.encode("gb18030")
    with pytest.raises(UnicodeDecodeError):
        data.decode("gbk")
    assert decode_text(data, "rare.txt") == text


def test_big5_paragraph_is_detected() -> None:
    text = (
        "這是一個知識庫問答系統的測試文件，請勿刪除。"
        "員工每年享有帶薪年假十天，如有疑問，請聯繫人事部。"
    )
    assert decode_text(text.encode("big5"), "big5.txt") == text


def test_korean_text_is_not_read_as_chinese() -> None:
    text = "오늘은 날씨가 정말 좋습니다. 우리는 공원에 갔습니다."
    assert decode_text(text.encode("euc_kr"), "ko.txt") == text


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_newlines_are_normalized(newline: str) -> None:
    text = f"第一行{newline}第二行{newline}"
    assert decode_text(text.encode("gbk"), "a.txt") == "第一行\n第二行\n"


def test_empty_bytes_give_empty_text() -> None:
    assert decode_text(b"", "empty.txt") == ""


def test_random_bytes_are_not_text() -> None:
    data = random.Random(7).randbytes(4096)
    with pytest.raises(DocumentLoadError) as caught:
        decode_text(data, "noise.txt")
    assert caught.value.file_name == "noise.txt"


def test_random_bytes_without_nul_are_not_text() -> None:
    data = bytes(byte for byte in random.Random(8).randbytes(4096) if byte)
    with pytest.raises(DocumentLoadError):
        decode_text(data, "noise.txt")


def test_nul_heavy_utf8_is_not_text() -> None:
    data = b"header\x00\x00\x00\x01\x02payload\x00\x00" * 50
    with pytest.raises(DocumentLoadError):
        decode_text(data, "blob.txt")
