"""Helpers for the channel tests: stored alerts and a real local HTTP receiver for webhooks.

Imported by ``test_channels*``, ``test_feeds*``, ``test_webhooks*`` and ``test_api_alerts_public*``
(it holds no tests itself). Alerts are inserted into the ``alerts`` table directly, with a small
CAP 1.2 message written here, so these tests depend on no CAP encoder.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from xml.sax.saxutils import escape

from sqlalchemy import Engine, insert

from haechi.core.clock import utcnow
from haechi.core.egress import WebhookPolicy
from haechi.store.schema import alerts

SENDER = "haechi@safety.seoul.go.kr"

#: The receivers here listen on 127.0.0.1 over plain http, which the default policy refuses.
LOCAL_WEBHOOK_SETTINGS = {"webhook_allow_http": True, "webhook_allowed_networks": ["127.0.0.1/32"]}
LOCAL_WEBHOOKS = WebhookPolicy.of(True, ["127.0.0.1/32"])
BASE_TIME = datetime(2024, 7, 10, 5, 0, tzinfo=UTC)

#: Headlines and descriptions per language, as the CAP composer would write them.
TEXTS = {
    "ko-KR": ("강남구 호우경보", "3시간 누적 강우량 90 mm 초과. 저지대 침수에 대비하십시오."),
    "en-US": (
        "Heavy rain warning for Gangnam-gu", "Over 90 mm of rain in 3 hours. Expect flooding."
    ),
    "zh-CN": ("江南区暴雨警报", "3小时累计降雨量超过90毫米。"),
}
GUIDANCE = {
    "general": {"ko": "지하 공간에서 벗어나십시오.", "en": "Leave underground spaces."},
    "elderly": {"ko": "이웃과 함께 대피하십시오.", "en": "Evacuate with a neighbour."},
    "foreigners": {"en": "Call 1330 for help in your language."},
}


def cap_json(identifier: str, status: str, msg_type: str, codes: list[str], languages: list[str],
             texts: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """The CAP message as JSON: one info per language, guidance per audience."""
    return {
        "identifier": identifier,
        "sender": SENDER,
        "status": status,
        "msgType": msg_type,
        "scope": "Public",
        "info": [
            {
                "language": lang,
                "category": ["Met"],
                "event": texts[lang][0],
                "urgency": "Immediate",
                "severity": "Severe",
                "certainty": "Observed",
                "headline": texts[lang][0],
                "description": texts[lang][1],
                "area": [{"areaDesc": " ".join(codes),
                          "geocode": [{"valueName": "KR-ADM", "value": c} for c in codes]}],
            }
            for lang in languages
        ],
        "guidance": GUIDANCE,
    }


def cap_xml(identifier: str, sent: datetime, status: str, msg_type: str, codes: list[str],
            languages: list[str], texts: dict[str, tuple[str, str]]) -> str:
    """A small CAP 1.2 message with the same content."""
    infos = "".join(
        f"<info><language>{lang}</language><category>Met</category>"
        f"<event>{escape(texts[lang][0])}</event><urgency>Immediate</urgency>"
        f"<severity>Severe</severity><certainty>Observed</certainty>"
        f"<headline>{escape(texts[lang][0])}</headline>"
        f"<description>{escape(texts[lang][1])}</description>"
        f"<area><areaDesc>{' '.join(codes)}</areaDesc>"
        + "".join(
            f"<geocode><valueName>KR-ADM</valueName><value>{c}</value></geocode>" for c in codes
        )
        + "</area></info>"
        for lang in languages
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
        f"<identifier>{identifier}</identifier><sender>{SENDER}</sender>"
        f"<sent>{sent.isoformat(timespec='seconds')}</sent><status>{status}</status>"
        f"<msgType>{msg_type}</msgType><scope>Public</scope>{infos}</alert>"
    )


def alert_row(
    identifier: str,
    *,
    status: str = "Actual",
    codes: list[str] | None = None,
    sent: datetime = BASE_TIME,
    hazard: str = "heavy_rain",
    msg_type: str = "Alert",
    languages: list[str] | None = None,
    texts: dict[str, tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """An ``alerts`` row with consistent CAP XML and JSON."""
    codes = codes or ["11680"]
    languages = languages or ["ko-KR", "en-US"]
    texts = texts or TEXTS
    return {
        "identifier": identifier,
        "sender": SENDER,
        "sent": sent,
        "status": status,
        "msg_type": msg_type,
        "hazard": hazard,
        "crisis_level": "alert",
        "severity": "Severe",
        "urgency": "Immediate",
        "certainty": "Observed",
        "area_codes": codes,
        "languages": languages,
        "affected": {"people": 536107, "elderly": 80000},
        "expires": sent + timedelta(hours=6),
        "cap_xml": cap_xml(identifier, sent, status, msg_type, codes, languages, texts),
        "cap_json": cap_json(identifier, status, msg_type, codes, languages, texts),
    }


def insert_alert(engine: Engine, identifier: str, **kw: Any) -> int:
    """Store an alert as the composer would; returns its id."""
    with engine.begin() as conn:
        stored = conn.execute(insert(alerts).values(**alert_row(identifier, **kw)))
        return stored.inserted_primary_key[0]


def subscription_row(name: str, url: str, **kw: Any) -> dict[str, Any]:
    """A ``subscriptions`` row with the API's defaults."""
    return {
        "name": name, "url": url, "secret": f"secret-of-{name}-0123456789",
        "area_codes": [], "languages": [], "audiences": [], "include_exercises": False,
        "active": True, "created_at": utcnow(), **kw,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ── the receiver ────────────────────────────────────────────────────────────────────────


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP server in a thread that records every POST and answers as scripted.

    ``answers`` are the statuses of the first requests, in order; later ones get ``default``.
    ``gate``, when cleared, holds every answer until it is set (a slow receiver).
    """

    answers: list[int] = field(default_factory=list)
    default: int = 200
    requests: list[Received] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)
    retry_after: str | None = None

    def __post_init__(self) -> None:
        self.gate.set()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # A short poll interval: shutdown() waits up to one interval.
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def fail_first(self, count: int, status: int = 500) -> Receiver:
        self.answers = [status] * count
        return self

    def _next_status(self) -> int:
        with self._lock:
            return self.answers.pop(0) if self.answers else self.default

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
                receiver.gate.wait(timeout=30)
                status = receiver._next_status()
                self.send_response(status)
                if receiver.retry_after and status in (429, 503):
                    self.send_header("Retry-After", receiver.retry_after)
                answer = b"ok" if status < 300 else f"refused with {status}".encode()
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()
