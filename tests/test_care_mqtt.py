"""Every care alert path end to end over the real Mosquitto broker, on the real DB.

Devices publish to ``<prefix>/<device>/position|activity|sos`` (a prefix of each test's own);
the care service stores, evaluates and alerts; the tests read what guardians get. Time-driven
checks (overdue trips, welfare periods) run the service clock with a chosen ``now``; position
times travel in the payloads, as devices send them. No durations are asserted.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import orjson
import pytest
from care_support import WebhookReceiver, family, running
from shapely.geometry import LineString, box, mapping
from sqlalchemy import func, select
from test_api_support import AREAS

from haechi.bus.memory import InProcessBus
from haechi.care import repository
from haechi.care.reports import WITHHELD, decode_message
from haechi.care.service import CareService
from haechi.core.clock import KST, utcnow
from haechi.core.egress import WebhookPolicy
from haechi.response import incidents
from haechi.store import areas, deadletters
from haechi.store import warnings as warning_store
from haechi.store.schema import care_positions, observations

OUTSIDE = (127.005, 37.505)  # between school and home, outside both
IN_SCHOOL = (127.001, 37.501)
IN_GANGNAM = (127.05, 37.50)  # inside the Gangnam district of the test areas


def iso(moment) -> str:
    return moment.isoformat()


def position(lon_lat, at=None, **kw) -> dict:
    return {"at": iso(at or utcnow()), "lon": lon_lat[0], "lat": lon_lat[1], **kw}


def warn(engine, hazard: str, code: str = "11680") -> int:
    now = utcnow()
    with engine.begin() as conn:
        areas.save_areas(conn, AREAS)
        return warning_store.open_warning(conn, {
            "hazard": hazard, "area_key": f"district:{code}", "area_code": code, "level": "warning",
            "crisis_level": "alert", "exercise": False, "issued_at": now, "updated_at": now})


def count_positions(engine, ward_id: int) -> int:
    with engine.begin() as conn:
        return conn.execute(select(func.count()).select_from(care_positions).where(
            care_positions.c.ward_id == ward_id)).scalar()


# ── location check (service 16) ──────────────────────────────────────────────────────────


def test_leaving_the_safe_zone_alerts_the_guardian_in_their_language_by_webhook(sqlite_engine):
    engine = sqlite_engine

    async def scenario():
        with WebhookReceiver() as hook:
            f = family(engine, language="en", needs=("easy_read", "large_text"), webhook_url=hook.url)
            async with running(engine) as care:
                await care.send(f.devices["tracker"], "position", position(IN_SCHOOL, utcnow() - timedelta(seconds=30)))
                await care.send(f.devices["tracker"], "position", position(OUTSIDE))
                alert = await care.alert("left_zone", f.ward["id"])
                for _ in range(600):
                    if hook.received:
                        break
                    await asyncio.sleep(0.05)
            return f, alert, hook.received

    f, alert, received = asyncio.run(scenario())
    assert (alert["lon"], alert["lat"]) == OUTSIDE
    assert alert["detail"]["zone"] == "해치초등학교" and alert["detail"]["to"]["guardians"] == [f.guardian["id"]]
    [sent] = received
    assert sent["kind"] == "left_zone" and sent["position"] == {"lon": OUTSIDE[0], "lat": OUTSIDE[1]}
    assert sent["message"]["language"] == "en" and sent["message"]["large_text"]
    assert sent["message"]["body"] == "민준 is not at 해치초등학교. Please check now."  # easy-read first
    # Positions are personal data in the care store only, never public SensorThings observations.
    assert count_positions(engine, f.ward["id"]) == 2
    with engine.begin() as conn:
        assert conn.execute(select(func.count()).select_from(observations)).scalar() == 0
        assert repository.get_alert(conn, alert["id"])["delivery"] == "delivered"
        log = repository.access_log(conn, f.ward["id"])
    assert log[0]["action"] == "alert position sent by webhook" and log[0]["actor"] == f.guardian["name"]


def test_a_guardian_webhook_into_this_hosts_network_is_refused_and_the_refusal_logged(sqlite_engine):
    engine = sqlite_engine

    async def scenario():
        with WebhookReceiver() as hook:  # on 127.0.0.1, which the default policy refuses
            f = family(engine, webhook_url=hook.url.replace("127.0.0.1", "localhost"))
            async with running(engine, webhook_policy=WebhookPolicy(allow_http=True)) as care:
                await care.send(f.devices["tracker"], "sos", position(OUTSIDE))
                alert = await care.alert("sos", f.ward["id"])
                await eventually(lambda: _delivery(engine, alert["id"]) is not None, "the delivery outcome")
            return f, alert, hook.received

    f, alert, received = asyncio.run(scenario())
    assert received == []
    assert _delivery(engine, alert["id"]) == "failed"
    with engine.begin() as conn:
        [refusal] = [x for x in repository.access_log(conn, f.ward["id"]) if x["action"].startswith("refused")]
    assert (refusal["action"], refusal["actor"]) == ("refused: alert sent by webhook", f.guardian["name"])
    assert "localhost resolves to 127.0.0.1, a loopback address" in refusal["detail"]["error"]


def _delivery(engine, alert_id: int) -> str | None:
    with engine.begin() as conn:
        return repository.get_alert(conn, alert_id)["delivery"]


async def eventually(condition, what: str) -> None:
    for _ in range(1200):
        if await asyncio.to_thread(condition):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def test_a_report_the_store_fails_on_stays_with_the_broker_until_it_is_stored(sqlite_engine):
    engine = sqlite_engine

    async def scenario():
        f = family(engine)
        async with running(engine, session_expiry=60) as care:  # kept over the reconnect, then expires
            report, failed = care.service.report_groups, []

            async def down_once(groups, now=None, token_id=None):
                if not failed:
                    failed.append(groups)
                    raise OSError("the database is unreachable")
                return await report(groups, now, token_id)

            care.service.report_groups = down_once
            await care.send(f.devices["tracker"], "sos", position(OUTSIDE))
            alert = await care.alert("sos", f.ward["id"])
            await care.handled(1)
            return alert, care.consumer.stats

    alert, stats = asyncio.run(scenario())
    assert (alert["lon"], alert["lat"]) == OUTSIDE
    # Not acked when the store failed; the broker sent it again after the consumer reconnected.
    assert (stats.store_failures, stats.acked) == (1, 1) and stats.redelivered >= 1


def test_a_batch_is_stored_whole_or_not_at_all_so_a_redelivery_stores_it_once(engine):
    """Positions and an SOS of one MQTT batch: a failure while raising the SOS alert rolls back the
    positions too, so the broker's redelivery of the batch stores each position once, not twice."""
    f = family(engine)
    device, now = f.devices["tracker"], utcnow()
    prefix = "haechi/care"
    groups = [(decode_message(f"{prefix}/{device}/position", orjson.dumps([position(OUTSIDE, now - timedelta(minutes=m))
                                                                           for m in (2, 1)]), prefix, now, 60), "a"),
              (decode_message(f"{prefix}/{device}/sos", orjson.dumps(position(OUTSIDE, now)), prefix, now, 60), "b")]

    async def scenario():
        service = CareService(engine, InProcessBus())
        await service.start()
        raise_many, failures = service._raise_many, []

        def fails_once(conn, raised, escalate_at=None):
            if not failures:
                failures.append(raised)
                raise OSError("the database went away mid-batch")
            return raise_many(conn, raised, escalate_at)

        service._raise_many = fails_once
        with pytest.raises(OSError):
            await service.report_groups(groups, now)
        stored_after_failure = count_positions(engine, f.ward["id"])
        outcome = await service.report_groups(groups, now)  # the broker's redelivery
        await service.stop()
        return stored_after_failure, outcome

    stored_after_failure, outcome = asyncio.run(scenario())
    assert stored_after_failure == 0
    assert count_positions(engine, f.ward["id"]) == 2 and [a["kind"] for a in outcome.alerts].count("sos") == 1


