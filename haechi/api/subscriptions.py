"""Webhook subscriptions (admins and operators) and their delivery logs.

A subscription names where alerts go (an https URL of a public address; ``haechi/alerts/egress.py``
names the exceptions a deployment may allow), for which areas (행정표준코드 prefixes; none =
everywhere), in which languages and with guidance for which audiences (none = all), and whether
drills are wanted. Its secret signs every delivery; it is shown once, when created or
rotated, and never listed. Writes by anyone but staff are rate-limited per address
(``haechi/api/shedding.toml``): 429 with ``Retry-After``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BeforeValidator, Field, field_validator
from sqlalchemy import Connection

from haechi.alerts.webhooks import BodyFormat
from haechi.core.clock import utcnow
from haechi.core.egress import RefusedTarget, check_webhook_url
from haechi.core.errors import InvalidInput
from haechi.model.access import Role
from haechi.store import alerting
from haechi.store.access import Principal

from .auth import require
from .common import (
    API_PREFIX,
    AreaCode,
    BigId,
    Db,
    Id,
    Limit,
    Offset,
    QueryParams,
    Record,
    RequestBody,
    UtcMoment,
    ensure_area_exists,
)
from .problems import PROBLEM_RESPONSES
from .shedding import RATE_LIMITED

router = APIRouter(prefix=API_PREFIX, tags=["subscriptions"], responses=PROBLEM_RESPONSES)

Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
SubscriptionId = Id
DeliveryId = BigId

LanguageTag = Annotated[
    str,
    Field(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$", examples=["ko", "en", "zh", "ja", "vi"]),
]
Audience = Annotated[
    str,
    Field(
        pattern=r"^[a-z][a-z_]{0,31}$",
        description="A guidance audience, e.g. general, elderly, children, disabled, foreigners",
    ),
]
Url = Annotated[
    str, Field(max_length=500, description="Where deliveries are POSTed (https, to a public address)")
]
Secret = Annotated[
    str,
    Field(min_length=16, max_length=200, description="HMAC-SHA256 key; generated when not given"),
]


def check_url(url: str) -> str:
    """An absolute http(s) URL with a host; anything else cannot receive a POST from us."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"the URL must be http or https, not {parts.scheme or 'relative'}")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    try:
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError:
        raise ValueError("the URL's port is not a number from 0 to 65535") from None
    return url


def check_unique(values: list[str] | None) -> list[str] | None:
    if values is not None and len(set(values)) != len(values):
        raise ValueError("each value may be given once")
    return values


