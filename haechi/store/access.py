"""API tokens (hashed at rest) and the audit log of every write."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update

from haechi.core.clock import utcnow
from haechi.core.errors import NotFound

from .schema import api_tokens, audit_log
from .sql import row_dict

TOKEN_PREFIX = "hc_"


def hash_token(token: str) -> str:
    # Tokens are 256 random bits, so a plain SHA-256 is enough (no dictionary to guess from).
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of a request or command."""

    token_id: int | None
    name: str
    role: str
    center: str | None = None
    area_code: str | None = None


def create_token(
    conn: Connection, name: str, role: str, *, center: str | None = None, area_code: str | None = None
) -> tuple[int, str]:
    """Store a new token's hash; returns (id, token). The token is shown once and never kept."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = conn.execute(
        insert(api_tokens).values(
            name=name, token_hash=hash_token(token), role=role, center=center,
            area_code=area_code, created_at=utcnow(),
        )
    ).inserted_primary_key[0]
    return token_id, token


def authenticate(conn: Connection, token: str) -> Principal | None:
    """The principal of a live token, or None for an unknown or revoked one."""
    c = api_tokens.c
    row = conn.execute(
        select(api_tokens).where(c.token_hash == hash_token(token), c.revoked_at.is_(None))
    ).first()
    if row is None:
        return None
    conn.execute(update(api_tokens).where(c.id == row.id).values(last_used_at=utcnow()))
    return Principal(row.id, row.name, row.role, row.center, row.area_code)


def revoke_token(conn: Connection, token_id: int) -> None:
    done = conn.execute(
        update(api_tokens)
        .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    if done.rowcount == 0:
        raise NotFound(f"no live token with id {token_id}")


def list_tokens(conn: Connection) -> list[dict[str, Any]]:
    columns = [c for c in api_tokens.c if c.name != "token_hash"]
    return [row_dict(r) for r in conn.execute(select(*columns).order_by(api_tokens.c.id))]


def record(
    conn: Connection,
    actor: Principal | str,
    action: str,
    *,
    target: str | None = None,
    status: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one line to the audit log: who did what, to what, when."""
    name, role = (actor, None) if isinstance(actor, str) else (actor.name, actor.role)
    conn.execute(
        insert(audit_log).values(
            at=utcnow(), actor=name, role=role, action=action, target=target, status=status, detail=detail
        )
    )


def audit_trail(conn: Connection, *, actor: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if actor:
        query = query.where(audit_log.c.actor == actor)
    return [row_dict(r) for r in conn.execute(query)]


def get_token(conn: Connection, token_id: int) -> dict[str, Any]:
    """One token's record without its hash (live or revoked)."""
    columns = [c for c in api_tokens.c if c.name != "token_hash"]
    row = conn.execute(select(*columns).where(api_tokens.c.id == token_id)).first()
    if row is None:
        raise NotFound(f"no token with id {token_id}")
    return row_dict(row)
