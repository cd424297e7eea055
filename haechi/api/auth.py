"""Who is calling: bearer tokens, roles, and the dependencies routes declare to guard themselves.

Anonymous callers read public data; every other route declares ``Depends(require(...))``.
A caller is identified once per request and remembered in the ASGI scope, so the audit
middleware and the route dependency agree on who it was without a second lookup.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from starlette.datastructures import Headers

from haechi.core.errors import Forbidden, Unauthorized
from haechi.model.access import Role
from haechi.store.access import Principal, authenticate

CALLER_KEY = "haechi.caller"


@dataclass(frozen=True, slots=True)
class Caller:
    """The outcome of identifying a request: a principal, or anonymous with the reason why."""

    principal: Principal | None
    presented: bool = False  # an Authorization header was sent
    refusal: str | None = None  # why the presented credential was refused


ANONYMOUS = Caller(None)


def bearer_token(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive).

    Stock clients that speak only HTTP Basic (e.g. SensorThings clients) may send the token as
    the password: ``Basic base64(any-user:token)``.
    """
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() == "basic":
        try:
            token = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return None
        return token or None
    return token.strip() or None if scheme.lower() == "bearer" else None


def identify(engine: Engine, scope: dict[str, Any]) -> Caller:
    """Who sent this request; looked up once and remembered in the scope's state."""
    state = scope.setdefault("state", {})
    if CALLER_KEY not in state:
        state[CALLER_KEY] = _look_up(engine, Headers(scope=scope).get("authorization"))
    return state[CALLER_KEY]


def _look_up(engine: Engine, authorization: str | None) -> Caller:
    if authorization is None:
        return ANONYMOUS
    token = bearer_token(authorization)
    if token is None:
        return Caller(None, True, "the Authorization header must read 'Bearer <token>'")
    with engine.begin() as conn:
        principal = authenticate(conn, token)
    if principal is None:
        return Caller(None, True, "the token is unknown or has been revoked")
    return Caller(principal, True)


def presented_token(scope: dict[str, Any]) -> bool:
    caller = scope.get("state", {}).get(CALLER_KEY)
    return bool(caller and caller.presented)


bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="apiToken",
    description="API token from `haechi token create` or `POST /api/v1/tokens` · API 토큰",
)


def authenticated(
    request: Request,
    # Declared so OpenAPI shows the bearer scheme; the header itself is read by ``identify``.
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """The caller's principal; 401 for no token, a malformed header, or an unknown/revoked token."""
    caller = identify(request.app.state.engine, request.scope)
    if caller.principal is None:
        raise Unauthorized(
            caller.refusal or "this needs an API token: send 'Authorization: Bearer <token>'"
        )
    return caller.principal


def require(*roles: Role) -> Callable[..., Principal]:
    """A dependency admitting the given roles (admin always passes); 403 for any other role."""
    allowed = frozenset(roles) | {Role.ADMIN}
    wanted = ", ".join(sorted(allowed))

    def check_role(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
        if principal.role not in allowed:
            raise Forbidden(
                f"this needs one of the roles {wanted}; "
                f"token {principal.name!r} has role {principal.role}"
            )
        return principal

    return check_role


#: Any live token, whatever its role.
Authenticated = Annotated[Principal, Depends(authenticated)]
#: Admin tokens only.
AdminOnly = Annotated[Principal, Depends(require())]


def ensure_in_own_area(principal: Principal, area_code: str | None, field: str) -> None:
    """District officials work only inside their own area (a code prefix); others anywhere."""
    if principal.role != Role.DISTRICT_OFFICIAL:
        return
    own = _own_area(principal)
    if area_code is None or not area_code.startswith(own):
        raise Forbidden(
            f"a district official of area {own} works only inside it; {field} is {area_code!r}",
            field=field,
        )


def readable_area(principal: Principal, requested: str | None, field: str) -> str | None:
    """The area filter for reads of personal data: district officials see only their own area."""
    if principal.role != Role.DISTRICT_OFFICIAL:
        return requested
    own = _own_area(principal)
    if requested is None:
        return own
    if not requested.startswith(own):
        raise Forbidden(f"a district official of area {own} reads only inside it", field=field)
    return requested


def _own_area(principal: Principal) -> str:
    # A district official's token without an area would otherwise see and write everywhere.
    if not principal.area_code:
        raise Forbidden(
            f"district official token {principal.name!r} has no area; ask an admin to reissue it"
        )
    return principal.area_code
