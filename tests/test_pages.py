"""The situation room and the citizen portal in a real browser (Debian's Chromium via Playwright):
live updates during an event, a station chart, language switching, hazard reports good and bad,
and an automated accessibility check. Screenshots go to docs/screenshots/."""

from __future__ import annotations

import csv
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from conftest import LiveServer, SseListener

from haechi.api.app import create_app
from haechi.cities.load import load_city
from haechi.store import access, sensing

# HAECHI_UPDATE_SCREENSHOTS=1 refreshes the README's pictures; otherwise they go to a temporary folder.
SCREENSHOTS = (Path(__file__).resolve().parents[1] / "docs" / "screenshots"
               if os.environ.get("HAECHI_UPDATE_SCREENSHOTS")
               else Path(tempfile.gettempdir()) / "haechi-screenshots")
SCENARIO_CSV = Path(__file__).resolve().parents[1] / "haechi" / "demo" / "scenarios" / "han-river-flood-2020.csv"
T0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    from haechi.store import open_db

    engine = open_db(f"sqlite:///{tmp_path_factory.mktemp('pages') / 'haechi.db'}")
    load_city(engine, "seoul")
    with engine.begin() as conn:
        tokens = {role: access.create_token(conn, role, role, **extra)[1] for role, extra in (
            ("device", {}), ("citizen", {}), ("operator", {"center": "situation_room"}))}
        level = next(p["id"] for p in sensing.stream_profiles(conn) if p["name"] == "Hangang Bridge water level")
    with LiveServer(create_app(engine)) as server:
        yield server.url, tokens, level
    engine.dispose()


def _axe_serious(page) -> list[str]:
    page.add_script_tag(url="/vendor/axe-core/axe.min.js")
    found = page.evaluate("async () => (await axe.run()).violations"
                          ".filter(v => ['serious', 'critical'].includes(v.impact))"
                          ".map(v => ({id: v.id, nodes: v.nodes.map(n => n.html.slice(0, 200))}))")
    if found:
        print("axe:", found)  # the offending elements, for whoever reads the failure
    return [v["id"] for v in found]


def test_the_situation_room_follows_a_flood_live(browser, city):
    url, tokens, level = city
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{url}/room")
    page.wait_for_function("document.querySelectorAll('#map [data-code]').length === 25")
    for i, value in enumerate([8.0, 8.6, 8.9]):  # the Hangang Bridge gauge crosses its 8.5 m stage
        httpx.post(f"{url}/api/v1/observations", headers={"Authorization": f"Bearer {tokens['device']}"},
                   json=[{"datastream_id": level, "result": value,
                          "phenomenon_time": (T0 + timedelta(minutes=10 * i)).isoformat()}])
    page.wait_for_selector("#warnings .warning-item", timeout=15_000)
    page.wait_for_selector("#timeline .timeline-item", timeout=15_000)
    assert "river_flood" in page.inner_text("#warnings") or "홍수" in page.inner_text("#warnings")
    page.select_option("#station-select", str(level))
    page.wait_for_selector("#chart canvas", timeout=10_000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "situation-room.png"))
    assert _axe_serious(page) == []
    page.close()


def test_the_server_forecasts_the_river_by_itself_and_the_room_marks_the_warning_as_a_forecast(browser, tmp_path):
    """Real readings of 6 August 2020 (06:00–10:30 KST) posted to a running server: on each gauge
    reading its river model forecasts the Hangang Bridge gauge, and the advisory it raises shows in
    the room marked as a forecast while no reading has yet reached the 8.5 m stage."""
    from haechi.predict import live
    from haechi.store import open_db

    engine = open_db(f"sqlite:///{tmp_path / 'haechi.db'}")
    load_city(engine, "seoul")
    with engine.begin() as conn:
        device = access.create_token(conn, "gauges", "device")[1]
        streams = live.station_streams(conn, ("river_gauge", "dam"), ("water_level", "discharge"))
    columns = {"hangang_level_m": streams[("river_gauge", "1018683", "water_level")],
               "paldang_release_m3s": streams[("dam", "paldang", "discharge")],
               "cheongdam_flow_m3s": streams[("river_gauge", "1018662", "discharge")]}
    with open(SCENARIO_CSV, encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if "2020-08-06 06:00" <= r["time_kst"] <= "2020-08-06 10:30"]
    assert max(float(r["hangang_level_m"]) for r in rows) < 8.5  # the river itself is still below the stage

    with LiveServer(create_app(engine)) as server:
        def post(batch):
            answer = httpx.post(f"{server.url}/api/v1/observations", headers={"Authorization": f"Bearer {device}"},
                                json=[{"datastream_id": stream, "result": float(r[column]),
                                       "phenomenon_time": f"{r['time_kst'].replace(' ', 'T')}:00+09:00"}
                                      for r in batch for column, stream in columns.items() if r[column]])
            assert answer.status_code in (200, 201, 207), answer.text
        post(rows[:-6])
        for row in rows[-6:]:  # one step every 10 minutes, as the gauges report
            post([row])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{server.url}/room")
        forecast = page.locator("#warnings .warning-item", has=page.locator(".tag.forecast"))
        forecast.wait_for(timeout=15_000)
        assert "예측" in forecast.inner_text() and "홍수" in forecast.inner_text()
        assert _axe_serious(page) == []
        page.close()
    engine.dispose()


