"""HTTP plumbing of the API client: errors as ``ApiError`` and Server-Sent Events as dicts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx


class ApiError(Exception):
    """A failed API call: the HTTP status (0 when no answer came), a code and a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


def transport_error(exc: httpx.TransportError, base_url: str) -> ApiError:
    if isinstance(exc, httpx.ConnectError):
        return ApiError(0, "api_unreachable", f"API 无法连接: {base_url}")
    if isinstance(exc, httpx.TimeoutException):
        return ApiError(0, "api_timeout", f"API 响应超时: {base_url}")
    return ApiError(0, "api_transport_error", f"与 API 通信失败 ({base_url}): {exc}")


UNAUTHORIZED_MESSAGE = (
    "API 拒绝访问：API 密钥缺失或无效（设置项 webui.api_key 或 api.api_keys，"
    "环境变量 KB_WEBUI__API_KEY 或 KB_API__API_KEYS）"
)
# The API's 403s (kb_server.access.check): the key may not do this, whatever is retried.
FORBIDDEN_MESSAGES = {
    "kb_read_only": "无权修改：当前 API 密钥对该知识库只有只读权限",
    "access_denied": "无权操作：需要管理员 API 密钥，或对该知识库的写权限",
}


def error_from_response(response: httpx.Response) -> ApiError:
    """The server's own code and message, whichever of our error shapes it used."""
    if response.status_code == 401:
        return ApiError(401, "unauthorized", UNAUTHORIZED_MESSAGE)
    status = response.status_code
    try:
        body: Any = response.json()
    except ValueError:
        text = response.text.strip() or response.reason_phrase
        return ApiError(status, f"http_{status}", f"HTTP {status}: {text}")
    error = _error_of(status, body)
    if status == 403 and error.code in FORBIDDEN_MESSAGES:
        return ApiError(403, error.code, FORBIDDEN_MESSAGES[error.code])
    return error


def _error_of(status: int, body: Any) -> ApiError:
    if isinstance(body, dict):
        if "detail" in body:
            return _from_detail(status, body["detail"])
        error = body.get("error")
        if isinstance(error, dict):  # the OpenAI-compatible routes
            code = str(error.get("code") or error.get("type") or f"http_{status}")
            return ApiError(status, code, str(error.get("message", "")))
        if "msg" in body:
            return ApiError(status, f"http_{status}", str(body["msg"]))
    return ApiError(status, f"http_{status}", f"HTTP {status}: {body}")


def _from_detail(status: int, detail: Any) -> ApiError:
    if isinstance(detail, dict) and "message" in detail:
        return ApiError(status, str(detail.get("code", f"http_{status}")), str(detail["message"]))
    if isinstance(detail, list):
        # FastAPI's validation errors: [{loc, msg, ...}]
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
                parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
        return ApiError(status, "invalid_request", "请求参数无效: " + "; ".join(parts))
    return ApiError(status, f"http_{status}", str(detail))


def sse_payloads(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The JSON objects of ``data:`` lines; OpenAI's ``[DONE]`` and comments are skipped."""
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue
        data = line[len("data:") :].strip()
        if not data or data == "[DONE]":
            continue
        payload = json.loads(data)
        if isinstance(payload, dict):
            yield payload


class HttpApi:
    """An httpx client whose failures all become ``ApiError``."""

    def __init__(
        self, base_url: str, *, api_key: str | None = None, timeout_s: float = 300.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or None
        # Sent on every request, streams included; never put into a URL or a message.
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=httpx.Timeout(timeout_s, connect=5.0)
        )

    def close(self) -> None:
        self._http.close()

    def _response(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A successful response; a failure of any kind raises ``ApiError``."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise transport_error(exc, self.base_url) from exc
        if response.is_error:
            raise error_from_response(response)
        return response

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._response(method, path, **kwargs)
        return response.json() if response.content else None

    def _data(self, method: str, path: str, **kwargs: Any) -> Any:
        """The ``data`` of a Chatchat envelope."""
        return self._request(method, path, **kwargs)["data"]

    @contextmanager
    def _stream(self, path: str, body: dict[str, Any]) -> Iterator[Iterator[dict[str, Any]]]:
        try:
            with self._http.stream("POST", path, json=body) as response:
                if response.is_error:
                    response.read()
                    raise error_from_response(response)
                yield sse_payloads(response)
        except httpx.TransportError as exc:
            raise transport_error(exc, self.base_url) from exc
