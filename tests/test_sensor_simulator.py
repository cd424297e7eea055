"""The device simulator: plausible, repeatable streams (pure), paced publishing, MQTT and HTTP delivery."""

from __future__ import annotations

import asyncio
import http.server
import random
import statistics
import threading
import uuid
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import ClassVar

import orjson
import pytest
import test_mqtt
from test_mqtt import BROKER_URL, eventually, stored, subscribed
from typer.testing import CliRunner

from haechi.cities.provision import save_catalogue
from haechi.cli import app
from haechi.ingest import qc, sensor_simulator
from haechi.ingest.mqtt import MqttIngest
from haechi.ingest.pipeline import Pipeline
from haechi.ingest.sensor_simulator import CitySimulation, Rain, Stream
from haechi.model.catalogue import catalogue
from haechi.store import sensing

broker, names = test_mqtt.broker, test_mqtt.names  # the real-broker fixtures, shared

STATION = {"lon": 126.97, "lat": 37.57}
STREAMS = [
    Stream(1, "air_temperature", "Cel", "weather_station", **STATION),
    Stream(2, "relative_humidity", "%", "weather_station", **STATION),
    Stream(3, "rainfall", "mm", "weather_station", **STATION),
    Stream(4, "pm10", "ug/m3", "air_station", 127.0, 37.5),
    Stream(5, "pm25", "ug/m3", "air_station", 127.0, 37.5),
    Stream(6, "water_level", "m", "river_gauge", 126.96, 37.51),
    Stream(7, "discharge", "m3/s", "river_gauge", 126.96, 37.51),
    Stream(8, "water_level", "m", "dam", 127.28, 37.52),
    Stream(9, "discharge", "m3/s", "dam", 127.28, 37.52),
    Stream(10, "water_level", "m", "tide_station", 126.52, 37.73),
]
YEAR_START = datetime(2023, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=10)


@cache
def year(seed: int) -> tuple[list[datetime], dict[int, list[float]]]:
    """A simulated year at 10-minute steps: the times and every stream's values."""
    simulation = CitySimulation(STREAMS, seed=seed, start=YEAR_START)
    times = [YEAR_START + n * STEP for n in range(365 * 144)]
    values: dict[int, list[float]] = {s.id: [] for s in STREAMS}
    for at in times:
        for o in simulation.step(at):
            values[o["datastream_id"]].append(o["result"])
    return times, values


def kst_hour(at: datetime) -> int:
    return (at.hour + 9) % 24


# ── pure models ──────────────────────────────────────────────────────────────────────────


def test_a_seed_gives_the_same_streams_and_another_seed_others():
    times = [YEAR_START + n * STEP for n in range(500)]
    first = list(sensor_simulator.rounds(STREAMS, times, seed=7))
    assert first == list(sensor_simulator.rounds(STREAMS, times, seed=7))
    assert first != list(sensor_simulator.rounds(STREAMS, times, seed=8))


def test_air_temperature_follows_the_sun_and_the_seasons():
    times, values = year(0)
    temperature = values[1]
    afternoon = [t for at, t in zip(times, temperature, strict=True) if kst_hour(at) in (14, 15, 16)]
    dawn = [t for at, t in zip(times, temperature, strict=True) if kst_hour(at) in (4, 5, 6)]
    assert statistics.mean(afternoon) - statistics.mean(dawn) > 4  # °C
    august = [t for at, t in zip(times, temperature, strict=True) if at.month == 8]
    january = [t for at, t in zip(times, temperature, strict=True) if at.month == 1]
    assert 20 < statistics.mean(august) - statistics.mean(january) < 35
    assert -20 < min(temperature) and max(temperature) < 40


