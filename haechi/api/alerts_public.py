"""Alerts for everyone: Atom feeds of CAP alerts, and each alert as CAP XML or JSON.

Only actual alerts are public by default; drills are shown when asked for (``?status=Exercise``)
and are marked as such. Test messages (end-to-end checks with an aggregator) are in the
aggregators' feed (``/alerts/aggregators.atom``, with the actual ones, as Google Public Alerts
asks) and readable by their links, but in no feed, list or page citizens are pointed to. System and
Draft messages are for operators only.

Every alert is signed (XML-DSig); the public key is at ``/alerts/signing-key.pem``. Each alert's
``<web>`` is its page here, ``/alerts/<identifier>.html``.

What is public is answered from memory (``public_cache``): rendered once per warning or alert
event, with a strong ETag (``If-None-Match`` → 304) and ``Cache-Control`` for caches in front.
"""

from __future__ import annotations

from email.utils import format_datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import Field, field_validator
from sqlalchemy import Engine

from haechi.alerts import feeds, issuer, page
from haechi.alerts.signing import PUBLIC_KEY_MEDIA
from haechi.alerts.webhooks import CAP_XML, alert_links, primary_language, public
from haechi.core.errors import NotFound
from haechi.model.access import Role
from haechi.store import alerting, areas
from haechi.store import warnings as alert_store

from .auth import identify
from .common import API_PREFIX, AreaCode, Db, Id, Limit, Moment, Offset, QueryParams, Record, UtcMoment
from .problems import PROBLEM_RESPONSES
from .public_cache import DOCUMENT, FEED, share

router = APIRouter(tags=["alerts"], responses=PROBLEM_RESPONSES)

#: Statuses of the feeds and lists people are pointed to; drills only when asked for.
PublicStatus = Literal["Actual", "Exercise"]
#: Statuses of the messages anyone may fetch by their link (an aggregator fetches Test ones too).
PUBLIC_STATUSES = frozenset({"Actual", "Exercise", "Test"})
#: What aggregators pull: actual alerts, and the tests they check the path with (and never show).
AGGREGATOR_STATUSES = ("Actual", "Test")
#: Roles that may read System, Test and Draft messages too.
STAFF = frozenset({Role.ADMIN, Role.OPERATOR})

AlertId = Id
DistrictCode = Annotated[
    str, Path(pattern=r"^\d{2,10}$", description="행정표준코드 of a district (or any area)")
]
Language = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$",
        description="Language of titles and summaries (ko, en, zh, ja, vi …); Korean when the "
        "alert lacks it",
    ),
]


class FeedQuery(QueryParams):
    lang: Language = "ko"
    status: PublicStatus = Field("Actual", description="Actual alerts, or drills (Exercise)")
    limit: int = Field(50, ge=1, le=500, description="Most entries")

    @field_validator("lang")
    @classmethod
    def _primary(cls, lang: str) -> str:
        return primary_language(lang)


class AlertFilter(QueryParams):
    status: PublicStatus = Field("Actual", description="Actual alerts, or drills (Exercise)")
    area: AreaCode | None = Field(None, description="Only alerts meeting this area (code prefix)")
    hazard: str | None = Field(None, max_length=32, description="e.g. heavy_rain, fine_dust")
    since: Moment | None = Field(None, description="Sent at or after (ISO 8601 with offset)")
    limit: Limit = 100
    offset: Offset = 0


class AlertSummary(Record):
    id: int
    identifier: str
    sender: str
    sent: UtcMoment
    status: str
    msg_type: str
    references: str | None
    hazard: str
    crisis_level: str | None
    severity: str
    urgency: str
    certainty: str
    area_codes: list[str] | None
    languages: list[str] | None
    affected: dict[str, Any] | None
    expires: UtcMoment | None
    links: dict[str, str] = Field(description="The alert as CAP XML (cap_xml) and as JSON (json)")


class Alert(AlertSummary):
    cap: dict[str, Any] = Field(description="The CAP 1.2 message as JSON, one info per language")