def test_stopping_somewhere_unusual_alerts_after_the_dwell_time(sqlite_engine):
    engine = sqlite_engine

    async def scenario():
        f = family(engine, kind="dementia", alias="할머니")
        async with running(engine) as care:
            start = utcnow() - timedelta(minutes=25)
            await care.send(f.devices["tracker"], "position", [
                position((127.03, 37.53), start), position((127.0301, 37.5301), start + timedelta(minutes=10))])
            await care.send(f.devices["tracker"], "position", position((127.0302, 37.5300)))
            return f, await care.alert("dwell", f.ward["id"])

    _f, alert = asyncio.run(scenario())
    assert alert["detail"]["minutes"] >= 20 and alert["lon"] == 127.0302


def test_entering_an_active_hazard_area_alerts_the_guardian(sqlite_engine):
    engine = sqlite_engine
    warning_id = warn(engine, "heavy_rain")

    async def scenario():
        f = family(engine)
        async with running(engine) as care:
            await care.send(f.devices["tracker"], "position", position(IN_GANGNAM))
            return f, await care.alert("hazard", f.ward["id"])

    _f, alert = asyncio.run(scenario())
    assert alert["detail"]["warning_id"] == warning_id and alert["detail"]["hazard"] == "heavy_rain"


def test_a_guardian_who_chose_other_disaster_types_is_not_sent_hazard_alerts(sqlite_engine):
    engine = sqlite_engine
    warn(engine, "heavy_rain")

    async def scenario():
        f = family(engine)
        with engine.begin() as conn:
            repository.update_guardian(conn, f.guardian["id"], {"hazards": ["heat_wave"]})
        async with running(engine) as care:
            await care.send(f.devices["tracker"], "position", position(IN_GANGNAM))
            return await care.alert("hazard", f.ward["id"])

    alert = asyncio.run(scenario())
    assert alert["detail"]["to"]["guardians"] == []  # recorded, but sent to nobody