class SubscriptionChanges(RequestBody):
    """Fields to change (PATCH); those left out stay as they are."""

    name: str | None = Field(None, min_length=1, max_length=100)
    url: Url | None = None
    area_codes: list[AreaCode] | None = Field(
        None, max_length=100, description="Area code prefixes: 11 all of Seoul, 11680 Gangnam-gu"
    )
    languages: list[LanguageTag] | None = Field(
        None, max_length=20, description="Which info blocks to send; none = all languages"
    )
    audiences: list[Audience] | None = Field(
        None, max_length=20, description="Whose guidance to send; none = all audiences"
    )
    include_exercises: bool | None = Field(None, description="Also receive drills (Exercise)")
    active: bool | None = None
    format: BodyFormat | None = Field(
        None, description="json: CAP as JSON with links; xml: the CAP XML itself"
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        return None if url is None else check_url(url)

    @field_validator("area_codes", "languages", "audiences")
    @classmethod
    def _each_once(cls, values: list[str] | None) -> list[str] | None:
        return check_unique(values)


class SubscriptionIn(SubscriptionChanges):
    """A new subscription: a name and a URL; everything else has a default."""

    name: str = Field(min_length=1, max_length=100)
    url: Url
    area_codes: list[AreaCode] = Field(
        [], max_length=100, description="Area code prefixes: 11 all of Seoul, 11680 Gangnam-gu"
    )
    languages: list[LanguageTag] = Field(
        [], max_length=20, description="Which info blocks to send; none = all languages"
    )
    audiences: list[Audience] = Field(
        [], max_length=20, description="Whose guidance to send; none = all audiences"
    )
    include_exercises: bool = Field(False, description="Also receive drills (Exercise)")
    active: bool = True
    format: BodyFormat = BodyFormat.JSON
    secret: Secret | None = None


#: A stored list; rows written outside the API may hold NULL, which means the same as empty.
StoredList = Annotated[list[str], BeforeValidator(lambda value: value or [])]


class Subscription(Record):
    id: int
    name: str
    url: str
    area_codes: StoredList
    languages: StoredList
    audiences: StoredList
    include_exercises: bool
    active: bool
    format: BodyFormat = BodyFormat.JSON
    created_at: UtcMoment


class NewSubscription(Subscription):
    secret: str = Field(description="The HMAC-SHA256 key. Shown this once; keep it safe.")


class DeliveryFilter(QueryParams):
    status: Literal["pending", "delivered", "failed"] | None = None
    limit: Limit = 100
    offset: Offset = 0


class Delivery(Record):
    id: int
    alert_id: int
    subscription_id: int
    status: str
    attempts: int
    response_status: int | None
    error: str | None
    next_attempt_at: UtcMoment | None
    delivered_at: UtcMoment | None
    created_at: UtcMoment


# ── subscriptions ───────────────────────────────────────────────────────────────────────


@router.post(
    "/subscriptions",
    status_code=201,
    response_model=NewSubscription,
    summary="Subscribe a webhook · 웹훅 구독 등록",
    responses=RATE_LIMITED,
)
def create_subscription(
    body: SubscriptionIn, _who: Operator, engine: Db, request: Request, response: Response
) -> dict[str, Any]:
    """The response carries the secret that signs deliveries; it is not shown again."""
    ensure_deliverable(request, body.url, "body.url")
    with engine.begin() as conn:
        _ensure_areas(conn, body.area_codes)
        stored = alerting.create_subscription(conn, body.model_dump(), utcnow())
    response.headers["Location"] = f"{API_PREFIX}/subscriptions/{stored['id']}"
    return stored


@router.get(
    "/subscriptions",
    response_model=list[Subscription],
    summary="List webhook subscriptions · 웹훅 구독 목록",
)
def list_subscriptions(_who: Operator, engine: Db) -> list[dict[str, Any]]:
    with engine.begin() as conn:
        return alerting.list_subscriptions(conn)


@router.get(
    "/subscriptions/{subscription_id}",
    response_model=Subscription,
    summary="One webhook subscription · 웹훅 구독 상세",
)
def get_subscription(
    _who: Operator, engine: Db, subscription_id: SubscriptionId
) -> dict[str, Any]:
    with engine.begin() as conn:
        return alerting.get_subscription(conn, subscription_id)


@router.patch(
    "/subscriptions/{subscription_id}",
    response_model=Subscription,
    summary="Change a webhook subscription · 웹훅 구독 변경",
    responses=RATE_LIMITED,
)
def change_subscription(
    body: SubscriptionChanges,
    _who: Operator,
    engine: Db,
    request: Request,
    subscription_id: SubscriptionId,
) -> dict[str, Any]:
    """Only the fields given change; `active: false` pauses deliveries and keeps the log."""
    changes = body.model_dump(exclude_unset=True)
    _refuse_nulls(changes)
    if "url" in changes:
        ensure_deliverable(request, changes["url"], "body.url")
    with engine.begin() as conn:
        alerting.get_subscription(conn, subscription_id)
        _ensure_areas(conn, changes.get("area_codes", []))
        return alerting.update_subscription(conn, subscription_id, changes)


@router.post(
    "/subscriptions/{subscription_id}/secret",
    response_model=NewSubscription,
    summary="Rotate a subscription's secret · 웹훅 비밀키 교체",
    responses=RATE_LIMITED,
)
def rotate_secret(_who: Operator, engine: Db, subscription_id: SubscriptionId) -> dict[str, Any]:
    """A new secret signs deliveries from now on; it is shown this once."""
    with engine.begin() as conn:
        return alerting.rotate_secret(conn, subscription_id)


@router.delete(
    "/subscriptions/{subscription_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a webhook subscription · 웹훅 구독 삭제",
    responses=RATE_LIMITED,
)
def delete_subscription(_who: Operator, engine: Db, subscription_id: SubscriptionId) -> Response:
    """Deletes its delivery log too; to keep the log, PATCH `active: false` instead."""
    with engine.begin() as conn:
        alerting.delete_subscription(conn, subscription_id)
    return Response(status_code=204)


# ── the delivery log ────────────────────────────────────────────────────────────────────


@router.get(
    "/subscriptions/{subscription_id}/deliveries",
    response_model=list[Delivery],
    summary="Delivery log of a subscription · 웹훅 전송 기록",
)
def list_deliveries(
    _who: Operator,
    engine: Db,
    subscription_id: SubscriptionId,
    q: Annotated[DeliveryFilter, Query()],
) -> list[dict[str, Any]]:
    """Newest first: attempts so far, the receiver's last status, and the last error."""
    with engine.begin() as conn:
        alerting.get_subscription(conn, subscription_id)
        return alerting.list_deliveries(
            conn, subscription_id, status=q.status, limit=q.limit, offset=q.offset
        )


@router.post(
    "/subscriptions/{subscription_id}/deliveries/{delivery_id}/retry",
    status_code=202,
    response_model=Delivery,
    summary="Retry a failed delivery · 실패한 전송 재시도",
    responses=RATE_LIMITED,
)
async def retry_delivery(
    request: Request,
    _who: Operator,
    engine: Db,
    subscription_id: SubscriptionId,
    delivery_id: DeliveryId,
) -> dict[str, Any]:
    """Queues the delivery again with a fresh count of attempts; it is sent in the background."""

    def requeue() -> dict[str, Any]:
        with engine.begin() as conn:
            return alerting.retry_delivery(conn, subscription_id, delivery_id, utcnow())

    delivery = await anyio.to_thread.run_sync(requeue)
    dispatcher = getattr(request.app.state, "dispatcher", None)
    if dispatcher is not None:
        await dispatcher.resume()
    return delivery


def ensure_deliverable(request: Request, url: str, field: str) -> None:
    """Refuse a webhook URL the server may not send to (https only, public addresses only)."""
    try:
        check_webhook_url(url, request.app.state.webhook_policy)
    except RefusedTarget as exc:
        raise InvalidInput(f"webhook URL refused: {exc}", field=field) from None


def _ensure_areas(conn: Connection, codes: list[str] | None) -> None:
    for i, code in enumerate(codes or []):
        ensure_area_exists(conn, code, f"body.area_codes.{i}")


def _refuse_nulls(changes: dict[str, Any]) -> None:
    """``null`` clears nothing here: every field has a value (lists may be empty)."""
    for name, value in changes.items():
        if value is None:
            raise InvalidInput(
                f"{name} cannot be null; leave it out to keep it", field=f"body.{name}"
            )
