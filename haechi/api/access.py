"""API tokens and the audit log (admins only). A token is shown once, when it is created."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import Field, ValidationInfo, field_validator

from haechi.model.access import Center, Role
from haechi.store import access

from .auth import AdminOnly
from .common import (
    API_PREFIX,
    AreaCode,
    Db,
    Id,
    QueryParams,
    Record,
    RequestBody,
    UtcMoment,
    ensure_area_exists,
)
from .problems import PROBLEM_RESPONSES

router = APIRouter(prefix=API_PREFIX, tags=["access"], responses=PROBLEM_RESPONSES)

TokenId = Id


class TokenIn(RequestBody):
    name: str = Field(min_length=1, max_length=100, description="Who or what holds the token")
    role: Role
    center: Center | None = Field(
        None, validate_default=True, description="Operators only: their center"
    )
    area_code: AreaCode | None = Field(
        None, validate_default=True, description="District officials only: their area"
    )

    @field_validator("center")
    @classmethod
    def _center_for_operators(cls, center: str | None, info: ValidationInfo) -> str | None:
        return _only_for(Role.OPERATOR, "center", center, info)

    @field_validator("area_code")
    @classmethod
    def _area_for_officials(cls, area_code: str | None, info: ValidationInfo) -> str | None:
        return _only_for(Role.DISTRICT_OFFICIAL, "area_code", area_code, info)


def _only_for(role: Role, name: str, value: str | None, info: ValidationInfo) -> str | None:
    """``value`` is required for ``role`` and refused for every other role."""
    given = info.data.get("role")
    if given is None:
        return value  # the role itself was invalid and is reported on its own
    if given == role and value is None:
        raise ValueError(f"{role} tokens need a {name}")
    if given != role and value is not None:
        raise ValueError(f"only {role} tokens have a {name}, not {given} tokens")
    return value


class Token(Record):
    id: int
    name: str
    role: Role
    center: Center | None
    area_code: str | None
    created_at: UtcMoment
    revoked_at: UtcMoment | None
    last_used_at: UtcMoment | None


class NewToken(Token):
    token: str = Field(description="The bearer token. Shown this once; only its hash is kept.")


class AuditFilter(QueryParams):
    actor: str | None = Field(None, max_length=100, description="Token name, or 'anonymous'")
    limit: int = Field(100, ge=1, le=1000)


class AuditEntry(Record):
    id: int
    at: UtcMoment
    actor: str
    role: str | None
    action: str
    target: str | None
    status: int | None
    detail: dict[str, Any] | None


@router.post(
    "/tokens", status_code=201, response_model=NewToken, summary="Create a token · 토큰 발급"
)
def create_token(
    body: TokenIn, _admin: AdminOnly, engine: Db, response: Response
) -> dict[str, Any]:
    with engine.begin() as conn:
        ensure_area_exists(conn, body.area_code, "body.area_code")
        token_id, token = access.create_token(
            conn, body.name, body.role, center=body.center, area_code=body.area_code
        )
        stored = access.get_token(conn, token_id)
    response.headers["Location"] = f"{API_PREFIX}/tokens/{token_id}"
    return {**stored, "token": token}


@router.get("/tokens", response_model=list[Token], summary="List tokens · 토큰 목록")
def list_tokens(_admin: AdminOnly, engine: Db) -> list[dict[str, Any]]:
    """Every token, live and revoked; hashes are never returned."""
    with engine.begin() as conn:
        return access.list_tokens(conn)


@router.get("/tokens/{token_id}", response_model=Token, summary="One token · 토큰 상세")
def get_token(_admin: AdminOnly, engine: Db, token_id: TokenId) -> dict[str, Any]:
    with engine.begin() as conn:
        return access.get_token(conn, token_id)


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke a token · 토큰 폐기")
def revoke_token(_admin: AdminOnly, engine: Db, token_id: TokenId) -> Response:
    """Revoked tokens stop working at once; 404 for an unknown or already revoked token."""
    with engine.begin() as conn:
        access.revoke_token(conn, token_id)
    return Response(status_code=204)


@router.get("/audit", response_model=list[AuditEntry], summary="Audit log · 감사 기록")
def audit_log(
    _admin: AdminOnly, engine: Db, q: Annotated[AuditFilter, Query()]
) -> list[dict[str, Any]]:
    """Every write, accepted or refused, newest first."""
    with engine.begin() as conn:
        return access.audit_trail(conn, actor=q.actor, limit=q.limit)
