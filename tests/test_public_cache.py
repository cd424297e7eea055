"""Public reads from memory: rendered once per change, dropped on warning and alert events, with
strong ETags, 304s, HEAD and Cache-Control fit for caches in front; staff answers never shared."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time

import httpx
import pytest
from conftest import LiveServer, _empty_postgres, service_unavailable
from fastapi.testclient import TestClient
from sqlalchemy import event as sa_event
from test_channels_support import insert_alert
from test_scale_out import NATS_URL

from haechi.api import public_cache
from haechi.api.app import create_app
from haechi.api.public_cache import EVENT_FRESH_S, FEED, PAGE, PublicCache, accepts_gzip, make_entry
from haechi.cities.load import load_city
from haechi.core.events import Event
from haechi.core.settings import Settings
from haechi.model.events import ALERT_SENT
from haechi.store import access, open_db, schema
from haechi.web import FINGERPRINT_CHARS, STATIC

RAIN = {"hazard": "heavy_rain", "level": "advisory", "area": "11680", "value": 72.5}
FEED_CONTROL = "public, max-age=10, stale-while-revalidate=30"
YEAR_CONTROL = "public, max-age=31536000, immutable"


class Queries:
    """Counts the SQL statements an engine runs: an answer from memory runs none."""

    def __init__(self, engine) -> None:
        self.statements: list[str] = []
        sa_event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, *args) -> None:
        self.statements.append(statement)

    def during(self, call):
        result, ran = self.during_statements(call)
        return result, len(ran)

    def during_statements(self, call):
        before = len(self.statements)
        result = call()
        return result, self.statements[before:]


@pytest.fixture
def city(engine):
    load_city(engine, "seoul")
    with engine.begin() as conn:
        _, operator = access.create_token(conn, "situation room", "operator", center="situation_room")
    client = TestClient(create_app(engine))
    return client, {"Authorization": f"Bearer {operator}"}


@pytest.fixture
def small(sqlite_engine):
    """The embedded default with no city: enough for the pages, assets and an inserted alert."""
    return TestClient(create_app(sqlite_engine)), sqlite_engine


# ── from memory, until an event ────────────────────────────────────────────────────────────


def test_the_feed_and_the_warnings_are_read_from_memory_until_a_warning_changes(city, engine):
    client, operator = city
    queries = Queries(engine)
    for path in ("/alerts.atom", "/alerts/11680.atom", "/api/v1/warnings"):
        first, ran = queries.during(lambda p=path: client.get(p))
        assert first.status_code == 200 and ran > 0, path
        again, ran = queries.during(lambda p=path: client.get(p))
        assert (again.status_code, ran, again.content) == (200, 0, first.content), path  # no SQL at all

    issued = client.post("/api/v1/alerts", json=RAIN, headers=operator)  # warning.changed, alert.sent
    assert issued.status_code == 201, issued.text
    [warning] = client.get("/api/v1/warnings").json()
    assert warning["area_code"] == "11680" and warning["acknowledged_by"] is None
    assert issued.json()["identifier"] in client.get("/alerts.atom").text
    assert issued.json()["identifier"] in client.get("/alerts/11680.atom").text

    seen = client.post(f"/api/v1/warnings/{warning['id']}/acknowledge", headers=operator)  # warning.acknowledged
    assert seen.status_code == 200, seen.text
    [warning] = client.get("/api/v1/warnings").json()
    assert warning["acknowledged_by"] == "situation_room"

    client.post(f"/api/v1/warnings/{warning['id']}/cancel", headers=operator)
    assert client.get("/api/v1/warnings").json() == []


def test_an_alert_document_is_kept_once_rendered(city, engine):
    client, operator = city
    alert = client.post("/api/v1/alerts", json=RAIN, headers=operator).json()
    queries = Queries(engine)
    for path in (f"/api/v1/alerts/{alert['id']}.xml", f"/api/v1/alerts/{alert['id']}"):
        first = client.get(path)
        assert first.status_code == 200 and first.headers["cache-control"] == "public, max-age=300"
        again, ran = queries.during(lambda p=path: client.get(p))
        assert (ran, again.content) == (0, first.content)


def test_a_write_whose_event_is_not_heard_shows_within_the_freshness_bound(small, monkeypatch):
    """``haechi alert issue`` writes beside the server on a bus of its own: no event reaches the
    cache, so an answer is kept at most EVENT_FRESH_S, as long as any cache in front keeps it."""
    client, engine = small
    before = client.get("/alerts.atom").text
    insert_alert(engine, "quiet-1")
    assert client.get("/alerts.atom").text == before  # kept: no event said otherwise
    real = public_cache.time.monotonic
    monkeypatch.setattr(public_cache.time, "monotonic", lambda: real() + EVENT_FRESH_S + 1)
    assert "quiet-1" in client.get("/alerts.atom").text


# ── areas and places: what every portal reads, from memory within a bound ──────────────────

#: The area and place reads the portal and the room make, as a citizen's browser asks them.
AREA_AND_PLACE_READS = (
    "/api/v1/areas?level=district", "/api/v1/areas/11680?geometry=true", "/api/v1/areas.geojson?level=district",
    "/api/v1/areas/at?lon=127.0276&lat=37.4979&level=district", "/api/v1/areas/11680/summary",
    "/api/v1/places?kind=shelter", "/api/v1/places?kind=shelter&area=11680&limit=3",
    "/api/v1/places/nearest?lon=127.0276&lat=37.4979&kind=shelter&limit=3",
)
NEW_SHELTER = {"kind": "shelter", "ref": "S-CACHE-1", "name_ko": "캐시 시험 대피소", "area_code": "11680",
               "lon": 127.0277, "lat": 37.4980, "shelter_kind": "earthquake_outdoor", "capacity": 500}


def test_areas_and_places_are_read_from_memory_by_citizens_and_from_the_database_by_staff(city, engine):
    client, operator = city
    queries = Queries(engine)
    for path in AREA_AND_PLACE_READS:
        first, ran = queries.during(lambda p=path: client.get(p))
        assert first.status_code == 200 and ran > 0, path
        again, ran = queries.during(lambda p=path: client.get(p))
        assert (again.status_code, ran, again.content) == (200, 0, first.content), path
        staff, ran = queries.during(lambda p=path: client.get(p, headers=operator))
        assert ran > 0 and staff.headers["cache-control"] == "private, no-store", path
    assert client.get("/api/v1/areas?level=district").headers["cache-control"] == public_cache.REFERENCE.cache_control
    assert client.get("/api/v1/places?kind=shelter").headers["cache-control"] == FEED_CONTROL


def test_a_shelter_saved_over_the_api_reaches_citizens_within_the_bound(city, monkeypatch):
    client, operator = city
    path = "/api/v1/places/nearest?lon=127.0276&lat=37.4979&kind=shelter&limit=3"
    before = [p["ref"] for p in client.get(path).json()]
    assert client.post("/api/v1/places", json={"places": [NEW_SHELTER]}, headers=operator).status_code == 200
    assert client.get(path, headers=operator).json()[0]["ref"] == "S-CACHE-1"  # staff see it at once
    assert [p["ref"] for p in client.get(path).json()] == before  # citizens: kept, as a cache in front would
    real = public_cache.time.monotonic
    monkeypatch.setattr(public_cache.time, "monotonic", lambda: real() + public_cache.PLACES.keep_s + 1)
    assert client.get(path).json()[0]["ref"] == "S-CACHE-1"


def test_areas_changed_by_a_city_load_beside_the_server_show_within_the_bound(city, engine, monkeypatch):
    """``haechi city load`` writes the areas from another process: no event, a minute's bound."""
    client, _ = city

    def names() -> dict[str, str]:
        return {a["code"]: a["name_en"] for a in client.get("/api/v1/areas?level=district").json()}

    assert names()["11680"] == "Gangnam-gu"
    with engine.begin() as conn:
        conn.execute(schema.admin_areas.update().where(schema.admin_areas.c.code == "11680")
                     .values(name_en="Gangnam District"))
    assert names()["11680"] == "Gangnam-gu"
    real = public_cache.time.monotonic
    monkeypatch.setattr(public_cache.time, "monotonic", lambda: real() + public_cache.REFERENCE.keep_s + 1)
    assert names()["11680"] == "Gangnam District"


