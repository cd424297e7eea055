"""Webhooks, the pure parts: which subscription wants which alert, the signed body, and retries.

Nothing here does I/O; ``channels.py`` moves the bytes and keeps the delivery log.

A receiver checks a delivery by recomputing ``X-Haechi-Signature``: ``sha256=`` followed by the
hex HMAC-SHA256 of the raw request body, keyed with the subscription's secret (:func:`verify`).
``X-Haechi-Delivery`` is the same on every retry of one delivery, so a receiver can drop
duplicates (delivery is at least once).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

SIGNATURE_HEADER = "X-Haechi-Signature"
TIMESTAMP_HEADER = "X-Haechi-Timestamp"
DELIVERY_HEADER = "X-Haechi-Delivery"
EVENT_HEADER = "X-Haechi-Event"
USER_AGENT = "Haechi-Webhooks/1"

CAP_XML = "application/cap+xml"
JSON_MEDIA = "application/json"

#: CAP statuses that reach subscribers; System, Test and Draft messages stay inside.
DELIVERED_STATUSES = frozenset({"Actual", "Exercise"})
#: The CAP scope of what reaches subscribers; a Restricted alert (reaching no place) is for operators.
PUBLIC_SCOPE = "Public"


class BodyFormat(StrEnum):
    """What a subscription receives: JSON (CAP as JSON plus links) or the CAP XML itself."""

    JSON = "json"
    XML = "xml"


# ── signing ─────────────────────────────────────────────────────────────────────────────


def sign(secret: str, body: bytes) -> str:
    """The ``X-Haechi-Signature`` value: ``sha256=<hex HMAC-SHA256 of body keyed by secret>``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, body: bytes, signature: str) -> bool:
    """Whether ``signature`` is :func:`sign` of ``body`` with ``secret`` (constant-time check)."""
    return hmac.compare_digest(sign(secret, body), signature)


def signed_headers(
    secret: str, body: bytes, *, delivery_id: int, event: str, media_type: str, now: datetime
) -> dict[str, str]:
    """Every header of one delivery attempt."""
    return {
        "Content-Type": media_type,
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign(secret, body),
        TIMESTAMP_HEADER: str(int(now.timestamp())),
        DELIVERY_HEADER: str(delivery_id),
        EVENT_HEADER: event,
    }


# ── matching ────────────────────────────────────────────────────────────────────────────


def areas_overlap(alert_codes: Iterable[str], prefixes: Iterable[str]) -> bool:
    """Whether an alert's areas meet a subscription's (행정표준코드 prefixes; none = everywhere).

    Codes nest by prefix (11 Seoul ⊃ 11680 Gangnam ⊃ 1168010100 Yeoksam-dong), so the areas meet
    when one code starts with the other: a Gangnam subscriber gets a Yeoksam-dong alert, and also
    a Seoul-wide one, which covers Gangnam too.
    """
    prefixes = list(prefixes)
    if not prefixes:
        return True
    return any(
        code.startswith(prefix) or prefix.startswith(code)
        for code in alert_codes
        for prefix in prefixes
    )


def public(alert: Mapping[str, Any]) -> bool:
    """Whether a stored alert is for the public (CAP scope Public), not for operators only
    (Restricted: its warning reaches no place, see ``compose``)."""
    return (alert.get("cap_json") or {}).get("scope", PUBLIC_SCOPE) == PUBLIC_SCOPE


def wants(subscription: Mapping[str, Any], alert: Mapping[str, Any]) -> bool:
    """Whether ``subscription`` should receive ``alert`` (both as stored rows).

    Exercise alerts go only to subscriptions that opted in with ``include_exercises``: a drill
    must never reach a channel subscribed to actual alerts only.
    """
    if not subscription["active"] or alert["status"] not in DELIVERED_STATUSES or not public(alert):
        return False
    if alert["status"] == "Exercise" and not subscription["include_exercises"]:
        return False
    return areas_overlap(alert["area_codes"] or [], subscription["area_codes"] or [])


# ── the body ────────────────────────────────────────────────────────────────────────────


def primary_language(tag: str) -> str:
    """``ko-KR`` → ``ko``: subscriptions and ``?lang=`` name languages, CAP names locales."""
    return tag.split("-")[0].strip().lower()


def cap_alert(cap_json: Mapping[str, Any]) -> Mapping[str, Any]:
    """The CAP ``alert`` object, whether stored bare or wrapped as ``{"alert": {...}}``."""
    inner = cap_json.get("alert")
    return inner if isinstance(inner, Mapping) else cap_json