def test_a_missing_person_incident_starts_119_at_the_last_known_position(sqlite_engine):
    engine = sqlite_engine

    async def scenario():
        f = family(engine, kind="dementia")
        async with running(engine) as care:
            t0 = utcnow() - timedelta(minutes=5)
            await care.send(f.devices["tracker"], "position",
                            [position((127.03 + i * 1e-4, 37.53), t0 + timedelta(seconds=30 * i)) for i in range(5)])
            await care.handled(1)
            while count_positions(engine, f.ward["id"]) < 5:
                await asyncio.sleep(0.05)
            return f, await asyncio.to_thread(care.service.open_missing, f.ward["id"], "guardian-test")

    f, incident = asyncio.run(scenario())
    assert incident["kind"] == "missing_person" and incident["center"] == "119" and incident["source"] == "care"
    # care writes it through the shared incident records, yet it is one response's own rules accept
    incidents._validate(**{k: incident[k] for k in ("kind", "lon", "lat", "title", "severity", "center", "source")})
    assert (incident["lon"], incident["lat"]) == pytest.approx((127.0304, 37.53))  # the last known position
    # the track stays in the care tables, where operators read it while the incident is open
    assert incident["detail"]["track_points"] == 5 and "lon" not in str(incident["detail"])
    with engine.begin() as conn:
        assert repository.open_incident_of(conn, f.ward["id"])["incident_id"] == incident["id"]
        track = [p["lon"] for p in repository.positions(conn, f.ward["id"], limit=10)]
    assert track == pytest.approx([127.0304, 127.0303, 127.0302, 127.0301, 127.03])  # newest first


# ── elderly living alone ─────────────────────────────────────────────────────────────────


def test_no_activity_raises_a_welfare_check_then_escalates_to_the_district_office(sqlite_engine):
    engine = sqlite_engine
    with engine.begin() as conn:
        areas.save_areas(conn, AREAS)

    async def scenario():
        f = family(engine, kind="elderly_alone", alias="김할머니", devices=("door", "motion"), zones=False,
                   area_code="11680")
        async with running(engine) as care:
            await care.send(f.devices["door"], "activity", {"at": iso(utcnow() - timedelta(hours=25))})
            await care.handled(1)
            now = utcnow()
            [check] = await care.service.tick(now)
            assert await care.service.tick(now + timedelta(minutes=10)) == []  # one check per quiet spell
            [escalated] = await care.service.tick(now + timedelta(minutes=61))
            return f, check, escalated

    _f, check, escalated = asyncio.run(scenario())
    assert check["kind"] == "welfare_check" and check["detail"]["period_h"] == 24
    assert check["detail"]["tightened_by"] is None
    assert escalated["kind"] == "welfare_escalated" and escalated["detail"]["to"]["district"] == "11680"
    with engine.begin() as conn:
        assert repository.get_alert(conn, check["id"])["status"] == "escalated"
        assert [e["alias"] for e in repository.escalations(conn, "11680")] == ["김할머니"]