def test_an_event_on_the_bus_drops_the_kept_answers_of_every_view(small):
    client, engine = small
    etags = {p: client.get(p).headers["etag"] for p in ("/alerts.atom", "/api/v1/alerts", "/api/v1/warnings")}
    new_id = insert_alert(engine, "heard-1")
    asyncio.run(client.app.state.bus.publish(Event(ALERT_SENT, {"id": new_id, "identifier": "heard-1"})))
    assert client.get("/alerts.atom").headers["etag"] != etags["/alerts.atom"]
    assert client.get("/api/v1/alerts").headers["etag"] != etags["/api/v1/alerts"]
    assert "heard-1" in client.get("/alerts.atom").text


def test_after_an_event_a_surge_of_readers_costs_one_render(small):
    """The moment an alert is sent everyone reloads: concurrent misses wait for one render."""
    from concurrent.futures import ThreadPoolExecutor

    _, engine = small
    app = create_app(engine)
    queries = Queries(engine)
    with LiveServer(app) as server:
        _, one_render = queries.during_statements(lambda: httpx.get(f"{server.url}/alerts.atom").raise_for_status())
        app.state.public_cache.invalidate()  # as on alert.sent
        with ThreadPoolExecutor(32) as pool:
            answers, ran = queries.during_statements(lambda: list(pool.map(
                lambda _: httpx.get(f"{server.url}/alerts.atom", timeout=30), range(64))))
    # The server's own jobs (membership heartbeat, silence watch) may query meanwhile: only the
    # feed's statements count, and they ran once.
    assert {a.status_code for a in answers} == {200}
    assert [s for s in ran if s in one_render] == one_render


