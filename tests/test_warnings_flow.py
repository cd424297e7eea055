"""From a river gauge crossing its flood stage to a valid CAP alert on the live stream and the feed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import feedparser
import httpx
from conftest import LiveServer, SseListener

from haechi.alerts.cap import from_xml, validate
from haechi.api.app import create_app
from haechi.cities.load import load_city
from haechi.store import access, sensing

T0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=4)


def test_gauge_crossing_its_stage_issues_updates_and_cancels_a_cap_alert(sqlite_engine):
    load_city(sqlite_engine, "seoul")
    with sqlite_engine.begin() as conn:
        _, token = access.create_token(conn, "gauge gateway", "device")
        level = next(p["id"] for p in sensing.stream_profiles(conn) if p["name"] == "Hangang Bridge water level")
    # Hangang Bridge: 홍수주의보 8.5 m, 경보 10.5 m (gauge height); lifted 0.3 m below, held 1 h
    series = [8.0, 8.6, 8.9, 10.6, 10.7] + [9.0] * 7 + [7.5] * 7
    def four_alerts(seen):
        return sum(1 for e, _ in seen if e == "alert.sent") == 4

    with LiveServer(create_app(sqlite_engine)) as server:
        with SseListener(f"{server.url}/api/v1/stream?types=alert.>,warning.>", four_alerts, timeout=30) as listener:
            for i, value in enumerate(series):  # one reading at a time, as a gauge reports
                answer = httpx.post(f"{server.url}/api/v1/observations",
                                    headers={"Authorization": f"Bearer {token}"},
                                    json=[{"datastream_id": level, "result": value,
                                           "phenomenon_time": (T0 + timedelta(minutes=10 * i)).isoformat()}])
                assert answer.status_code == 200
        alerts = [d for e, d in listener.seen if e == "alert.sent"]
        assert [(a["msg_type"], a["crisis_level"]) for a in alerts] == [
            ("Alert", "caution"), ("Update", "alert"), ("Update", "caution"), ("Cancel", None)]
        assert "홍수" in alerts[0]["headline"]["ko-KR"] and set(alerts[0]["headline"]) >= {
            "ko-KR", "en-US", "zh-CN", "ja-JP", "vi-VN"}

        first = httpx.get(f"{server.url}/api/v1/alerts/{alerts[0]['id']}.xml")
        validate(first.content)  # the official OASIS CAP 1.2 schema
        cap = from_xml(first.content)
        assert any(code.startswith("1159") for area in cap.infos[0].areas for code in
                   (g.value for g in area.geocodes))  # Dongjak-gu, the gauge's bank
        cancel = from_xml(httpx.get(f"{server.url}/api/v1/alerts/{alerts[3]['id']}.xml").content)
        assert cancel.references and cancel.references[-1].identifier == alerts[2]["identifier"]

        feed = feedparser.parse(httpx.get(f"{server.url}/alerts.atom").text)
        assert len(feed.entries) == 4
        assert httpx.get(f"{server.url}/api/v1/warnings").json() == []  # cancelled: none in force