def test_a_heat_wave_tightens_the_welfare_period_and_new_activity_answers_the_check(sqlite_engine):
    engine = sqlite_engine

    async def scenario():
        f = family(engine, kind="elderly_alone", devices=("motion",), zones=False, area_code="1168010100")
        async with running(engine) as care:
            await care.send(f.devices["motion"], "activity", {"at": iso(utcnow() - timedelta(hours=13))})
            await care.handled(1)
            assert await care.service.tick() == []  # 13 h of quiet is not yet 24 h
            warn(engine, "heat_wave")
            [check] = await care.service.tick()
            await care.send(f.devices["motion"], "activity", {"at": iso(utcnow()), "kind": "motion"})
            await care.handled(2)
            return check

    check = asyncio.run(scenario())
    assert check["detail"]["tightened_by"] == "heat_wave" and check["detail"]["period_h"] == 12
    with engine.begin() as conn:
        assert repository.get_alert(conn, check["id"])["status"] == "answered"


# ── safe return home (service 18) ────────────────────────────────────────────────────────

ROUTE = LineString([(127.000, 37.500), (127.010, 37.500)])


def test_a_trip_home_alerts_contacts_and_the_cctv_center_then_ends_on_arrival(sqlite_engine):
    engine = sqlite_engine

    async def scenario():
        f = family(engine, kind="walker", alias="지은", zones=False)
        with engine.begin() as conn:
            trip = repository.start_trip(conn, f.ward["id"], {"route": mapping(ROUTE), "started_at": utcnow(),
                                                              "expected_at": utcnow() + timedelta(minutes=20),
                                                              "contacts": [f.guardian["id"]]})
        async with running(engine) as care:
            await care.service.add_trip(trip)
            tag = f.devices["tracker"]
            t0 = utcnow() - timedelta(minutes=10)
            await care.send(tag, "position", position((127.002, 37.5002), t0))
            await care.send(tag, "position", position((127.004, 37.503), t0 + timedelta(minutes=1)))
            deviation = await care.alert("deviation")
            await care.send(tag, "position", position((127.004, 37.503), t0 + timedelta(minutes=7)))
            stop = await care.alert("long_stop")
            [overdue] = await care.service.tick(utcnow() + timedelta(minutes=31))
            await care.send(tag, "position", position((127.0099, 37.5001)))
            arrived = await care.alert("arrived")
            return f, trip, deviation, stop, overdue, arrived

    f, trip, deviation, stop, overdue, arrived = asyncio.run(scenario())
    for alert in (deviation, stop, overdue):
        assert alert["detail"]["to"] == {"guardians": [f.guardian["id"]], "centers": ["cctv"], "district": None}
        assert alert["detail"]["trip_id"] == trip["id"] and alert["lon"] is not None
    assert deviation["detail"]["off_route_m"] > 100 and stop["detail"]["minutes"] >= 5
    assert arrived["detail"]["to"]["centers"] == []
    with engine.begin() as conn:
        assert repository.get_trip(conn, trip["id"])["status"] == "arrived"


def test_an_sos_reaches_the_guardian_and_the_cctv_center_with_the_live_position(sqlite_engine):
    engine = sqlite_engine

    async def scenario():
        f = family(engine, kind="walker", zones=False)
        async with running(engine) as care:
            await care.send(f.devices["tracker"], "sos", position((127.02, 37.51)))
            return f, await care.alert("sos", f.ward["id"])

    f, alert = asyncio.run(scenario())
    assert (alert["lon"], alert["lat"]) == (127.02, 37.51)
    assert alert["detail"]["to"]["centers"] == ["cctv"] and alert["detail"]["to"]["guardians"] == [f.guardian["id"]]


# ── child traffic safety (service 17) ────────────────────────────────────────────────────


def next_school_morning():
    """The next weekday 10:00 KST, inside the rules' school hours."""
    local = utcnow().astimezone(KST).replace(hour=10, minute=0, second=0, microsecond=0) + timedelta(days=1)
    while local.weekday() > 4:
        local += timedelta(days=1)
    return local