def test_a_render_begun_before_an_invalidation_is_not_kept():
    cache = PublicCache()
    key = ("http", b"testserver", "/alerts.atom", b"")
    generation = cache._generation
    cache.invalidate()  # an alert was sent while the old feed was being rendered
    entry = make_entry([], b"old feed", FEED)
    assert cache.put(key, entry, generation) is False and len(cache) == 0
    assert cache.put(key, entry, cache._generation) is True and len(cache) == 1


def test_pages_and_assets_outlive_events_and_memory_stays_bounded():
    cache = PublicCache(max_bytes=10)
    page = ("http", b"h", "/portal", b"")
    cache.put(page, make_entry([], b"12345", PAGE), 0)
    cache.invalidate()
    assert cache.get(page, 1e9) is not None  # a page changes only with a release
    for i in range(5):
        cache.put(("http", b"h", f"/a{i}", b""), make_entry([], b"1234", PAGE), cache._generation)
    assert len(cache) == 2 and cache._bytes <= 10  # the least recently used went first


# ── conditional GET, HEAD, Cache-Control ───────────────────────────────────────────────────


def public_paths(client, engine) -> list[str]:
    alert_id = insert_alert(engine, "public-1")
    room = client.get("/room").text
    script = re.search(r'src="(/static/room\.js\?v=[0-9a-f]+)"', room)[1]
    return ["/alerts.atom", "/api/v1/warnings", f"/api/v1/alerts/{alert_id}.xml", f"/api/v1/alerts/{alert_id}",
            "/api/v1/alerts", "/portal", "/room", script, "/static/portal.css", "/openapi.json"]


