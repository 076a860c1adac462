"""Decode the bytes of a text file: detect the encoding, never guess a default.

Order of evidence:
1. a byte-order mark (UTF-8, UTF-16 or UTF-32);
2. strict UTF-8 (ASCII included);
3. charset-normalizer's detection, with GB2312/GBK read as GB18030 (a superset of both, so
   no character is lost) and a Chinese-first correction described in ``_prefer_gb18030``.

Bytes that hold NULs without a BOM, or decode to many control characters, are binary files.
UTF-16/32 without a BOM is not supported: Windows tools write the BOM, and the detector's
BOM-less UTF-16 verdicts on short CJK byte strings are almost always wrong.
"""

from __future__ import annotations

import codecs
import logging
import re
import unicodedata

from charset_normalizer import CharsetMatch, from_bytes

from kb_server.errors import DocumentLoadError

logger = logging.getLogger(__name__)

# UTF-32 first: the UTF-32-LE BOM starts with the UTF-16-LE BOM.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_GB_FAMILY = frozenset({"gb2312", "gbk", "gb18030"})
_KOREAN = frozenset({"cp949", "euc_kr", "johab"})
_UNMARKED_UNICODE = ("utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le")
# C0 and C1 control characters except tab, newline, vertical tab, form feed, carriage return.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
# More control characters than this share of the text means it is not a text file; a few are
# tolerated because old DOS/Windows text files end with ^Z or hold stray form feeds.
_MAX_CONTROL_SHARE = 0.01
# GB2312's 6,763 hanzi cover nearly all of modern simplified Chinese, so a real GB text decodes
# to mostly GB2312 characters while Big5 or Shift_JIS bytes read as GB18030 land in rare or
# private-use code points. (EUC-KR does not, hence the Hangul check in _prefer_gb18030.)
_MIN_COMMON_HAN_SHARE = 0.8
_MIN_HAN_SHARE = 0.5
_MIN_HANGUL_SHARE = 0.9
# Sliding windows over a GBK paragraph: the detector misread samples of up to 36 bytes and
# none longer; 64 bytes (about 30 hanzi) leaves a margin.
_SHORT_SAMPLE_BYTES = 64
# The plausibility checks look at the start of the text; the strict decode covers all of it.
_PLAUSIBILITY_SAMPLE_CHARS = 4096
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL_SYLLABLE = re.compile(r"[\uac00-\ud7a3]")


def decode_text(data: bytes, file_name: str) -> str:
    """Return the text in ``data`` with newlines normalized to ``\\n``.

    Raises DocumentLoadError when the bytes are binary or in no encoding that can be detected.
    """
    text = _decode(data, file_name).removeprefix("\ufeff")  # GB18030 has a BOM too
    if "\x00" in text or _control_share(text) > _MAX_CONTROL_SHARE:
        raise DocumentLoadError(file_name, "not a text file (binary content)")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decode(data: bytes, file_name: str) -> str:
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return _strict_decode(data, codec, file_name)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if b"\x00" in data:
        raise DocumentLoadError(file_name, "not a text file (binary content)")
    encoding = _detect(data)
    if encoding is None:
        raise DocumentLoadError(
            file_name, "not a text file, or in an encoding that cannot be detected"
        )
    logger.debug("%s: detected encoding %s", file_name, encoding)
    return _strict_decode(data, encoding, file_name)


def _strict_decode(data: bytes, encoding: str, file_name: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        raise DocumentLoadError(
            file_name, f"invalid {encoding} text at byte {error.start}"
        ) from error


def _detect(data: bytes) -> str | None:
    verdict = from_bytes(data, cp_exclusion=list(_UNMARKED_UNICODE)).best()
    if verdict is not None and verdict.encoding in _GB_FAMILY:
        return "gb18030"
    if _prefer_gb18030(data, verdict):
        return "gb18030"
    return None if verdict is None else verdict.encoding


def _prefer_gb18030(data: bytes, verdict: CharsetMatch | None) -> bool:
    """Whether to read the bytes as GB18030 although the detector chose another encoding.

    The detector scores "mess" per character, and on a sentence or two of GBK that score is
    dominated by full-width punctuation: '他说：“明天见。”' scores 0.44 as GB18030 and 0.0 as
    Thai CP874, and Big5, CP949 or CP874 win ties by list order. So a strict GB18030 reading
    that looks like Chinese text (``_reads_as_chinese``) is preferred when the sample is too
    short for the detector to be trusted, or when the detector rates GB18030 no worse than its
    own choice. A Korean verdict that reads as Hangul is kept: EUC-KR bytes read as GB18030
    give plausible-looking common hanzi, while GBK read as CP949 gives Hangul mixed with hanja.
    """
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        return False
    if not _reads_as_chinese(text):
        return False
    if verdict is None:
        return True
    if verdict.encoding in _KOREAN and _reads_as_korean(str(verdict)):
        return False
    if len(data) < _SHORT_SAMPLE_BYTES:
        return True
    gb = from_bytes(data, cp_isolation=["gb18030"]).best()
    return gb is not None and gb.chaos <= verdict.chaos and gb.coherence >= verdict.coherence


def _reads_as_chinese(text: str) -> bool:
    sample = text[:_PLAUSIBILITY_SAMPLE_CHARS]
    non_ascii = [char for char in sample if ord(char) > 0x7F]
    han = _HAN.findall(sample)
    # Kana occur in GB2312 but hardly in Chinese prose; EUC-JP bytes read as GB18030 keep them.
    if not han or _KANA.search(sample) or any(_is_private_use(char) for char in non_ascii):
        return False
    mostly_han = len(han) >= _MIN_HAN_SHARE * len(non_ascii)
    common_han = sum(1 for char in han if _in_gb2312(char))
    return mostly_han and common_han >= _MIN_COMMON_HAN_SHARE * len(han)


def _reads_as_korean(text: str) -> bool:
    sample = text[:_PLAUSIBILITY_SAMPLE_CHARS]
    non_ascii = sum(1 for char in sample if ord(char) > 0x7F)
    hangul = len(_HANGUL_SYLLABLE.findall(sample))
    return non_ascii > 0 and hangul >= _MIN_HANGUL_SHARE * non_ascii


def _is_private_use(char: str) -> bool:
    return unicodedata.category(char) == "Co"


def _in_gb2312(char: str) -> bool:
    try:
        char.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


def _control_share(text: str) -> float:
    if not text:
        return 0.0
    return len(_CONTROL_CHARS.findall(text)) / len(text)