def test_a_hazard_near_the_school_at_school_hours_alerts_parents(sqlite_engine):
    engine = sqlite_engine
    warning_id = warn(engine, "heavy_rain")

    async def scenario():
        f = family(engine, zones=False)
        with engine.begin() as conn:
            repository.add_zone(conn, f.ward["id"], {"kind": "school", "name": "역삼초등학교",
                                                     "geometry": mapping(box(127.03, 37.495, 127.032, 37.497)),
                                                     "schedule": [{"days": [0, 1, 2, 3, 4], "start": "08:30",
                                                                   "end": "15:00"}]})
        async with running(engine) as care:
            # A tracker report over MQTT on the way to school, then the school-hours check.
            await care.send(f.devices["tracker"], "position", position((127.031, 37.496)))
            await care.alert("hazard", f.ward["id"])
            evening = next_school_morning().replace(hour=20)
            assert await care.service.tick(evening) == []  # not at school hours
            alerts = await care.service.tick(next_school_morning())
            return alerts

    [alert] = asyncio.run(scenario())
    assert alert["kind"] == "school_hazard" and alert["detail"]["warning_id"] == warning_id
    assert alert["detail"]["zone"] == "역삼초등학교"


# ── consent and bad input ────────────────────────────────────────────────────────────────


def test_bad_positions_are_refused_and_kept_without_coordinates(sqlite_engine):
    engine = sqlite_engine

    async def scenario():
        f = family(engine)
        async with running(engine) as care:
            tag = f.devices["tracker"]
            await care.send(tag, "position", {"at": iso(utcnow()), "lon": 200.0, "lat": 37.5})
            await care.send(tag, "position", position(IN_SCHOOL, utcnow() + timedelta(hours=1)))
            await care.send("nobody-knows-me", "position", position(IN_SCHOOL))
            await care.send(tag, "position", b'{"at": "2026-01-01T00:00:00Z", "lon": 127.0')
            await care.send(tag, "position", position(IN_SCHOOL))  # the one good report
            await care.handled(5)
            return f

    f = asyncio.run(scenario())
    assert count_positions(engine, f.ward["id"]) == 1
    with engine.begin() as conn:
        letters = deadletters.pending(conn, source="mqtt:test-care/")
    reasons = sorted(letter["reason"] for letter in letters)
    assert len(letters) == 4
    assert any(r.startswith("lon: lon 200.0 is out of range") for r in reasons)
    assert any(r.startswith("at:") and "future" in r for r in reasons)
    assert any("unknown device 'nobody-knows-me'" in r for r in reasons)
    assert any(r.startswith("not valid JSON") for r in reasons)
    for letter in letters:
        payload = letter["payload"]
        assert "37.501" not in payload and "127.001" not in payload  # no valid position kept
    future = next(x for x in letters if "future" in x["reason"])
    assert orjson.loads(future["payload"])["lon"] == WITHHELD


def test_withdrawn_consent_stops_tracking_at_once(sqlite_engine):
    engine = sqlite_engine

    async def scenario():
        f = family(engine)
        async with running(engine) as care:
            tag = f.devices["tracker"]
            await care.send(tag, "position", position(IN_SCHOOL))
            await care.handled(1)
            with engine.begin() as conn:
                repository.withdraw_consent(conn, f.ward["id"], utcnow())
            await care.service.forget(f.ward["id"])
            await care.send(tag, "position", position(OUTSIDE))  # would be a left_zone alert
            await care.send(tag, "sos", position(OUTSIDE))
            await care.handled(3)
            return f, list(care.seen)

    f, seen = asyncio.run(scenario())
    assert count_positions(engine, f.ward["id"]) == 1
    assert seen == []  # no alert from positions after the withdrawal
    with engine.begin() as conn:
        letters = deadletters.pending(conn, source="mqtt:test-care/")
    assert [x["reason"] for x in letters] == ["no consent", "no consent"]
    for letter in letters:
        kept = orjson.loads(letter["payload"])
        assert set(kept) == {"device", "at", "report"}  # no coordinates


def test_expired_consent_is_no_consent(sqlite_engine):
    engine = sqlite_engine

    async def scenario():
        f = family(engine, consent=False)
        with engine.begin() as conn:
            repository.add_consent(conn, f.ward["id"], {
                "consented_by": "본인", "relation": "self", "purpose": "위치 확인",
                "granted_at": utcnow() - timedelta(days=10), "valid_until": utcnow() - timedelta(days=1),
                "recorded_by": "test"})
        async with running(engine) as care:
            await care.send(f.devices["tracker"], "position", position(IN_SCHOOL))
            await care.handled(1)
            return f

    f = asyncio.run(scenario())
    assert count_positions(engine, f.ward["id"]) == 0


