"""The live-forecast endpoints: operators run the river model; staff read the latest forecasts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from test_predict_river import feed, provision, scenario

from haechi.api.app import create_app
from haechi.bus.memory import InProcessBus
from haechi.store import access


def test_operators_run_the_river_model_and_staff_read_its_forecasts(engine):
    rows = [r for r in scenario() if "2020-08-06 06:00" <= r["time_kst"] <= "2020-08-06 10:20"]
    with engine.begin() as conn:
        ids = provision(conn)
        feed(conn, ids, rows)
        _, operator = access.create_token(conn, "duty officer", "operator")
        _, citizen = access.create_token(conn, "a citizen", "citizen")
    bus = InProcessBus()
    heard = []

    async def hear(event) -> None:
        heard.append(event)

    bus.subscribe("observation.stored", hear)
    client = TestClient(create_app(engine, bus=bus))
    refused = client.post("/api/v1/predictions/river", headers={"Authorization": f"Bearer {citizen}"})
    assert refused.status_code == 403
    answer = client.post("/api/v1/predictions/river", headers={"Authorization": f"Bearer {operator}"})
    assert answer.status_code == 200 and answer.json()["stored"] == 3
    assert len(heard) == 1 and len(heard[0].data["observations"]) == 3  # announced to the warnings service
    latest = client.get("/api/v1/predictions", headers={"Authorization": f"Bearer {operator}"}).json()
    assert sorted(f["property"] for f in latest) == [
        "forecast_water_level_1h", "forecast_water_level_2h", "forecast_water_level_3h"]
    assert all(f["forecast_of"] == ids["level"] and f["issued_at"] for f in latest)


def test_flood_risk_now_from_observed_rain_plus_a_forecast_and_bad_input_kept(engine):
    from test_predict_flood import seed

    from haechi.cities.provision import provision_stations
    from haechi.predict import live
    from haechi.store import deadletters, sensing
    from haechi.store import places as place_store

    with engine.begin() as conn:
        seed(conn)  # 역삼동 (paved, 110 mm/h target) and 개포동 (wooded), both in 강남구
        place_store.save_places(conn, [{"kind": "weather_station", "ref": "400", "name_ko": "강남",
                                        "name_en": "Gangnam", "area_code": "11680", "lon": 127.04, "lat": 37.51}])
        provision_stations(conn)
        rain = live.station_streams(conn, ("weather_station",), ("rainfall",))[("weather_station", "400", "rainfall")]
        t0 = datetime(2022, 8, 8, 11, 0, tzinfo=UTC)
        sensing.add_observations(conn, [{"datastream_id": rain, "phenomenon_time": t0 + timedelta(minutes=10 * i),
                                         "result": 22.0} for i in range(6)])  # 132 mm in the last hour
        _, official = access.create_token(conn, "district official", "district_official", area_code="11680")
    client = TestClient(create_app(engine, bus=InProcessBus()))
    headers = {"Authorization": f"Bearer {official}"}
    answer = client.post("/api/v1/predictions/flood", headers=headers, json={"forecast_mm": [0, 0]})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["summary"]["rain_gauges"] == 1 and result["summary"]["forecast_steps"] == 2
    rows = {r["code"]: r for r in result["areas"]}
    assert rows["11680101"]["rain_mm"] == 132.0 and rows["11680101"]["risk"] in ("high", "severe")
    one_hour = live.flood_now(engine, hours=1)
    assert (one_hour["summary"]["observed_steps"] == 6
            and one_hour["summary"]["observed_until"].startswith("2022-08-08T11:50"))
    bad = client.post("/api/v1/predictions/flood", headers=headers, json={"forecast_mm": [5, -1]})
    assert bad.status_code == 422 and "forecast_mm" in bad.text
    with engine.connect() as conn:
        [kept] = deadletters.pending(conn, source="http:/api/v1/predictions/flood")
    assert "forecast_mm" in kept["reason"] and "-1" in str(kept["payload"])
    # Beyond anything a rain gauge reads (the model would overflow on it): refused, never a 500.
    for absurd in ([1e308], [5.0] * (24 * 6 + 1)):
        refused = client.post("/api/v1/predictions/flood", headers=headers, json={"forecast_mm": absurd})
        assert refused.status_code == 422