def info_blocks(cap_json: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The ``info`` blocks of a CAP alert as JSON (one per language); CAP allows one bare object."""
    info = cap_alert(cap_json).get("info") or []
    return [info] if isinstance(info, Mapping) else list(info)


def pick_infos(
    infos: Sequence[Mapping[str, Any]], languages: Iterable[str]
) -> list[Mapping[str, Any]]:
    """The blocks in ``languages`` (primary subtags; none = all).

    A subscriber whose languages the alert lacks still gets the first block (the original
    language) rather than an empty alert.
    """
    wanted = {primary_language(tag) for tag in languages}
    if not wanted:
        return list(infos)
    chosen = [i for i in infos if primary_language(i.get("language", "en-US")) in wanted]
    return chosen or list(infos[:1])


def pick_guidance(guidance: Any, audiences: Iterable[str]) -> Any:
    """The guidance map trimmed to ``audiences`` (none = all); anything else passes through."""
    wanted = set(audiences)
    if not wanted or not isinstance(guidance, Mapping):
        return guidance
    return {audience: text for audience, text in guidance.items() if audience in wanted}


def tailored_cap(
    cap_json: Mapping[str, Any], languages: Iterable[str], audiences: Iterable[str]
) -> dict[str, Any]:
    """The CAP JSON with only the subscriber's languages and audiences' guidance."""
    languages, audiences = list(languages), list(audiences)
    infos = [_trim_guidance(i, audiences) for i in pick_infos(info_blocks(cap_json), languages)]
    alert = _trim_guidance({**cap_alert(cap_json), "info": infos}, audiences)
    return {"alert": alert} if "alert" in cap_json else alert


def _trim_guidance(block: Mapping[str, Any], audiences: list[str]) -> dict[str, Any]:
    if "guidance" not in block:
        return dict(block)
    return {**block, "guidance": pick_guidance(block["guidance"], audiences)}


def alert_links(public_url: str, alert_id: int) -> dict[str, str]:
    """Where the alert can be read back: its CAP XML and its JSON."""
    base = f"{public_url.rstrip('/')}/api/v1/alerts/{alert_id}"
    return {"cap_xml": f"{base}.xml", "json": base}


def json_body(
    alert: Mapping[str, Any],
    subscription: Mapping[str, Any],
    *,
    delivery_id: int,
    event: str,
    public_url: str,
) -> bytes:
    """The JSON delivery: the alert's summary fields, links, and the tailored CAP JSON."""
    document = {
        "event": event,
        "delivery_id": delivery_id,
        "alert": {
            **{key: _plain(alert.get(key)) for key in SUMMARY_FIELDS},
            "exercise": alert["status"] == "Exercise",
            "links": alert_links(public_url, alert["id"]),
            "cap": tailored_cap(
                alert["cap_json"], subscription["languages"] or [], subscription["audiences"] or []
            ),
        },
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


#: The alert columns every JSON delivery carries beside the CAP JSON.
SUMMARY_FIELDS = (
    "id", "identifier", "sender", "sent", "status", "msg_type", "references", "hazard",
    "crisis_level", "severity", "urgency", "certainty", "area_codes", "expires",
)


def _plain(value: Any) -> Any:
    return value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value


def delivery_body(
    alert: Mapping[str, Any],
    subscription: Mapping[str, Any],
    *,
    delivery_id: int,
    event: str,
    public_url: str,
) -> tuple[bytes, str]:
    """(body, media type) of a delivery in the subscription's format."""
    if subscription.get("format") == BodyFormat.XML:
        return alert["cap_xml"].encode(), CAP_XML
    body = json_body(
        alert, subscription, delivery_id=delivery_id, event=event, public_url=public_url
    )
    return body, JSON_MEDIA


# ── retries ─────────────────────────────────────────────────────────────────────────────


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # worth trying again: network errors, 5xx, 429
    REJECTED = "rejected"  # the receiver refused it for good: other 4xx, redirects


def classify(status: int | None) -> Outcome:
    """What a response status means; ``None`` is a network error (nothing came back)."""
    if status is None or status == 429 or status >= 500:
        return Outcome.RETRY
    if 200 <= status < 300:
        return Outcome.DELIVERED
    # Redirects are not followed: the subscription's URL should be fixed instead.
    return Outcome.REJECTED


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff between attempts: ``base_s · factor^(n-1)`` seconds, capped.

    With the defaults an unreachable receiver is tried 10 times over about 17 minutes:
    1, 2, 4 … 256, then 600 s (the cap) before the last try.
    """

    base_s: float = 1.0
    factor: float = 2.0
    cap_s: float = 600.0
    max_attempts: int = 10

    def delay(self, attempts: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt.

        A receiver's ``Retry-After`` is honoured when longer, still within the cap.
        """
        wait = self.base_s * self.factor ** (attempts - 1)
        if retry_after_s is not None:
            wait = max(wait, retry_after_s)
        return min(wait, self.cap_s)


@dataclass(frozen=True, slots=True)
class Step:
    """What the delivery log says after an attempt, and when to try next (``None``: never)."""

    status: str  # pending · delivered · failed
    retry_in_s: float | None = None


def after_attempt(
    outcome: Outcome, attempts: int, backoff: Backoff, retry_after_s: float | None = None
) -> Step:
    """The delivery's next state after its ``attempts``-th attempt ended with ``outcome``."""
    if outcome is Outcome.DELIVERED:
        return Step("delivered")
    if outcome is Outcome.REJECTED or attempts >= backoff.max_attempts:
        return Step("failed")
    return Step("pending", backoff.delay(attempts, retry_after_s))


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header given in seconds; HTTP dates and junk are ignored."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None