# ── feeds ───────────────────────────────────────────────────────────────────────────────

ATOM_RESPONSE = {200: {"content": {feeds.ATOM_MEDIA: {}}, "description": "Atom 1.0 feed"}}


@router.get(
    "/alerts.atom",
    response_class=Response,
    responses=ATOM_RESPONSE,
    summary="Atom feed of alerts · 재난 경보 Atom 피드",
)
def city_feed(request: Request, engine: Db, q: Annotated[FeedQuery, Query()]) -> Response:
    """Every public alert of the city, newest first; each entry links its CAP XML."""
    return _city_wide(request, engine, [q.status], "all", q)


# Declared before the district feed, whose path would otherwise take "aggregators" for a district.
@router.get(
    "/alerts/aggregators.atom",
    response_class=Response,
    responses=ATOM_RESPONSE,
    summary="Atom feed for alert aggregators (actual and Test) · 경보 수집기용 피드",
)
def aggregator_feed(request: Request, engine: Db, q: Annotated[FeedQuery, Query()]) -> Response:
    """Every actual alert of the city and the Test messages an aggregator checks the path with
    (Google Public Alerts wants tests in the production feed; it never shows them). Citizens are
    pointed to `/alerts.atom`, which has no tests."""
    actual = q.model_copy(update={"status": "Actual"})
    return _city_wide(request, engine, list(AGGREGATOR_STATUSES), "aggregators", actual)


def _city_wide(request: Request, engine: Engine, statuses: list[str], scope: str, q: FeedQuery) -> Response:
    """A feed of the whole city's public alerts of ``statuses``, named after the loaded city."""
    with engine.begin() as conn:
        city = next(iter(areas.list_areas(conn, level="city")), None)
        rows = alerting.list_alerts(conn, statuses=statuses, limit=q.limit)
    names = (city["name_ko"], city["name_en"]) if city else ("해치", "Haechi")
    return _feed_response(request, rows, scope, names, q)


@router.get(
    "/alerts/signing-key.pem",
    response_class=Response,
    responses={200: {"content": {PUBLIC_KEY_MEDIA: {}}, "description": "RSA public key, PEM (SubjectPublicKeyInfo)"}},
    summary="The key alerts are signed with · 경보 서명 공개키",
)
def signing_key(request: Request) -> Response:
    """The public key of the XML-DSig signature (RSA-SHA256) every CAP alert carries: check one with
    `xmlsec1 --verify --pubkey-pem signing-key.pem alert.xml` (docs/alerts.md)."""
    share(request, DOCUMENT)
    return Response(_issuer(request).signer.public_pem(), media_type=PUBLIC_KEY_MEDIA)


@router.get(
    "/alerts/{identifier}.html",
    response_class=HTMLResponse,
    summary="An alert's public page · 경보 안내 페이지",
)
def alert_page(
    request: Request, engine: Db,
    identifier: Annotated[str, Path(max_length=200, description="The CAP identifier")],
) -> HTMLResponse:
    """The alert in every language it was written in: the page its CAP `<web>` links."""
    with engine.begin() as conn:
        alert = alert_store.get_alert_by_identifier(conn, identifier)
    if alert is None or alert["status"] not in PUBLIC_STATUSES or not public(alert):
        raise NotFound(f"no alert {identifier!r}")
    share(request, DOCUMENT)
    links = alert_links(_public_url(request), alert["id"])
    return HTMLResponse(page.render(alert, links))


def _issuer(request: Request) -> issuer.Issuer:
    return getattr(request.app.state, "cap_issuer", None) or issuer.current()


@router.get(
    "/alerts/{district_code}.atom",
    response_class=Response,
    responses=ATOM_RESPONSE,
    summary="Atom feed of one district's alerts · 자치구별 재난 경보 피드",
)
def district_feed(
    request: Request, engine: Db, district_code: DistrictCode, q: Annotated[FeedQuery, Query()]
) -> Response:
    """Alerts meeting the area: inside it (code prefix) or covering it (e.g. Seoul-wide)."""
    with engine.begin() as conn:
        area = areas.get_area(conn, district_code, geometry=False)
        rows = alerting.list_alerts(
            conn, statuses=[q.status], area_code=district_code, limit=q.limit
        )
    return _feed_response(request, rows, district_code, (area["name_ko"], area["name_en"]), q)