def test_the_citizen_portal_shows_alerts_and_takes_reports(browser, city):
    url, tokens, _ = city
    issued = httpx.post(f"{url}/api/v1/alerts", headers={"Authorization": f"Bearer {tokens['operator']}"},
                        json={"hazard": "heavy_rain", "level": "warning", "area": "11590", "value": 95})
    assert issued.status_code == 201
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(f"{url}/portal")
    page.select_option("#lang-select", "en")
    page.select_option("#area-select", "11590")
    page.wait_for_function("document.querySelector('#alerts').innerText.includes('heavy rain') || "
                           "document.querySelector('#alerts').innerText.toLowerCase().includes('rain')",
                           timeout=15_000)
    page.select_option("#lang-select", "ko")
    page.wait_for_function("document.querySelector('#alerts').innerText.includes('호우')", timeout=10_000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "citizen-portal.png"))
    assert _axe_serious(page) == []
    page.close()


def test_a_hazard_report_is_refused_clearly_then_accepted(browser, city):
    url, tokens, _ = city
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(f"{url}/portal?lang=en&area=11680")
    page.fill("#report-token", tokens["citizen"])
    page.fill("#report-lat", "37.4979")  # half a location: refused, naming the field
    page.fill("#report-description", "A sinkhole opened in the pavement")
    page.click("#report-form [type=submit]")
    page.wait_for_selector("#report-error:not([hidden])", timeout=10_000)
    assert "lon" in page.inner_text("#report-error").lower()
    page.fill("#report-lon", "127.0276")
    page.click("#report-form [type=submit]")
    page.wait_for_selector("#report-ok:not([hidden])", timeout=10_000)
    reports = httpx.get(f"{url}/api/v1/reports", headers={"Authorization": f"Bearer {tokens['operator']}"}).json()
    assert any(r["description"] == "A sinkhole opened in the pavement" for r in reports)
    page.close()


def test_an_operator_acknowledges_a_warning_and_reads_the_district_panel(browser, city):
    url, tokens, _ = city
    issued = httpx.post(f"{url}/api/v1/alerts", headers={"Authorization": f"Bearer {tokens['operator']}"},
                        json={"hazard": "fine_dust", "level": "advisory", "area": "11680", "value": 160})
    assert issued.status_code == 201
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}/room")
    page.wait_for_function("document.querySelectorAll('#map [data-code]').length === 25")
    page.fill("#f-token", tokens["operator"])
    page.dispatch_event("#f-token", "change")
    page.select_option("#district-select", "11680")
    page.wait_for_function("document.querySelector('#district-summary').innerText.includes('강남구')", timeout=10_000)
    panel = page.inner_text("#district-summary")
    assert "인구" in panel and "미세먼지" in panel  # people, and the warning in force there
    # the operator's token opens the incident queue and the units
    page.wait_for_function("document.querySelector('#incidents').innerText.includes('가용 출동대')", timeout=10_000)
    dust = page.locator("#warnings .warning-item", has_text="미세먼지")
    acknowledged = lambda seen: any(kind == "warning.acknowledged" for kind, _ in seen)
    with SseListener(f"{url}/api/v1/stream?types=warning.>", acknowledged, timeout=15) as other_room:
        dust.locator(".ack-w").click()
        dust.locator(".ack").wait_for(timeout=10_000)
    assert "확인됨" in dust.inner_text()
    # every room hears of it over the live stream, and this room's timeline records it
    assert [d["acknowledged_by"] for kind, d in other_room.seen if kind == "warning.acknowledged"] == ["situation_room"]
    page.wait_for_function("[...document.querySelectorAll('#timeline .timeline-item')]"
                           ".some(li => li.dataset.kind === 'ack')", timeout=10_000)
    warnings = httpx.get(f"{url}/api/v1/warnings").json()
    assert any(w["hazard"] == "fine_dust" and w["acknowledged_by"] == "situation_room" for w in warnings)
    assert _axe_serious(page) == []
    page.close()