def test_humidity_moves_against_temperature_and_nears_saturation_in_rain():
    times, values = year(0)
    temperature, humidity, rain = values[1], values[2], values[3]
    july = [n for n, at in enumerate(times) if at.month == 7]
    assert statistics.correlation([temperature[n] for n in july], [humidity[n] for n in july]) < -0.3
    raining = [humidity[n] for n in range(len(rain)) if rain[n] > 0.5]
    dry = [humidity[n] for n in range(len(rain)) if rain[n] == 0]
    assert statistics.mean(raining) > 90 > statistics.mean(dry)
    assert 0 <= min(humidity) and max(humidity) <= 100


def test_rain_comes_in_bursts_mostly_in_summer_and_adds_up_to_seoul_totals():
    totals, summer_shares, dry_shares = [], [], []
    for seed in range(6):
        rain = Rain(random.Random(seed))
        by_month = [0.0] * 12
        fallen = []
        for n in range(365 * 144):
            at = YEAR_START + n * STEP
            fallen.append(rain.advance(STEP.total_seconds(), at.timetuple().tm_yday))
            by_month[at.month - 1] += fallen[-1]
        totals.append(sum(by_month))
        summer_shares.append(sum(by_month[5:8]) / sum(by_month))
        dry_shares.append(sum(f == 0 for f in fallen) / len(fallen))
    assert 900 < statistics.mean(totals) < 2000  # mm a year; Seoul's normal is about 1,400
    assert statistics.mean(summer_shares) > 0.5  # June–August
    assert min(dry_shares) > 0.8  # most 10-minute steps are dry
    _, values = year(0)
    assert max(values[3]) > 2  # mm in 10 minutes: bursts happen


def lag_of(cause: list[float], effect: list[float], max_lag: int) -> int:
    """The shift (in steps) at which ``effect`` follows ``cause`` most closely."""
    return max(range(max_lag + 1), key=lambda lag: statistics.correlation(cause[:len(cause) - lag], effect[lag:]))


def test_rivers_rise_hours_after_the_rain_and_the_dam_releases_before_the_town_gauges_rise():
    _, values = year(1)
    hourly = {i: values[i][::6] for i in (3, 6, 7, 9)}
    rain, level, town_flow, dam_flow = hourly[3], hourly[6], hourly[7], hourly[9]
    assert max(level) > statistics.median(level) + 1  # m: floods happen
    rain_to_dam, rain_to_town = lag_of(rain, dam_flow, 48), lag_of(rain, town_flow, 48)
    assert 1 <= rain_to_dam < rain_to_town <= 36  # hours
    assert abs(lag_of(rain, level, 48) - rain_to_town) <= 3  # the level is the flow, through the rating


def test_fine_dust_has_rush_hours_is_washed_out_by_rain_and_pm25_stays_below_pm10():
    times, values = year(2)
    pm10, pm25, rain = values[4], values[5], values[3]
    assert all(small <= large for small, large in zip(pm25, pm10, strict=True))
    morning = [p for at, p in zip(times, pm10, strict=True) if kst_hour(at) in (8, 9)]
    night = [p for at, p in zip(times, pm10, strict=True) if kst_hour(at) in (3, 4)]
    assert statistics.mean(morning) > statistics.mean(night)
    raining = [pm10[n] for n in range(len(rain)) if rain[n] > 0.5]
    assert statistics.mean(raining) < 0.75 * statistics.mean(pm10)
    march = [p for at, p in zip(times, pm10, strict=True) if at.month == 3]
    august = [p for at, p in zip(times, pm10, strict=True) if at.month == 8]
    assert statistics.mean(march) > statistics.mean(august)


def test_a_year_of_simulated_readings_passes_quality_control():
    times, values = year(0)
    now = times[-1] + timedelta(minutes=1)
    for stream in STREAMS:
        limits, memory = catalogue()[stream.property].limits, qc.StreamMemory()
        flags = [qc.step(v, at, now, memory, limits)[0] for at, v in zip(times, values[stream.id], strict=True)]
        assert flags.count(qc.GOOD) / len(flags) > 0.999, stream


