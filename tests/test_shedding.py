"""Shed load, never fall over (issue 17): public writes limited per client, reads bounded in flight.

Through the whole app: a citizen's report beyond the limit of its address gets 429 with
``Retry-After`` and problem+json, and is not stored; another address is not affected; after
``Retry-After`` seconds (on the limiter's clock) the report is taken; staff are never limited; an
address behind a trusted proxy is the one it forwarded, and a forged header from anyone else
changes nothing. Reads beyond the bound in flight get a quick 503, probes and streams never.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi.testclient import TestClient
from test_api_support import build_world

from haechi.api.shedding import CONFIG, ReadBound, Shedding, TokenBuckets, client_key, load

REPORT = {"kind": "flooding", "description": "지하차도 침수", "area_code": "11680", "lon": 127.03, "lat": 37.5}
HAZARD_REPORTS = next(rule for rule in load().writes if rule.name == "hazard reports")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(sqlite_engine):
    world = build_world(sqlite_engine, trusted_proxies=["10.0.0.5"])
    world.clock = Clock()
    world.client.app.state.write_limiter.clock = world.clock
    return world


def from_address(world, host: str) -> TestClient:
    return TestClient(world.client.app, client=(host, 40000))


def report(client: TestClient, world, role: str = "citizen", **headers: str) -> httpx.Response:
    return client.post("/api/v1/reports", json=REPORT, headers={**world.auth(role), **headers})


def stored_reports(world) -> int:
    return len(world.client.get("/api/v1/reports?limit=1000", headers=world.auth("operator")).json())


def test_a_citizen_beyond_the_limit_waits_and_the_report_is_not_taken(world):
    citizen = from_address(world, "203.0.113.7")
    assert [report(citizen, world).status_code for _ in range(HAZARD_REPORTS.burst)] == [201] * HAZARD_REPORTS.burst
    refused = report(citizen, world, **{"Accept-Language": "ko"})
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    assert problem["type"] == "/problems/rate-limited" and problem["status"] == 429
    wait = int(refused.headers["retry-after"])
    assert wait >= 1 and problem["retry_after_s"] == wait
    assert "요청이 너무 많습니다" in problem["detail"] and "too many hazard reports" in problem["detail"]
    assert problem["detail"].index("요청") < problem["detail"].index("too many")  # Korean first, as asked
    assert stored_reports(world) == HAZARD_REPORTS.burst

    world.clock.now += wait - 0.5
    assert report(citizen, world).status_code == 429  # not yet
    world.clock.now += 0.5
    assert report(citizen, world).status_code == 201
    assert stored_reports(world) == HAZARD_REPORTS.burst + 1


def test_another_address_is_not_affected(world):
    busy, other = from_address(world, "203.0.113.7"), from_address(world, "198.51.100.20")
    while report(busy, world).status_code == 201:
        pass
    assert report(other, world).status_code == 201
    assert report(busy, world).status_code == 429


def test_staff_are_never_limited(world):
    operator = from_address(world, "203.0.113.7")
    answers = {report(operator, world, role="operator").status_code for _ in range(HAZARD_REPORTS.burst + 5)}
    assert answers == {201}
    assert report(operator, world).status_code == 201  # nor did staff use up the address's bucket


def test_a_trusted_proxy_names_the_client_and_a_forged_header_does_not(world):
    proxy, stranger = from_address(world, "10.0.0.5"), from_address(world, "203.0.113.9")
    for _ in range(HAZARD_REPORTS.burst):
        assert report(proxy, world, **{"X-Forwarded-For": "192.0.2.1"}).status_code == 201
    assert report(proxy, world, **{"X-Forwarded-For": "192.0.2.1"}).status_code == 429
    assert report(proxy, world, **{"X-Forwarded-For": "192.0.2.2"}).status_code == 201  # another citizen
    # Not a trusted proxy: its header is ignored, so a new forged address each time gets nowhere.
    answers = [report(stranger, world, **{"X-Forwarded-For": f"192.0.2.{100 + i}"}).status_code
               for i in range(HAZARD_REPORTS.burst + 1)]
    assert answers[-1] == 429


def test_photos_count_with_reports_and_anonymous_writes_are_limited_too(world):
    citizen = from_address(world, "203.0.113.7")
    first = report(citizen, world).json()
    photo = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
    for _ in range(HAZARD_REPORTS.burst - 1):
        citizen.post(f"/api/v1/reports/{first['id']}/photos", content=photo,
                     headers={**world.auth("citizen"), "Content-Type": "image/png"})
    assert report(citizen, world).status_code == 429
    stranger = from_address(world, "203.0.113.50")
    answers = {stranger.post("/api/v1/disasters", json={}).status_code for _ in range(70)}
    assert answers == {401, 429}  # refused either way; the flood beyond the limit costs no audit row
    assert len([e for e in world.audit() if e["action"] == "POST /api/v1/disasters"]) < 70


def test_the_429_is_in_the_openapi_of_the_limited_routes(world):
    paths = world.client.get("/openapi.json").json()["paths"]
    for path, method in [("/api/v1/reports", "post"), ("/api/v1/reports/{report_id}/photos", "post"),
                         ("/api/v1/subscriptions", "post"), ("/api/v1/subscriptions/{subscription_id}", "patch")]:
        answer = paths[path][method]["responses"]["429"]
        assert "Retry-After" in answer["headers"] and "application/problem+json" in answer["content"]


def test_client_addresses_are_counted_as_subscribers():
    assert client_key({"client": ("2001:db8:1:2:aaaa::1", 1)}) == client_key({"client": ("2001:db8:1:2:bbbb::9", 1)})
    assert client_key({"client": ("2001:db8:1:3::1", 1)}) != client_key({"client": ("2001:db8:1:2::1", 1)})
    assert client_key({"client": ("::ffff:192.0.2.1", 1)}) == "192.0.2.1"
    assert client_key({"client": None}) == "unknown"


def test_buckets_refill_and_are_forgotten_when_full():
    buckets = TokenBuckets(burst=2, per_minute=6)  # one every 10 s
    assert [buckets.take("a", 0.0), buckets.take("a", 0.0)] == [0.0, 0.0]
    assert buckets.take("a", 1.0) == pytest.approx(9.0)
    assert buckets.take("a", 10.0) == 0.0
    assert len(buckets) == 1
    buckets.take("b", 100.0)  # long after "a" refilled: its bucket is dropped
    assert len(buckets) == 1


# ── reads in flight ────────────────────────────────────────────────────────────────────────


def held_app():
    """An app whose reads wait until released, so the test decides how many are in flight."""
    release = asyncio.Event()

    async def app(scope, receive, send):
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    return app, release


def bound(max_waiting: int, max_wait_s: float = 60.0) -> Shedding:
    return Shedding(max_in_flight=2, max_waiting=max_waiting, max_wait_s=max_wait_s, retry_after_s=1,
                    exempt=frozenset({"/livez", "/api/v1/stream"}), writes=())


async def until(condition) -> None:
    while not condition():
        await asyncio.sleep(0)


def test_reads_beyond_the_bound_and_its_waiting_room_are_shed_and_probes_never():
    asyncio.run(reads_beyond_the_bound())


async def reads_beyond_the_bound():
    app, release = held_app()
    reads = ReadBound(app, bound(max_waiting=1))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(reads), base_url="http://haechi") as client:
        held = [asyncio.create_task(client.get("/api/v1/warnings")) for _ in range(2)]
        await until(lambda: reads.in_flight == 2)
        waiting = asyncio.create_task(client.get("/alerts.atom"))
        await until(lambda: reads.waiting == 1)
        shed = await client.get("/portal", headers={"Accept-Language": "en"})  # the waiting room is full
        assert shed.status_code == 503 and shed.headers["retry-after"] == "1"
        assert shed.json()["type"] == "/problems/overloaded"
        assert "retry in 1 s" in shed.json()["detail"] and "다시 시도하세요" in shed.json()["detail"]
        probe = asyncio.create_task(client.get("/livez"))  # exempt: it waits its turn like the held ones
        stream = asyncio.create_task(client.get("/api/v1/stream"))
        write = asyncio.create_task(client.post("/api/v1/reports"))  # writes are limited per client instead
        await asyncio.sleep(0.05)
        assert not any(t.done() for t in (waiting, probe, stream, write))
        release.set()
        answers = await asyncio.gather(*held, waiting, probe, stream, write)
        assert [a.status_code for a in answers] == [200] * 6  # the waiting read got its slot
        assert (await client.get("/portal")).status_code == 200
        assert (reads.in_flight, reads.waiting, reads.shed) == (0, 0, 1)


def test_a_read_that_waited_its_longest_is_shed():
    async def scenario():
        app, release = held_app()
        reads = ReadBound(app, bound(max_waiting=10, max_wait_s=0.01))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(reads), base_url="http://haechi") as client:
            held = [asyncio.create_task(client.get("/api/v1/warnings")) for _ in range(2)]
            await until(lambda: reads.in_flight == 2)
            late = await client.get("/api/v1/warnings")
            release.set()
            assert late.status_code == 503 and [a.status_code for a in await asyncio.gather(*held)] == [200, 200]
            assert (reads.in_flight, reads.waiting, reads.slots.locked()) == (0, 0, False)  # no slot lost

    asyncio.run(scenario())


def test_the_shipped_bound_holds_a_surge_without_shedding_it():
    """The bound must not refuse what a server handles at ease: 64 connections (the surge benchmark)."""
    assert load().max_in_flight >= 64
    assert {"/livez", "/readyz", "/api/v1/stream", "/api/v1/care/alerts/stream"} <= load().exempt


def test_the_app_sheds_reads_beyond_its_bound(sqlite_engine, tmp_path):
    shipped = CONFIG.read_text(encoding="utf-8")
    own = tmp_path / "shedding.toml"
    own.write_text(shipped.replace("max_in_flight = 256", "max_in_flight = 1").replace("max_waiting = 1024",
                                                                                       "max_waiting = 0"),
                   encoding="utf-8")
    app = build_world(sqlite_engine, shedding_file=str(own)).client.app

    async def surge():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://haechi") as client:
            return await asyncio.gather(*(client.get(path) for path in ["/api/v1/areas"] * 20 + ["/livez"] * 5))

    answers = asyncio.run(surge())
    reads, probes = answers[:20], answers[20:]
    shed = [a for a in reads if a.status_code == 503]
    assert shed and {a.status_code for a in reads} == {200, 503}
    assert all(a.headers["retry-after"] == "1" and a.json()["type"] == "/problems/overloaded" for a in shed)
    assert {a.status_code for a in probes} == {200}
    metrics = asyncio.run(_get(app, "/metrics")).text
    assert f'haechi_http_requests_total{{method="GET",route="shed",status="503"}} {len(shed)}.0' in metrics
    assert 'route="unmatched"' not in metrics


def test_a_refused_report_is_counted_under_its_route_on_the_metrics(world):
    citizen = from_address(world, "203.0.113.9")
    while report(citizen, world).status_code == 201:
        pass
    metrics = world.client.get("/metrics").text
    assert 'haechi_http_requests_total{method="POST",route="shed",status="429"} 1.0' in metrics
    assert 'route="unmatched"' not in metrics


async def _get(app, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://haechi") as client:
        return await client.get(path)