def test_a_citizen_attaches_a_photo_finds_a_route_and_subscribes(browser, city, tmp_path):
    url, tokens, _ = city
    photo = tmp_path / "drain.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 128)
    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    page.goto(f"{url}/portal?lang=en&area=11680")
    page.wait_for_function("document.querySelector('#feed-link').getAttribute('href') === '/alerts/11680.atom'")
    page.fill("#report-token", tokens["citizen"])
    page.fill("#report-lat", "37.4979")
    page.fill("#report-lon", "127.0276")
    page.fill("#report-description", "The drain is blocked with leaves")
    page.set_input_files("#report-photo", str(photo))
    page.click("#report-form [type=submit]")
    page.wait_for_selector("#report-ok:not([hidden])", timeout=10_000)
    staff = {"Authorization": f"Bearer {tokens['operator']}"}
    page.wait_for_function("document.querySelector('#report-photo').value === ''", timeout=10_000)
    [report] = [r for r in httpx.get(f"{url}/api/v1/reports", headers=staff).json()
                if r["description"] == "The drain is blocked with leaves"]
    [stored] = httpx.get(f"{url}/api/v1/reports/{report['id']}/photos", headers=staff).json()
    assert stored["content_type"] == "image/png"
    shelters = httpx.get(f"{url}/api/v1/places?kind=shelter&limit=1").json()
    if shelters:  # the pack has shelters: the route is drawn and described
        page.wait_for_selector("#shelters .route-btn", timeout=10_000)
        page.click("#shelters .route-btn")
        page.wait_for_function("document.querySelector('#route-status').innerText.length > 0", timeout=10_000)
        assert "straight line" in page.inner_text("#route-status") or "by road" in page.inner_text("#route-status")
    page.close()


def test_the_risk_index_colours_the_districts_for_an_operator(browser, city):
    url, tokens, _ = city
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}/room")
    page.wait_for_function("document.querySelectorAll('#map [data-code]').length === 25")
    page.select_option("#layer-select", "risk")  # without a token: refused clearly, back to warnings
    page.wait_for_function("document.querySelector('#issue-error').innerText.length > 0")
    assert page.input_value("#layer-select") == "warnings"
    page.fill("#f-token", tokens["operator"])
    page.select_option("#layer-select", "risk")
    page.wait_for_function("[...document.querySelectorAll('#map [data-code]')]"
                           ".filter(e => e.dataset.value).length === 25", timeout=20_000)
    assert "위험도" in page.inner_text("#legend")
    assert _axe_serious(page) == []
    page.close()


def test_a_what_if_earthquake_is_drawn_by_shaking_per_dong(browser, city):
    import time

    url, tokens, _ = city
    staff = {"Authorization": f"Bearer {tokens['operator']}"}
    started = httpx.post(f"{url}/api/v1/simulations", headers=staff, json={
        "kind": "quake", "params": {"lon": 126.978, "lat": 37.5665, "magnitude": 5.8, "depth_km": 15}})
    assert started.status_code == 202, started.text
    for _ in range(600):
        if httpx.get(f"{url}{started.headers['location']}", headers=staff).json()["status"] == "done":
            break
        time.sleep(0.1)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}/room")
    page.wait_for_function("document.querySelectorAll('#map [data-code]').length === 25")
    page.fill("#f-token", tokens["operator"])
    page.select_option("#layer-select", "simulation")
    # 25 districts plus one shape per dong of Seoul
    page.wait_for_function("document.querySelectorAll('#map .leaflet-overlay-pane path').length > 400", timeout=20_000)
    assert "진도" in page.inner_text("#legend")
    page.close()