def test_observations_come_in_their_datastreams_unit_and_unknown_properties_are_skipped():
    streams = [Stream(1, "water_level", "mm", "river_gauge"), Stream(2, "water_level", "cm", "river_gauge"),
               Stream(3, "luminosity", "lx")]
    simulation = CitySimulation(streams, seed=0, start=YEAR_START)
    in_mm, in_cm = simulation.step(YEAR_START)
    assert 2000 < in_mm["result"] < 4000 and "unit" not in in_mm  # converted as a device would
    assert in_cm["unit"] == "m" and 2 < in_cm["result"] < 4  # no m → cm conversion: the pipeline is told
    assert simulation.skipped == [3]


def test_simulated_time_can_run_faster_than_the_clock():
    simulation = CitySimulation(STREAMS[:1], seed=0, start=YEAR_START, speed=24)
    assert simulation.model_time(YEAR_START + timedelta(hours=1)) == YEAR_START + timedelta(days=1)


# ── pacing ───────────────────────────────────────────────────────────────────────────────


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Collecting:
    """A publisher that keeps what it is given and acknowledges it at once."""

    def __init__(self, clock: FakeClock, interrupt_after: int | None = None) -> None:
        self.clock, self.interrupt_after = clock, interrupt_after
        self.observations: list[dict] = []
        self.sent = self.confirmed = 0
        self.closed = False

    def send(self, observations):
        if self.interrupt_after is not None and self.sent >= self.interrupt_after:
            raise KeyboardInterrupt
        self.observations += observations
        self.sent = self.confirmed = len(self.observations)
        self.clock.now += 0.05  # sending takes time

    def backlog(self):
        return 0

    def close(self, timeout):
        self.closed = True


def test_the_rate_is_kept_and_no_stream_repeats_a_timestamp_or_runs_ahead_of_the_clock():
    clock = FakeClock()
    publisher = Collecting(clock)
    start = datetime(2024, 7, 1, tzinfo=UTC)
    done = sensor_simulator.run(STREAMS, publisher, rate=250, duration=4, clock=clock, sleep=clock.sleep,
                                now=lambda: start)
    assert done.sent == len(publisher.observations) == 1000 and not done.interrupted and publisher.closed
    for stream in STREAMS:
        stamps = [datetime.fromisoformat(o["phenomenon_time"]) for o in publisher.observations
                  if o["datastream_id"] == stream.id]
        assert stamps == sorted(set(stamps))  # strictly increasing
        assert stamps[-1] <= start + timedelta(seconds=4)
        assert len(stamps) == 100  # 250/s over 10 streams for 4 s


def test_ctrl_c_stops_cleanly_after_flushing():
    clock = FakeClock()
    publisher = Collecting(clock, interrupt_after=300)
    done = sensor_simulator.run(STREAMS, publisher, rate=100, clock=clock, sleep=clock.sleep)
    assert done.interrupted and publisher.closed and done.sent == done.confirmed >= 300


# ── delivery over MQTT and HTTP ──────────────────────────────────────────────────────────


def stations_in(engine) -> list[int]:
    """A weather station (temperature, humidity, rain) and a river gauge (level in mm), as packs make them."""
    with engine.begin() as conn:
        ids = save_catalogue(conn)
        sensor = sensing.create_sensor(conn, {"name": "station instrument"})
        made = []
        for kind, lon, wanted in (("weather_station", 126.97, [("air_temperature", "Cel"), ("relative_humidity", "%"),
                                                               ("rainfall", "mm")]),
                                  ("river_gauge", 126.96, [("water_level", "mm")])):
            location = sensing.create_location(conn, {"name": kind, "location": {"type": "Point",
                                                                                "coordinates": [lon, 37.5]}})
            thing = sensing.create_thing(conn, {"name": kind}, [location])
            for code, unit in wanted:
                made.append(sensing.create_datastream(conn, {
                    "name": f"{kind} {code}", "thing_id": thing, "sensor_id": sensor, "observed_property_id": ids[code],
                    "unit_name": unit, "unit_symbol": unit, "unit_definition": f"ucum:{unit}",
                    "properties": {"place_kind": kind}}))
        return made


