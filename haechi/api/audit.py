"""The audit log of every write, kept in one place: a pure ASGI middleware.

Each POST, PUT, PATCH or DELETE — accepted or refused, by anyone — leaves one audit row with
who (token name and role, or ``anonymous``), the action (``METHOD path``), the target (the
``Location`` of what was created, else the path), the status, and for refusals the problem's
title, detail and field errors. The row is written before the response leaves, so a client that
got an answer knows its write is on record.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from haechi.store import access

from .auth import ANONYMOUS, Caller, identify
from .problems import PROBLEM_JSON

log = logging.getLogger(__name__)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(slots=True)
class AuditEntry:
    """What one write request did, filled in as its response goes out."""

    caller: Caller
    method: str
    path: str
    status: int = 500  # stays 500 when the app fails before answering
    location: str | None = None
    problem: dict[str, Any] | None = None
    held: list[Message] = field(default_factory=list)

    @property
    def action(self) -> str:
        return f"{self.method} {self.path}"[:100]

    @property
    def detail(self) -> dict[str, Any] | None:
        detail: dict[str, Any] = {}
        if self.caller.principal is not None:
            detail["token_id"] = self.caller.principal.token_id
        elif self.caller.refusal:
            detail["credential"] = self.caller.refusal
        if self.problem:
            detail["problem"] = {
                k: self.problem[k] for k in ("title", "detail", "errors") if k in self.problem
            }
        return detail or None


class AuditMiddleware:
    """ASGI middleware writing every write request to ``audit_log`` (``access.record``)."""

    def __init__(self, app: ASGIApp, engine: Engine) -> None:
        self.app = app
        self.engine = engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        entry = AuditEntry(await self._identify(scope), scope["method"], scope["path"])
        done = False

        async def audited_send(message: Message) -> None:
            nonlocal done
            if done:
                await send(message)
                return
            if message["type"] == "http.response.start":
                headers = Headers(raw=message.get("headers", []))
                entry.status, entry.location = message["status"], headers.get("location")
                if not headers.get("content-type", "").startswith(PROBLEM_JSON):
                    done = True
                    await self._record(entry)
                    await send(message)
                    return
            # A problem's body is small and names the refusal: hold it until complete, then record.
            entry.held.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                done = True
                entry.problem = _parse_problem(entry.held)
                await self._record(entry)
                for held in entry.held:
                    await send(held)

        try:
            await self.app(scope, receive, audited_send)
        except Exception:
            if not done:
                await self._record(entry)  # status 500: the server error handler answers outside us
            raise

    async def _identify(self, scope: Scope) -> Caller:
        try:
            return await run_in_threadpool(identify, self.engine, scope)
        except Exception:
            log.exception("could not identify the caller of %s %s", scope["method"], scope["path"])
            return ANONYMOUS

    async def _record(self, entry: AuditEntry) -> None:
        try:
            await run_in_threadpool(self._write, entry)
        except Exception:
            log.exception(
                "AUDIT NOT RECORDED: %s %s -> %s", entry.action, entry.caller, entry.status
            )

    def _write(self, entry: AuditEntry) -> None:
        actor = entry.caller.principal or "anonymous"
        with self.engine.begin() as conn:
            access.record(
                conn,
                actor,
                entry.action,
                target=(entry.location or entry.path)[:200],
                status=entry.status,
                detail=entry.detail,
            )


def _parse_problem(messages: list[Message]) -> dict[str, Any] | None:
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None
