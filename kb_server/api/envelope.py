"""Langchain-Chatchat 0.2.x's response envelope ``{"code", "msg", "data"}``, done right.

Routes tagged ``CHATCHAT_TAG`` answer with it; unlike Chatchat, a failure is sent with its real
HTTP status, and the envelope's ``code`` equals that status (plus FastAPI's ``detail``).
"""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel

CHATCHAT_TAG = "chatchat"

T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    code: int = 200
    msg: str = "success"
    data: T | None = None


def ok(data: T, msg: str = "success") -> Envelope[T]:
    return Envelope[T](code=200, msg=msg, data=data)