def test_streams_are_read_from_the_store_with_their_kind_of_place(sqlite_engine):
    made = stations_in(sqlite_engine)
    streams = {s.id: s for s in sensor_simulator.load_streams(sqlite_engine)}
    assert sorted(streams) == made
    assert streams[made[0]].place_kind == "weather_station" and streams[made[0]].lon == pytest.approx(126.97)
    assert streams[made[3]].unit == "mm"


def test_the_mqtt_publisher_delivers_every_observation_to_the_store(sqlite_engine, names):
    stations_in(sqlite_engine)
    streams = sensor_simulator.load_streams(sqlite_engine)

    async def scenario():
        async with subscribed(MqttIngest(BROKER_URL, Pipeline(sqlite_engine), topic_prefix=names.prefix,
                                         client_id=names("ingest"))):
            publisher = sensor_simulator.MqttPublisher(BROKER_URL, topic_prefix=names.prefix,
                                                       client_id=names("simulator"))
            done = await asyncio.to_thread(sensor_simulator.run, streams, publisher, 400, duration=2)
            await eventually(lambda: stored(sqlite_engine) == done.sent, "every simulated observation stored")
            return done

    done = asyncio.run(scenario())
    assert done.sent == done.confirmed == 800 and done.backlog == 0


def test_the_cli_publishes_the_loaded_streams_over_mqtt(sqlite_engine, names):
    stations_in(sqlite_engine)
    url = sqlite_engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(app, ["simulate", "sensors", "--rate", "200", "--duration", "1", "--mqtt-url",
                                      BROKER_URL, "--topic-prefix", names.prefix, "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "done: 200 observations sent, 200 acknowledged" in result.output


def test_the_cli_says_what_is_missing(sqlite_engine):
    url = sqlite_engine.url.render_as_string(hide_password=False)
    nowhere = CliRunner().invoke(app, ["simulate", "sensors", "--database-url", url])
    assert nowhere.exit_code == 2 and "--mqtt-url or --http-url" in nowhere.output
    empty = CliRunner().invoke(app, ["simulate", "sensors", "--http-url", "http://127.0.0.1:9", "--database-url", url])
    assert empty.exit_code == 2 and "load a city pack first" in empty.output


class Receiver(http.server.BaseHTTPRequestHandler):
    """Stands in for /api/v1/observations: records each body; answers from a script of statuses."""

    received: ClassVar[list[tuple[str, list]]] = []
    statuses: ClassVar[list[int]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            self.received.append((self.headers.get("Authorization"), orjson.loads(body)))
        reply = orjson.dumps({"received": 1, "stored": 1, "rejected": 0} if status == 200 else {"detail": "no"})
        self.send_response(status)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *_):
        pass


@pytest.fixture
def receiver():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    Receiver.received, Receiver.statuses = [], []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", Receiver
    server.shutdown()


def test_the_http_publisher_posts_json_arrays_with_the_token_and_retries_server_errors(receiver):
    url, handler = receiver
    handler.statuses = [503, 502]  # the server is restarting; the third try lands
    publisher = sensor_simulator.HttpPublisher(url, token="secret-" + uuid.uuid4().hex, backoff=(0.01, 0.05))
    observations = CitySimulation(STREAMS, seed=0, start=YEAR_START).step(YEAR_START)
    publisher.send(observations)
    [(authorization, body)] = handler.received
    assert authorization == f"Bearer {publisher.headers['Authorization'].split()[1]}"
    assert body == observations and all("datastream_id" in o for o in body)
    assert publisher.confirmed == len(observations)


def test_the_http_publisher_stops_on_a_refusal(receiver):
    url, handler = receiver
    handler.statuses = [401]
    with pytest.raises(sensor_simulator.PublishRefused, match="401"):
        sensor_simulator.HttpPublisher(url, token="wrong").send([{"datastream_id": 1}])