def _feed_response(
    request: Request,
    rows: list[dict[str, Any]],
    scope: str,
    names: tuple[str, str | None],
    q: FeedQuery,
) -> Response:
    feed = feeds.Feed(
        id=feeds.feed_id(scope, q.status, q.lang),
        title=feeds.feed_title(*names, q.lang, q.status),
        self_url=str(request.url),
        language=q.lang,
    )
    body = feeds.render_feed(feed, rows, public_url=_public_url(request), language=q.lang)
    headers = {"ETag": feeds.etag(body)}  # conditional requests are answered by the public cache
    if rows:
        headers["Last-Modified"] = format_datetime(feeds.feed_updated(rows), usegmt=True)
    share(request, FEED)
    return Response(body, media_type=feeds.ATOM_MEDIA, headers=headers)


def _public_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


# ── alerts as JSON and CAP XML ──────────────────────────────────────────────────────────


@router.get(
    f"{API_PREFIX}/alerts",
    response_model=list[AlertSummary],
    summary="List alerts · 재난 경보 목록",
)
def list_alerts(
    request: Request, engine: Db, q: Annotated[AlertFilter, Query()]
) -> list[dict[str, Any]]:
    """Actual alerts, newest first (drills with `status=Exercise`). Staff also get the Restricted
    ones: alerts of warnings that reach no place (a sensor with no location), for operators only."""
    scopes = ("Public", "Restricted") if _is_staff(request, engine) else ("Public",)
    with engine.begin() as conn:
        rows = alerting.list_alerts(
            conn, statuses=[q.status], area_code=q.area, hazard=q.hazard, since=q.since,
            limit=q.limit, offset=q.offset, scopes=scopes,
        )
    share(request, FEED)
    return [_with_links(request, r) for r in rows]


# Declared before the JSON route: "/alerts/5.xml" would otherwise be read as id "5.xml".
@router.get(
    f"{API_PREFIX}/alerts/{{alert_id}}.xml",
    response_class=Response,
    responses={200: {"content": {CAP_XML: {}}, "description": "The CAP 1.2 message"}},
    summary="One alert as CAP XML · 재난 경보 (CAP XML)",
)
def alert_xml(request: Request, engine: Db, alert_id: AlertId) -> Response:
    """The CAP 1.2 message exactly as sent."""
    alert = _readable_alert(request, engine, alert_id)
    return Response(alert["cap_xml"], media_type=CAP_XML)


@router.get(
    f"{API_PREFIX}/alerts/{{alert_id}}",
    response_model=Alert,
    summary="One alert · 재난 경보 상세",
)
def alert_json(request: Request, engine: Db, alert_id: AlertId) -> dict[str, Any]:
    """The alert's fields and its CAP message as JSON."""
    alert = _readable_alert(request, engine, alert_id)
    return {**_with_links(request, alert), "cap": alert["cap_json"]}


def _readable_alert(request: Request, engine: Db, alert_id: int) -> dict[str, Any]:
    """The alert, if this caller may read it: anyone for public statuses, staff for the rest."""
    with engine.begin() as conn:
        alert = alerting.get_alert(conn, alert_id)
    if alert["status"] in PUBLIC_STATUSES and public(alert):
        share(request, DOCUMENT)  # never an unpublished one: those differ by who asks
    elif not _is_staff(request, engine):
        raise NotFound(f"no alert with id {alert_id}")  # unpublished messages are not disclosed
    return alert


def _is_staff(request: Request, engine: Db) -> bool:
    principal = identify(engine, request.scope).principal
    return principal is not None and principal.role in STAFF


def _with_links(request: Request, alert: dict[str, Any]) -> dict[str, Any]:
    return {**alert, "links": alert_links(_public_url(request), alert["id"])}
