"""Refuse oversized request bodies before they are read whole (pure ASGI, no buffering).

A declared ``Content-Length`` over the limit is answered with 413 before the app runs. A body
without a length (chunked) is counted as it streams in; the read that crosses the limit raises
``BodyTooLarge``, an ``HTTPException`` so FastAPI's body reader passes it on to the problem
handlers instead of calling it a parse error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .problems import problem_response


def _starts(path: str, prefix: str) -> bool:
    if "*" not in prefix:
        return path.startswith(prefix)
    return re.match(re.escape(prefix).replace(r"\*", "[^/]+"), path) is not None


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(
            413, f"the request body is larger than {limit} bytes; send less per request"
        )


class BodySizeLimit:
    """ASGI middleware: at most ``max_bytes`` per body, or a path prefix's own limit.

    ``overrides`` maps a path prefix (e.g. ``/api/v1/ingest``) to its own limit in bytes, for
    bulk endpoints that legitimately take more than ordinary ones; a ``*`` stands for one path
    segment (e.g. ``/api/v1/reports/*/photos``).
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, overrides: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Longest prefix first, so the most specific override wins.
        self.overrides = sorted((overrides or {}).items(), key=lambda item: -len(item[0]))

    def limit_for(self, path: str) -> int:
        return next(
            (limit for prefix, limit in self.overrides if _starts(path, prefix)), self.max_bytes
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            refusal = _check_declared(declared, limit)
            if refusal is not None:
                await problem_response(Request(scope), *refusal)(scope, receive, send)
                return
        await self._counting(scope, receive, send, limit)

    async def _counting(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge as exc:
            # Reached here only when nothing inside turned it into a response.
            if started:
                raise
            await problem_response(Request(scope), 413, exc.detail)(scope, receive, send)


def _check_declared(declared: str, limit: int) -> tuple[int, str] | None:
    """(status, detail) refusing a bad or too large Content-Length, or None to go on."""
    if not declared.strip().isdigit():
        return 400, f"Content-Length must be a whole number of bytes, not {declared!r}"
    if int(declared) > limit:
        return 413, f"the request body is {int(declared)} bytes; at most {limit} bytes are accepted"
    return None