def test_the_room_maps_the_monitoring_network_and_colours_a_station_by_its_reading(browser, tmp_path):
    """About 900 stations (AirKorea, KMA, S-DoT) drawn on one canvas with a bilingual legend; a PM10 reading
    above the advisory level turns its sensor's dot to that level live, and the dense S-DoT layer can be hidden."""
    from haechi.store import open_db

    engine = open_db(f"sqlite:///{tmp_path / 'haechi.db'}")
    report = load_city(engine, "seoul")
    with engine.begin() as conn:
        device = access.create_token(conn, "sdot gateway", "device")[1]
    shown = sum(report.places.get(k, 0) for k in ("air_station", "weather_station", "sdot_sensor"))
    assert shown >= 880  # 920 with the AirKorea list from ../shared/data
    with LiveServer(create_app(engine)) as server:
        sensor = httpx.get(f"{server.url}/api/v1/stations?kind=sdot_sensor").json()["stations"][0]
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{server.url}/room")
        page.wait_for_function(f"document.querySelector('#map').dataset.stations === '{shown}'", timeout=15_000)
        assert page.locator(".leaflet-network-pane canvas").count() == 1  # one canvas, not ~900 SVG nodes
        legend = page.inner_text("#legend")
        for words in ("대기측정소", "Air-quality stations", "기상관측소", "Weather stations", "S-DoT", "자료 없음",
                      "PM10"):
            assert words in legend, words
        assert page.evaluate(f"window.haechiRoom.network.byId[{sensor['id']}].level") == "nodata"
        assert "기상청 관측지점정보" in page.inner_text(".leaflet-control-attribution")  # the publishers are credited

        when = (datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)).isoformat()
        stored = httpx.post(f"{server.url}/api/v1/observations", headers={"Authorization": f"Bearer {device}"},
                            json=[{"datastream_id": sensor["streams"]["pm10"], "result": 170, "phenomenon_time": when}])
        assert stored.status_code == 200, stored.text
        page.wait_for_function(f"window.haechiRoom.network.byId[{sensor['id']}].level === 'attention'", timeout=15_000)
        fill = page.evaluate(f"window.haechiRoom.network.markers.get({sensor['id']}).options.fillColor")
        # the dot takes the colour the legend gives the level (관심 · attention)
        assert fill.lower() == page.evaluate(
            "getComputedStyle(document.documentElement).getPropertyValue('--lv-attention').trim().toLowerCase()")

        page.uncheck("#toggle-sdot")
        assert page.evaluate("!window.haechiRoom.network.layers.sdot_sensor._map")
        page.check("#toggle-sdot")
        assert page.evaluate("!!window.haechiRoom.network.layers.sdot_sensor._map")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "situation-room-network.png"))
        assert _axe_serious(page) == []
        page.close()
    engine.dispose()


def test_a_busy_server_makes_the_portal_wait_and_send_the_report_again(browser, tmp_path):
    """On a disaster day a carrier's whole NAT reports at once: beyond its limit the server answers
    429 with Retry-After, and the portal says, in the citizen's language, that it will send the
    report again by itself, waits, and sends it; no report is lost."""
    from haechi.api.shedding import CONFIG
    from haechi.core.settings import Settings
    from haechi.store import open_db

    shipped = CONFIG.read_text(encoding="utf-8")
    assert "burst = 20\nper_minute = 20" in shipped  # the hazard reports' limit, lowered here to one at a time
    own = tmp_path / "shedding.toml"
    own.write_text(shipped.replace("burst = 20\nper_minute = 20", "burst = 1\nper_minute = 30"), encoding="utf-8")
    engine = open_db(f"sqlite:///{tmp_path / 'haechi.db'}")
    with engine.begin() as conn:
        _, citizen = access.create_token(conn, "citizen", "citizen")
        _, operator = access.create_token(conn, "operator", "operator", center="situation_room")
    with LiveServer(create_app(engine, Settings(shedding_file=str(own)))) as server:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(f"{server.url}/portal?lang=ja")
        page.fill("#report-token", citizen)
        page.fill("#report-lat", "37.4979")
        page.fill("#report-lon", "127.0276")
        for description in ("Water over the kerb", "The drain is blocked too"):
            page.fill("#report-description", description)
            page.click("#report-form [type=submit]")
            if description.startswith("The drain"):  # the address's bucket is empty: told, in Japanese
                page.wait_for_function("document.querySelector('#report-ok').innerText.includes('自動で再送信')",
                                       timeout=10_000)
                assert page.is_disabled("#report-form [type=submit]")  # not sent twice meanwhile
            page.wait_for_function("document.querySelector('#report-ok').innerText.includes('受付番号')",
                                   timeout=15_000)
        assert page.is_hidden("#report-error")
        page.close()
        reports = httpx.get(f"{server.url}/api/v1/reports", headers={"Authorization": f"Bearer {operator}"}).json()
        assert {"Water over the kerb", "The drain is blocked too"} <= {r["description"] for r in reports}
    engine.dispose()
