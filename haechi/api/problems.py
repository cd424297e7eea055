"""RFC 9457 problem details: every error the API answers with is ``application/problem+json``.

A problem names its ``type`` (a URI under ``/problems/``, documented there in Korean and
English), a short ``title`` (localised by ``Accept-Language``), the HTTP ``status``, a ``detail``
for this occurrence and the ``instance`` path. Validation problems add ``errors``: one entry per
field, the field written as a dotted path (``body.deaths``, ``query.lon``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException

from haechi.core.errors import HaechiError, Unauthorized

from .auth import presented_token

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "/problems/"


@dataclass(frozen=True, slots=True)
class ProblemType:
    """One kind of problem: its slug in the type URI, status, and bilingual title and meaning."""

    slug: str
    status: int
    title_en: str
    title_ko: str
    about_en: str
    about_ko: str

    @property
    def uri(self) -> str:
        return TYPE_PREFIX + self.slug

    def title(self, korean: bool) -> str:
        return self.title_ko if korean else self.title_en


CATALOGUE: dict[str, ProblemType] = {
    t.slug: t
    for t in (
        ProblemType(
            "invalid-request",
            422,
            "Invalid request",
            "요청 값이 올바르지 않음",
            "One or more fields are missing, of the wrong type, out of range or unknown; "
            "`errors` names each field.",
            "항목이 없거나 형식·범위가 틀렸거나 알 수 없는 항목입니다. "
            "`errors`에 항목별로 적혀 있습니다.",
        ),
        ProblemType(
            "malformed-json",
            400,
            "Malformed JSON",
            "JSON 형식 오류",
            "The request body is not valid JSON.",
            "요청 본문이 올바른 JSON이 아닙니다.",
        ),
        ProblemType(
            "unsupported-media-type",
            415,
            "Unsupported media type",
            "지원하지 않는 형식",
            "Bodies are JSON: send `Content-Type: application/json`.",
            "요청 본문은 JSON이어야 합니다. `Content-Type: application/json`으로 보내세요.",
        ),
        ProblemType(
            "body-too-large",
            413,
            "Request body too large",
            "요청 본문이 너무 큼",
            "The body is larger than this server accepts; split it into smaller requests.",
            "서버가 받는 크기보다 큰 본문입니다. 나누어 보내세요.",
        ),
        ProblemType(
            "unauthorized",
            401,
            "Authentication required",
            "인증 필요",
            "Send a live API token as `Authorization: Bearer <token>`.",
            "유효한 API 토큰을 `Authorization: Bearer <token>` 헤더로 보내세요.",
        ),
        ProblemType(
            "forbidden",
            403,
            "Forbidden",
            "권한 없음",
            "The token is valid but its role may not do this.",
            "토큰은 유효하지만 이 작업을 할 권한(역할)이 없습니다.",
        ),
        ProblemType(
            "not-found",
            404,
            "Not found",
            "찾을 수 없음",
            "No such resource or route.",
            "해당 자원이나 경로가 없습니다.",
        ),
        ProblemType(
            "method-not-allowed",
            405,
            "Method not allowed",
            "허용되지 않는 메서드",
            "The route exists but not for this HTTP method; the `Allow` header lists the methods.",
            "경로는 있지만 이 HTTP 메서드는 쓸 수 없습니다. `Allow` 헤더를 보세요.",
        ),
        ProblemType(
            "conflict",
            409,
            "Conflict",
            "충돌",
            "The write conflicts with stored data (a duplicate key or a missing reference).",
            "저장된 데이터와 충돌합니다 (중복 키 또는 참조 대상 없음).",
        ),
        ProblemType(
            "rate-limited",
            429,
            "Too many requests",
            "요청이 너무 많음",
            "This address sent more of these requests than the server takes from one client; wait the "
            "seconds in `Retry-After`, then send it again. Staff tokens are not limited.",
            "한 주소에서 받을 수 있는 것보다 많은 요청을 보냈습니다. `Retry-After`의 초만큼 기다린 뒤 다시 "
            "보내세요. 직원 토큰에는 제한이 없습니다.",
        ),
        ProblemType(
            "overloaded",
            503,
            "Server busy",
            "서버 혼잡",
            "The server is answering as many requests as it can at once; retry after the seconds in "
            "`Retry-After`. It refuses at once rather than keep you waiting in a queue.",
            "서버가 한 번에 처리할 수 있는 만큼 요청을 처리하고 있습니다. `Retry-After`의 초만큼 기다린 뒤 "
            "다시 시도하세요. 줄을 세워 기다리게 하는 대신 바로 알려 드립니다.",
        ),
        ProblemType(
            "internal-error",
            500,
            "Internal error",
            "내부 오류",
            "An unexpected error; it is logged under `error_id`.",
            "예기치 못한 오류입니다. `error_id`로 기록되어 있습니다.",
        ),
        ProblemType(
            "service-unavailable",
            503,
            "Service unavailable",
            "서비스 일시 중단",
            "The integrated DB cannot be reached or is not up to date; retry later.",
            "통합DB에 연결할 수 없거나 스키마가 최신이 아닙니다. 잠시 후 다시 시도하세요.",
        ),
    )
}
#: The type of a problem given by its status alone; these share their status with a more usual one.
NAMED_ONLY = frozenset({"malformed-json", "overloaded"})
BY_STATUS = {t.status: t for t in CATALOGUE.values() if t.slug not in NAMED_ONLY}


def prefers_korean(request: Request) -> bool:
    """True when the caller's most preferred language in ``Accept-Language`` is Korean."""
    best, best_q = "", -1.0
    for part in request.headers.get("accept-language", "").split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and q > best_q:
            best, best_q = tag.lower(), q
    return best.startswith("ko")


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """The problem+json response for ``status``; the type comes from ``slug`` or the status."""
    kind = CATALOGUE.get(slug) if slug else BY_STATUS.get(status)
    body: dict[str, Any] = {
        # about:blank is RFC 9457's type for "nothing beyond the HTTP status".
        "type": kind.uri if kind else "about:blank",
        "title": kind.title(prefers_korean(request)) if kind else _phrase(status),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    if errors is not None:
        body["errors"] = errors
    body.update(extensions)
    return JSONResponse(
        body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


# ── Validation errors ──────────────────────────────────────────────────────────────────


def field_path(loc: Iterable[Any]) -> str:
    """``("body", "places", 0, "lon")`` → ``"body.places.0.lon"``."""
    return ".".join(str(part) for part in loc)


def _message(error: Mapping[str, Any]) -> str:
    if error.get("type") == "extra_forbidden":
        return "unknown field; it is not part of this request"
    # pydantic prefixes messages of our own validators; the field is named separately already.
    return str(error.get("msg", "invalid value")).removeprefix("Value error, ")


def field_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """One entry per failing field, without echoing the input (it may hold personal data)."""
    return [
        {
            "field": field_path(e.get("loc", ())),
            "message": _message(e),
            "code": str(e.get("type", "")),
        }
        for e in errors
    ]


def _summary(errors: list[dict[str, str]]) -> str:
    shown = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    noun = "field is" if len(errors) == 1 else "fields are"
    return f"{len(errors)} {noun} invalid — {shown}{more}"


def _is_json_request(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    raw = list(exc.errors())
    malformed = next((e for e in raw if e.get("type") == "json_invalid"), None)
    if malformed is not None:
        position = malformed["loc"][-1]
        reason = (malformed.get("ctx") or {}).get("error", "not JSON")
        return problem_response(
            request,
            400,
            f"the body is not valid JSON: {reason} at character {position}",
            slug="malformed-json",
            errors=[{"field": "body", "message": reason, "code": "json_invalid"}],
        )
    has_body = (
        request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    )
    if (
        has_body
        and not _is_json_request(request)
        and any(tuple(e["loc"]) == ("body",) for e in raw)
    ):
        media = request.headers.get("content-type", "none")
        return problem_response(
            request,
            415,
            f"the body must be application/json, not {media}",
            slug="unsupported-media-type",
        )
    errors = field_errors(raw)
    return problem_response(request, 422, _summary(errors), slug="invalid-request", errors=errors)


# ── Haechi, HTTP and unexpected errors ─────────────────────────────────────────────────


def _authenticate_header(request: Request) -> str:
    challenge = 'Bearer realm="haechi"'
    return challenge + ', error="invalid_token"' if presented_token(request.scope) else challenge


async def on_haechi_error(request: Request, exc: HaechiError) -> JSONResponse:
    errors = (
        [{"field": exc.field, "message": exc.detail, "code": type(exc).__name__}]
        if exc.field
        else None
    )
    headers = (
        {"WWW-Authenticate": _authenticate_header(request)}
        if isinstance(exc, Unauthorized)
        else None
    )
    return problem_response(request, exc.status, exc.detail, errors=errors, headers=headers)


async def on_http_error(request: Request, exc: HTTPException) -> JSONResponse:
    status = exc.status_code
    if status == 404 and exc.detail == "Not Found":
        detail = f"no route matches {request.method} {request.url.path}"
    elif status == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        detail = (
            f"{request.method} is not allowed on {request.url.path}; allowed: {allowed or 'none'}"
        )
    else:
        detail = str(exc.detail)
    return problem_response(request, status, detail, headers=exc.headers)


async def on_integrity_error(request: Request, exc: IntegrityError) -> JSONResponse:
    log.warning("integrity error on %s %s: %s", request.method, request.url.path, exc.orig)
    return problem_response(
        request,
        409,
        "the write conflicts with stored data (a duplicate key or a missing referenced record)",
    )


async def on_data_error(request: Request, exc: DataError) -> JSONResponse:
    """The DB refused a value (a number beyond its column, say): the request's fault, not the server's.

    Request models bound what they take, so that the answer names the field; this is the net
    under a bound that is missing, logged so it gets one."""
    log.warning("the DB refused a value on %s %s: %s", request.method, request.url.path, exc.orig)
    return problem_response(
        request, 422, "a value is outside what the integrated DB can keep (a number too large, say)",
        slug="invalid-request",
    )


async def on_database_unavailable(request: Request, exc: OperationalError) -> JSONResponse:
    log.error("database unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
    return problem_response(
        request,
        503,
        "the integrated DB is unavailable; retry shortly",
        headers={"Retry-After": "5"},
    )


async def on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    error_id = uuid.uuid4().hex[:12]
    log.error(
        "unexpected error %s on %s %s", error_id, request.method, request.url.path, exc_info=exc
    )
    return problem_response(
        request, 500, f"an unexpected error occurred; it is logged as {error_id}", error_id=error_id
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Render every error the app can raise as problem+json."""
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HaechiError, on_haechi_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(IntegrityError, on_integrity_error)
    app.add_exception_handler(DataError, on_data_error)
    app.add_exception_handler(OperationalError, on_database_unavailable)
    app.add_exception_handler(Exception, on_unexpected_error)


class ServiceUnavailable(HaechiError):
    """The integrated DB is unreachable or behind the code's schema."""

    status = 503
    title = "Service unavailable"


#: The problem+json schema, for the OpenAPI document of every route.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "instance"],
    "properties": {
        "type": {
            "type": "string",
            "description": "URI of the problem type, documented at that path",
        },
        "title": {
            "type": "string",
            "description": "Short name of the problem type (Accept-Language: ko or en)",
        },
        "status": {"type": "integer", "description": "HTTP status"},
        "detail": {"type": "string", "description": "What went wrong this time"},
        "instance": {"type": "string", "description": "Path of the request"},
        "errors": {
            "type": "array",
            "description": "Invalid fields, each as a dotted path such as body.deaths",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "code": {"type": "string"},
                },
            },
        },
    },
}


def _documented(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}}


#: Error answers every route can give, for ``APIRouter(responses=...)``.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: _documented("Invalid request: `errors` names each field · 잘못된 요청"),
    "4XX": _documented("Other client errors (401, 403, 404, 413 …) · 기타 요청 오류"),
    "5XX": _documented("Server errors · 서버 오류"),
}