def test_every_public_answer_has_a_strong_etag_and_answers_if_none_match_with_304(small):
    client, engine = small
    for path in public_paths(client, engine):
        first = client.get(path)
        etag = first.headers["etag"]
        assert first.status_code == 200 and re.fullmatch(r'"[0-9a-f]{32}(-gz)?"', etag), (path, etag)  # strong
        again = client.get(path, headers={"If-None-Match": etag})
        assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag), path
        assert client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200, path
        assert client.get(path, headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304, path


def test_head_is_answered_wherever_get_is_public(small):
    client, engine = small
    for path in [*public_paths(client, engine), "/api/v1/areas", "/livez", "/api/v1/criteria"]:
        got, head = client.get(path), client.head(path)
        assert (head.status_code, head.content) == (200, b""), path
        for name in ("content-length", "content-type", "etag", "cache-control"):
            assert head.headers.get(name) == got.headers.get(name), (path, name)


def test_cache_control_fits_each_kind_of_answer(small):
    client, _ = small
    room = client.get("/room")
    assert room.headers["cache-control"] == "public, max-age=60"
    assert client.get("/alerts.atom").headers["cache-control"] == FEED_CONTROL
    assert client.get("/api/v1/warnings").headers["cache-control"] == FEED_CONTROL
    for name in ("room.js", "room.css"):
        [versioned] = re.findall(rf'"(/static/{re.escape(name)}\?v=([0-9a-f]+))"', room.text)
        url, digest = versioned
        content = (STATIC / name).read_bytes()
        assert digest == hashlib.sha256(content).hexdigest()[:FINGERPRINT_CHARS]  # named by its content
        asset = client.get(url)
        assert asset.content == content and asset.headers["cache-control"] == YEAR_CONTROL
        # Without its fingerprint, or with another release's, it is not promised for a year.
        assert client.get(f"/static/{name}").headers["cache-control"] == "public, max-age=60"
        assert client.get(f"/static/{name}?v=000000000000").headers["cache-control"] == "public, max-age=60"
    assert "/static/portal.js?v=" in client.get("/portal").text


def test_text_is_kept_gzipped_too_for_the_clients_that_take_it(small):
    client, _ = small
    plain = client.get("/openapi.json", headers={"Accept-Encoding": "identity"})
    packed = client.get("/openapi.json", headers={"Accept-Encoding": "br, gzip;q=0.8"})
    assert "content-encoding" not in plain.headers and packed.headers["content-encoding"] == "gzip"
    assert packed.content == plain.content  # the same document, a tenth of the bytes on the wire
    assert int(packed.headers["content-length"]) < len(plain.content) / 5
    assert packed.headers["etag"] != plain.headers["etag"]  # another representation, another strong tag
    assert packed.headers["vary"] == "Accept-Encoding, Authorization"
    again = client.get("/openapi.json", headers={"Accept-Encoding": "gzip", "If-None-Match": packed.headers["etag"]})
    assert again.status_code == 304
    refused = client.get("/openapi.json", headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert "content-encoding" not in refused.headers
    assert [accepts_gzip(v) for v in (b"gzip", b"*", b"deflate, GZIP;q=0.5", b"gzip;q=0.0", b"br")] == [
        True, True, True, False, False]


# ── staff and citizens never mix ───────────────────────────────────────────────────────────


def test_staff_answers_are_private_and_never_reach_citizens(engine):
    from test_api_support import build_world

    world = build_world(engine)
    client, operator = world.client, world.auth("operator")
    test_id = insert_alert(engine, "draft-1", status="Draft")  # an unpublished message: staff only
    path = f"/api/v1/alerts/{test_id}"
    staff = client.get(path, headers=operator)
    assert staff.status_code == 200 and staff.headers["cache-control"] == "private, no-store"
    assert client.get(path).status_code == 404  # the staff answer was not kept for anyone
    assert client.get(f"{path}.xml").status_code == 404
    assert client.get(f"{path}.xml", headers=operator).headers["cache-control"] == "private, no-store"

    anonymous = client.get("/api/v1/warnings")
    kept = len(client.app.state.public_cache)
    staff_view = client.get("/api/v1/warnings", headers=operator)
    assert staff_view.headers["cache-control"] == "private, no-store" and "etag" not in staff_view.headers
    assert len(client.app.state.public_cache) == kept  # a staff request stores nothing
    assert client.get("/api/v1/warnings").headers["cache-control"] == anonymous.headers["cache-control"]
    assert client.get("/api/v1/areas", headers=operator).headers["cache-control"] == "private, no-store"


def test_cache_hits_are_counted_under_their_route(small):
    client, _ = small
    for _ in range(3):
        client.get("/alerts.atom")
    metrics = client.get("/metrics").text
    assert 'haechi_http_requests_total{method="GET",route="/alerts.atom",status="200"} 3.0' in metrics


# ── replicas ───────────────────────────────────────────────────────────────────────────────


@pytest.fixture
def nats_up():
    import socket

    try:
        socket.create_connection(("127.0.0.1", 4222), timeout=2).close()
    except OSError as exc:
        service_unavailable("NATS", exc)


def test_an_alert_issued_through_one_replica_drops_what_the_others_kept(postgres_url, nats_up, monkeypatch):
    """In bus mode every API replica hears warning and alert events over NATS (its own consumer)."""
    monkeypatch.setattr(public_cache, "EVENT_FRESH_S", 3600.0)  # only an event may drop what is kept
    _empty_postgres(postgres_url)
    engine = open_db(postgres_url)
    load_city(engine, "seoul")
    with engine.begin() as conn:
        _, token = access.create_token(conn, "situation room", "operator", center="situation_room")
    settings = Settings(database_url=postgres_url, bus_url=NATS_URL)
    try:
        with LiveServer(create_app(engine, settings)) as one, LiveServer(create_app(engine, settings)) as two:
            assert httpx.get(f"{two.url}/api/v1/warnings").json() == []  # kept by the second replica
            issued = httpx.post(f"{one.url}/api/v1/alerts", json=RAIN, timeout=30,
                                headers={"Authorization": f"Bearer {token}"})
            assert issued.status_code == 201, issued.text
            deadline, shown = time.monotonic() + 30, []
            while not shown and time.monotonic() < deadline:
                shown = httpx.get(f"{two.url}/api/v1/warnings").json()
                time.sleep(0.1)
            assert [w["area_code"] for w in shown] == ["11680"]
    finally:
        engine.dispose()


def test_several_worker_processes_need_a_bus(monkeypatch, tmp_path):
    """Each `haechi serve --workers N` process is an API replica: without a bus each would run its
    own engine and issue every alert N times, so it is refused, saying why."""
    from typer.testing import CliRunner

    from haechi.cli import app as cli

    monkeypatch.delenv("HAECHI_BUS_URL", raising=False)
    refused = CliRunner().invoke(cli, ["serve", "--workers", "2", "--database-url", f"sqlite:///{tmp_path / 'h.db'}"])
    assert refused.exit_code == 2 and "needs a bus (HAECHI_BUS_URL)" in refused.output
