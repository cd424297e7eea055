"""What an API's answer means: its records and total, no data, or an error (pure, no I/O).

Each family of APIs answers in its own envelope:

- 공공데이터포털 (data.go.kr): ``{"response": {"header": {resultCode, resultMsg}, "body": {items, totalCount}}}``
  in JSON; the portal's gateway answers key and quota errors as XML
  (``<OpenAPI_ServiceResponse><cmmMsgHeader>`` with ``returnReasonCode``), whatever was asked for.
- 서울 열린데이터광장: ``{"<SERVICE>": {"list_total_count", "RESULT": {CODE, MESSAGE}, "row": [...]}}``,
  or a bare ``{"RESULT": {...}}`` when there is nothing (INFO-200) or the key is refused (INFO-100).
- 기상청 API허브 (typ01): a text table, ``#`` comment lines around rows of values (comma separated with
  ``disp=1``); an error as JSON ``{"result": {"status", "message"}}`` or an HTTP error status.
- 한강홍수통제소: ``{"content": [...]}``; its guide documents no error body, so an HTTP error status
  or any other body is an error, 401/403 a refused key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.etree import ElementTree

import httpx
import orjson

from .client import FeedError, KeyRefused, Transient, error_for


@dataclass
class Answer:
    """One page: its records (dicts of text), the total the API reports, and its own words."""

    records: list[dict] = field(default_factory=list)
    total: int | None = None
    note: str | None = None  # the API's message when it says there is no data


def _by_status(response: httpx.Response, api: str) -> None:
    """Errors the HTTP status alone tells: refused key, rate limit, server trouble."""
    code = response.status_code
    if code in (401, 403):
        raise KeyRefused(f"{api} refused the service key (HTTP {code})")
    if code == 429 or code >= 500:
        raise Transient(f"{api} answered HTTP {code}")
    if code >= 400:
        raise FeedError(f"{api} refused the request (HTTP {code})")


def _json(response: httpx.Response, api: str):
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        start = response.content[:80].decode("utf-8", "replace").strip()
        raise FeedError(f"{api} answered something that is not JSON: {start!r}") from None


# ── data.go.kr ───────────────────────────────────────────────────────────────────────────


def read_data_go_kr(response: httpx.Response, codes: dict[str, str], api: str) -> Answer:
    _by_status(response, api)
    if response.content.lstrip().startswith(b"<"):
        code, message = _gateway_xml(response.content, api)
        return _coded(code, message, codes, api)
    data = _json(response, api)
    envelope = data.get("response") if isinstance(data, dict) else None
    header = (envelope or {}).get("header") or {}
    if "resultCode" not in header:
        raise FeedError(f"{api} answered JSON without response.header.resultCode")
    answer = _coded(str(header["resultCode"]), str(header.get("resultMsg", "")), codes, api)
    if answer is not None:
        return answer
    body = envelope.get("body") or {}
    items = body.get("items") or []
    if isinstance(items, dict):  # KMA nests {"items": {"item": [...]}}; AirKorea gives the list itself
        items = items.get("item") or []
    if isinstance(items, dict):
        items = [items]
    return Answer([i for i in items if isinstance(i, dict)], _int(body.get("totalCount")))


def _gateway_xml(content: bytes, api: str) -> tuple[str, str]:
    try:
        root = ElementTree.fromstring(content)
    except ElementTree.ParseError:
        raise FeedError(f"{api} answered XML that does not parse") from None
    code = root.findtext(".//returnReasonCode") or root.findtext(".//resultCode")
    message = root.findtext(".//returnAuthMsg") or root.findtext(".//errMsg") or root.findtext(".//resultMsg")
    if code is None:
        raise FeedError(f"{api} answered XML without a result code")
    return code.strip(), (message or "").strip()


def _coded(code: str, message: str, codes: dict[str, str], api: str) -> Answer | None:
    """None for a normal answer (read on), an empty Answer for no data; errors raised."""
    outcome = codes.get(code, "failed")
    if outcome == "ok":
        return None
    if outcome == "empty":
        return Answer(total=0, note=f"{code} {message}".strip())
    raise error_for(outcome, f"{api}: {code} {message}".strip())


# ── 서울 열린데이터광장 ───────────────────────────────────────────────────────────────────


def read_seoul(response: httpx.Response, codes: dict[str, str], service: str, api: str) -> Answer:
    _by_status(response, api)
    data = _json(response, api)
    if not isinstance(data, dict):
        raise FeedError(f"{api} answered JSON that is not an object")
    inner = data.get(service) if isinstance(data.get(service), dict) else data
    result = inner.get("RESULT") or {}
    code, message = str(result.get("CODE", "")), str(result.get("MESSAGE", ""))
    if not code:
        raise FeedError(f"{api} answered without RESULT.CODE")
    if (answer := _coded(code, message, codes, api)) is not None:
        return answer
    rows = inner.get("row") or []
    return Answer([r for r in rows if isinstance(r, dict)], _int(inner.get("list_total_count")))


# ── 한강홍수통제소 ───────────────────────────────────────────────────────────────────────


def read_hrfco(response: httpx.Response, api: str) -> Answer:
    _by_status(response, api)
    data = _json(response, api)
    content = data.get("content") if isinstance(data, dict) else None
    if not isinstance(content, list):
        raise FeedError(f"{api} answered JSON without its content list")
    records = [r for r in content if isinstance(r, dict)]
    return Answer(records, len(records), note=None if records else "no records in the window")


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# ── 기상청 API허브 ──────────────────────────────────────────────────────────────────────


def read_kma_text(response: httpx.Response, columns: list[str], api: str) -> Answer:
    _by_status(response, api)
    text = response.content.decode("cp949", "replace")
    if text.lstrip().startswith("{"):
        result = (_json(response, api) or {}).get("result") or {}
        status, message = str(result.get("status", "")), str(result.get("message", "")).strip()
        raise (KeyRefused if status in ("401", "403") else FeedError)(f"{api}: {status} {message}".strip())
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        cells = line.rstrip("=").rstrip(",").split(",") if "," in line else line.split()
        rows.append(dict(zip(columns, (c.strip() for c in cells), strict=False)))
    return Answer(rows, len(rows), note=None if rows else "no rows at that time")
