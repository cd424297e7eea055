"""The device simulator: realistic streams for a city's station datastreams, published over MQTT or HTTP.

The models are pure (a seed, the times asked for, no I/O) and share one city-wide weather:

- **air temperature** follows the season and the sun (coolest near dawn, warmest mid-afternoon)
  and cools where it rains; **relative humidity** moves the other way and nears saturation in rain;
- **rainfall** comes in wet spells (more often in the summer monsoon) made of bursts whose
  intensity decays exponentially; stations see the same storm with their own share of it;
- **rivers** answer the rain through two linear reservoirs in series (hours of lag): the dam
  releases first, the gauges in town rise later, each through a square-root rating curve;
  the **tide** gauge swings with the semidiurnal tide, its range breathing over the spring–neap cycle;
- **PM10 / PM2.5** follow the season (spring high), the rush hours and slow pollution episodes,
  and rain washes them out; PM2.5 stays a fraction of PM10.

Values are in each property's catalogue unit (°C, %, mm, m, m³/s, µg/m³); climate figures are
Seoul's, as the default city pack is (sources beside each constant). Then the publishers: MQTT
(QoS 1, one message per observation on ``<prefix>/<datastream id>/observations``) and HTTP (JSON
arrays POSTed to ``/api/v1/observations``), paced to N observations a second in all.
"""

from __future__ import annotations

import http.client
import math
import os
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import Engine, select

from haechi.core.errors import InvalidInput
from haechi.model.catalogue import catalogue
from haechi.model.units import converter
from haechi.store import sensing
from haechi.store.schema import datastreams

from . import mqtt

HOUR = 3600.0
DAY = 24 * HOUR
YEAR_DAYS = 365.25
SEOUL_LON = 126.98  # where a stream without a location is taken to be

# ── climate (Seoul) ──────────────────────────────────────────────────────────────────────
# Temperature: KMA climate normals for Seoul put the annual mean near 12.5 °C, January near −2 °C
# and August near 26 °C; the typical daily range is about 8 °C.
MEAN_TEMPERATURE_C = 12.5
SEASONAL_TEMPERATURE_C = 14.0
WARMEST_DAY = 213  # early August
DAILY_TEMPERATURE_C = 4.0  # half the daily range
WARMEST_HOUR = 15.0  # local solar time
RAIN_COOLING_C = 2.5
# Humidity: Seoul's monthly means run from about 55 % (winter, spring) to about 80 % (July–August).
MEAN_HUMIDITY_PCT = 66.0
SEASONAL_HUMIDITY_PCT = 12.0
DAILY_HUMIDITY_PCT = 15.0
RAIN_HUMIDITY_PCT = 97.0
# Rain: Seoul gets about 1,400 mm a year, over half of it in June–August (장마 and typhoons),
# under 30 mm a month in winter (KMA normals); these spell and burst figures give about that
# total and shape over simulated years (tests/test_sensor_simulator.py).
DRY_SPELL_S = 200 * HOUR  # mean dry spell outside the monsoon
WET_SPELL_S = 12 * HOUR
MONSOON_DAY = 200  # mid-July
MONSOON_BOOST = 6.0  # dry spells end up to 1 + this many times faster at the monsoon's height
MONSOON_INTENSITY_BOOST = 2.0  # and bursts are up to 1 + this many times stronger
MONSOON_SHARPNESS = 2  # how narrowly the rains gather around mid-July
BURST_EVERY_S = 1.5 * HOUR  # within a wet spell
BURST_MM_H = 0.8  # mean peak intensity a burst adds (outside the monsoon)
HEAVY_BURST_SHARE, HEAVY_BURST_FACTOR = 0.05, 6.0  # convective cells: a few bursts are much stronger
BURST_DECAY_S = 1.0 * HOUR
TRACE_MM_H = 0.2  # below this it has stopped raining
# Rivers: Han River gauges in Seoul sit near 3 m at about 450 m³/s and reached 10.8 m near
# 20,000 m³/s at Hangang Bridge on 2020-08-06 (HRFCO, ../shared/data/han-river-gauges); a
# square-root rating through both points has this slope. Paldang Dam holds about El. 25 m and
# releases about 300 m³/s in ordinary weather (same data).
RATING_M_PER_SQRT_M3S = 0.0643
RUNOFF_M3S_PER_MM_H = 1500.0  # effective: city rain stands in for the basin's
UPSTREAM_LAG_S = 5 * HOUR  # rain → dam release
DOWNSTREAM_LAG_S = 6 * HOUR  # dam → gauges in town
DAM_LEVEL_M, DAM_RELEASE_M3S = 25.0, 300.0
# Tide at Ganghwa Bridge: mean near 3.4 m, swinging some 2.5 m either way (same data); M2 period.
TIDE_MEAN_M, TIDE_AMPLITUDE_M = 3.4, 2.5
TIDE_PERIOD_S, SPRING_NEAP_S = 12.42 * HOUR, 14.77 * DAY
# Fine dust: Seoul's annual PM10 mean is in the high 30s µg/m³ (AirKorea), highest in spring and
# lowest in late summer; PM2.5 is about half of PM10.
MEAN_PM10 = 38.0
SEASONAL_PM10 = 12.0
DUSTIEST_DAY = 75  # mid-March
RUSH_HOURS = (8.5, 21.0)
RUSH_BOOST = 0.15
RAIN_WASHOUT = 0.6
PM25_SHARE = 0.52

#: Steady properties (structural and hazard sensors): typical reading, noise, and floor.
STEADY: dict[str, tuple[float, float, float | None]] = {
    "tilt": (0.05, 0.002, None), "crack_width": (0.3, 0.002, 0.0), "strain": (120.0, 2.0, None),
    "vibration": (0.5, 0.2, 0.0), "gas": (0.0, 0.3, 0.0), "smoke": (0.0, 0.1, 0.0),
}


# ── pure building blocks ─────────────────────────────────────────────────────────────────


def diurnal(solar_hour: float, peak_hour: float) -> float:
    """+1 at ``peak_hour``, −1 twelve hours away (a 24-hour cosine)."""
    return math.cos(2 * math.pi * (solar_hour - peak_hour) / 24)


def seasonal(day_of_year: float, peak_day: float) -> float:
    """+1 on ``peak_day``, −1 half a year away."""
    return math.cos(2 * math.pi * (day_of_year - peak_day) / YEAR_DAYS)


def bump(solar_hour: float, centre: float, width_h: float = 1.5) -> float:
    """A Gaussian bump around ``centre`` on the 24-hour circle (rush hours)."""
    gap = (solar_hour - centre + 12) % 24 - 12
    return math.exp(-gap * gap / (2 * width_h * width_h))


def relax(value: float, target: float, dt_s: float, tau_s: float) -> float:
    """First-order approach to ``target`` with time constant ``tau_s`` (a linear reservoir)."""
    return target + (value - target) * math.exp(-dt_s / tau_s)


def wander(value: float, dt_s: float, tau_s: float, sigma: float, rng: random.Random) -> float:
    """One exact Ornstein–Uhlenbeck step around 0: correlated over ``tau_s``, spread ``sigma``."""
    keep = math.exp(-dt_s / tau_s)
    return value * keep + sigma * math.sqrt(1 - keep * keep) * rng.gauss(0, 1)


def monsoon_weight(day: float) -> float:
    """0 outside the summer rains, rising to 1 at the height of the monsoon (mid-July)."""
    return max(0.0, seasonal(day, MONSOON_DAY)) ** MONSOON_SHARPNESS


def solar_hour(at: datetime, lon: float) -> float:
    """Local solar time in hours: what the sun (and so the diurnal cycle) follows."""
    utc = at.astimezone(UTC)
    return (utc.hour + utc.minute / 60 + utc.second / 3600 + lon / 15) % 24


def day_of_year(at: datetime) -> float:
    return at.timetuple().tm_yday + at.hour / 24


def rating_level(flow_m3s: float, base_level_m: float, base_flow_m3s: float) -> float:
    """Gauge height (m) for a flow, on a square-root rating through the gauge's ordinary state."""
    return base_level_m + RATING_M_PER_SQRT_M3S * (math.sqrt(max(flow_m3s, 0.0)) - math.sqrt(base_flow_m3s))


# ── the city's weather and rivers ────────────────────────────────────────────────────────


@dataclass
class Rain:
    """City-wide rain: wet and dry spells; in a wet spell, bursts whose intensity (mm/h) decays."""

    rng: random.Random
    wet: bool = False
    intensity_mm_h: float = 0.0

    def advance(self, dt_s: float, day: float) -> float:
        """Move on ``dt_s`` seconds; returns the rain (mm) that fell in them."""
        fallen = self.intensity_mm_h * BURST_DECAY_S * (1 - math.exp(-dt_s / BURST_DECAY_S)) / HOUR
        self.intensity_mm_h *= math.exp(-dt_s / BURST_DECAY_S)
        if self.intensity_mm_h < TRACE_MM_H:
            self.intensity_mm_h = 0.0
        monsoon = monsoon_weight(day)
        self._switch_spell(dt_s, monsoon)
        if self.wet and self._happens(dt_s, BURST_EVERY_S):
            heavy = HEAVY_BURST_FACTOR if self.rng.random() < HEAVY_BURST_SHARE else 1.0
            mean_peak = BURST_MM_H * (1 + MONSOON_INTENSITY_BOOST * monsoon)
            self.intensity_mm_h += heavy * self.rng.expovariate(1 / mean_peak)
        return fallen

    def _switch_spell(self, dt_s: float, monsoon: float) -> None:
        mean_spell = WET_SPELL_S if self.wet else DRY_SPELL_S / (1 + MONSOON_BOOST * monsoon)
        if self._happens(dt_s, mean_spell):
            self.wet = not self.wet

    def _happens(self, dt_s: float, mean_wait_s: float) -> bool:
        return self.rng.random() < 1 - math.exp(-dt_s / mean_wait_s)


@dataclass
class City:
    """What every station shares: the time, the rain, the rivers, pollution episodes."""

    rng: random.Random
    rain: Rain
    rain_mm: float = 0.0  # fallen in the last step
    rain_rate_mm_h: float = 0.0
    upstream_m3s: float = 0.0  # runoff reaching the dam
    downstream_m3s: float = 0.0  # runoff reaching the gauges in town
    pm_episode: float = 0.0  # log-factor of synoptic pollution episodes
    dam_wobble_m: float = 0.0

    def advance(self, dt_s: float, day: float) -> None:
        self.rain_mm = self.rain.advance(dt_s, day)
        self.rain_rate_mm_h = self.rain_mm / (dt_s / HOUR) if dt_s > 0 else 0.0
        inflow = RUNOFF_M3S_PER_MM_H * self.rain_rate_mm_h
        self.upstream_m3s = relax(self.upstream_m3s, inflow, dt_s, UPSTREAM_LAG_S)
        self.downstream_m3s = relax(self.downstream_m3s, self.upstream_m3s, dt_s, DOWNSTREAM_LAG_S)
        self.pm_episode = wander(self.pm_episode, dt_s, DAY, 0.45, self.rng)
        self.dam_wobble_m = wander(self.dam_wobble_m, dt_s, 6 * HOUR, 0.03, self.rng)


@dataclass
class Station:
    """One place's own share of the weather: fixed biases and slowly wandering anomalies."""

    rng: random.Random
    lon: float
    rain_share: float
    temperature_bias_c: float
    pm_bias: float
    temperature_anomaly_c: float = 0.0
    humidity_anomaly_pct: float = 0.0
    pm_anomaly: float = 0.0
    pm25_share: float = PM25_SHARE
    wetness: float = 0.0  # 0 dry … 1 soaked: drives cooling, humidity and washout
    rain_mm: float = 0.0
    rain_1h_mm: float = 0.0

    @classmethod
    def at(cls, lon: float, rng: random.Random) -> Station:
        return cls(rng, lon, rain_share=rng.lognormvariate(0, 0.3), temperature_bias_c=rng.gauss(0, 0.7),
                   pm_bias=rng.gauss(0, 0.2))

    def advance(self, dt_s: float, city: City) -> None:
        rng = self.rng
        self.rain_mm = city.rain_mm * self.rain_share * (rng.lognormvariate(0, 0.2) if city.rain_mm else 1.0)
        self.rain_1h_mm = self.rain_1h_mm * math.exp(-dt_s / HOUR) + self.rain_mm
        self.wetness = relax(self.wetness, 1.0 if city.rain_rate_mm_h > 0.5 else 0.0, dt_s,
                             20 * 60 if city.rain_rate_mm_h > 0.5 else 3 * HOUR)
        self.temperature_anomaly_c = wander(self.temperature_anomaly_c, dt_s, 3 * HOUR, 1.0, rng)
        self.humidity_anomaly_pct = wander(self.humidity_anomaly_pct, dt_s, 3 * HOUR, 4.0, rng)
        self.pm_anomaly = wander(self.pm_anomaly, dt_s, 6 * HOUR, 0.25, rng)
        self.pm25_share = PM25_SHARE + wander(self.pm25_share - PM25_SHARE, dt_s, 12 * HOUR, 0.05, rng)

    # each in its catalogue unit, before instrument noise

    def temperature_c(self, model_time: datetime) -> float:
        day, hour = day_of_year(model_time), solar_hour(model_time, self.lon)
        daily = DAILY_TEMPERATURE_C * (1 - 0.7 * self.wetness) * diurnal(hour, WARMEST_HOUR)
        return (MEAN_TEMPERATURE_C + SEASONAL_TEMPERATURE_C * seasonal(day, WARMEST_DAY) + daily
                - RAIN_COOLING_C * self.wetness + self.temperature_bias_c + self.temperature_anomaly_c)

    def humidity_pct(self, model_time: datetime) -> float:
        day, hour = day_of_year(model_time), solar_hour(model_time, self.lon)
        daily = DAILY_HUMIDITY_PCT * (1 - 0.7 * self.wetness) * diurnal(hour, WARMEST_HOUR)
        dry = MEAN_HUMIDITY_PCT + SEASONAL_HUMIDITY_PCT * seasonal(day, MONSOON_DAY) - daily + self.humidity_anomaly_pct
        return min(100.0, max(8.0, dry + self.wetness * (RAIN_HUMIDITY_PCT - dry)))

    def pm10(self, model_time: datetime, city: City) -> float:
        day, hour = day_of_year(model_time), solar_hour(model_time, self.lon)
        rush = 1 + RUSH_BOOST * sum(bump(hour, h) for h in RUSH_HOURS)
        base = MEAN_PM10 + SEASONAL_PM10 * seasonal(day, DUSTIEST_DAY)
        episode = math.exp(city.pm_episode + self.pm_bias + self.pm_anomaly)
        return base * episode * rush * (1 - RAIN_WASHOUT * self.wetness)

    def pm25(self, model_time: datetime, city: City) -> float:
        return self.pm10(model_time, city) * min(max(self.pm25_share, 0.3), 0.8)


# ── streams ──────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Stream:
    """A datastream to simulate: what it measures, in which unit, at which kind of place, where."""

    id: int
    property: str
    unit: str
    place_kind: str | None = None
    lon: float | None = None
    lat: float | None = None

    @property
    def station_key(self) -> tuple:
        """Streams at one position share a station (a weather station's temperature, humidity, rain)."""
        if self.lon is None or self.lat is None:
            return ("stream", self.id)
        return (round(self.lon, 5), round(self.lat, 5))


@dataclass
class _Gauge:
    """A stream's own constants: where its river or reservoir sits in ordinary weather."""

    base_level_m: float
    base_flow_m3s: float
    flow_share: float
    tide_phase: float


#: Instrument noise (standard deviation, catalogue unit) and the decimals values are reported with.
NOISE = {"air_temperature": (0.05, 2), "relative_humidity": (0.3, 1), "pm10": (1.0, 1), "pm25": (0.5, 1),
         "water_level": (0.003, 3), "discharge": (0.01, 1), "rainfall": (0.0, 2), "rainfall_1h": (0.0, 2)}
RELATIVE_NOISE = {"discharge"}  # noise as a share of the value


def simulated(stream: Stream) -> bool:
    """Whether the simulator has a model for this stream's property."""
    return stream.property in NOISE or stream.property in STEADY


class CitySimulation:
    """Every stream of a city, advanced together; ``step(at)`` gives one observation per stream.

    Deterministic for a seed and a sequence of times. ``speed`` runs the weather faster than the
    clock (a day in an hour at 24) while observations keep the real times asked for.
    """

    def __init__(self, streams: Sequence[Stream], *, seed: int = 0, start: datetime, speed: float = 1.0) -> None:
        self.streams = sorted((s for s in streams if simulated(s)), key=lambda s: s.id)
        self.skipped = sorted(s.id for s in streams if not simulated(s))
        self.start, self.speed = start, speed
        self.rng = random.Random(f"haechi-simulate:{seed}")
        self.city = City(self.rng, Rain(self.rng))
        self.stations: dict[tuple, Station] = {}
        for s in self.streams:
            if s.station_key not in self.stations:
                self.stations[s.station_key] = Station.at(s.lon if s.lon is not None else SEOUL_LON,
                                                          random.Random(f"station:{seed}:{s.station_key}"))
        self.gauges = {s.id: self._gauge(random.Random(f"gauge:{seed}:{s.id}")) for s in self.streams}
        self.noise = random.Random(f"noise:{seed}")
        self._last: datetime | None = None
        self._dust_readings: dict[tuple, dict[str, float]] = {}

    @staticmethod
    def _gauge(rng: random.Random) -> _Gauge:
        return _Gauge(base_level_m=rng.uniform(2.8, 3.2), base_flow_m3s=rng.uniform(350, 650),
                      flow_share=rng.uniform(0.85, 1.15), tide_phase=rng.uniform(0, 2 * math.pi))

    def model_time(self, at: datetime) -> datetime:
        return self.start + (at - self.start) * self.speed

    def step(self, at: datetime) -> list[dict[str, Any]]:
        """Advance to ``at`` (aware, not before the previous step) and observe every stream then."""
        dt_s = 0.0 if self._last is None else (at - self._last).total_seconds() * self.speed
        if dt_s < 0:
            raise ValueError(f"time runs forwards: {at.isoformat()} is before {self._last.isoformat()}")
        self._last = at
        model_time = self.model_time(at)
        if dt_s > 0:
            self.city.advance(dt_s, day_of_year(model_time))
            for station in self.stations.values():
                station.advance(dt_s, self.city)
        when = at.isoformat()
        self._dust_readings = {}
        return [self._observation(s, when, self._value(s, model_time)) for s in self.streams]

    def _observation(self, stream: Stream, when: str, value: float) -> dict[str, Any]:
        """In the datastream's own unit, as its device would report; else in the catalogue's, said so."""
        observation: dict[str, Any] = {"datastream_id": stream.id, "phenomenon_time": when, "result": value}
        unit = catalogue()[stream.property].unit_symbol
        if unit != stream.unit:
            try:
                observation["result"] = round(converter(unit, stream.unit)(value), 6)
            except InvalidInput:  # no conversion this way round: let the pipeline convert at the edge
                observation["unit"] = unit
        return observation

    def _value(self, stream: Stream, model_time: datetime) -> float:
        if stream.property in STEADY:
            typical, sigma, floor = STEADY[stream.property]
            value = typical + self.noise.gauss(0, sigma)
            return round(value if floor is None else max(floor, value), 4)
        if stream.property in ("pm10", "pm25"):
            return self._dust(stream, model_time)[stream.property]
        sigma, decimals = NOISE[stream.property]
        value = self._truth(stream, model_time)
        value += self.noise.gauss(0, sigma * value if stream.property in RELATIVE_NOISE else sigma)
        if stream.property == "relative_humidity":
            value = min(100.0, value)
        if stream.property != "air_temperature":
            value = max(value, 0.0)
        return round(value, decimals)

    def _dust(self, stream: Stream, model_time: datetime) -> dict[str, float]:
        """Both fine-dust readings of a station in this round, measured together so PM2.5 ≤ PM10."""
        key = stream.station_key
        if key not in self._dust_readings:
            station = self.stations[key]
            pm10 = max(1.0, station.pm10(model_time, self.city) + self.noise.gauss(0, NOISE["pm10"][0]))
            pm25 = min(pm10, max(0.5, station.pm25(model_time, self.city) + self.noise.gauss(0, NOISE["pm25"][0])))
            self._dust_readings[key] = {"pm10": round(pm10, 1), "pm25": round(pm25, 1)}
        return self._dust_readings[key]

    def _truth(self, stream: Stream, model_time: datetime) -> float:
        station, gauge = self.stations[stream.station_key], self.gauges[stream.id]
        match stream.property:
            case "air_temperature":
                return station.temperature_c(model_time)
            case "relative_humidity":
                return station.humidity_pct(model_time)
            case "rainfall":
                return station.rain_mm
            case "rainfall_1h":
                return station.rain_1h_mm
            case "discharge":
                return self._flow(stream, gauge)
            case "water_level":
                return self._level(stream, gauge, model_time)
        raise ValueError(f"no model for {stream.property}")

    def _flow(self, stream: Stream, gauge: _Gauge) -> float:
        if stream.place_kind == "dam":  # the dam passes its inflow on
            return DAM_RELEASE_M3S * gauge.flow_share + 0.9 * self.city.upstream_m3s
        return gauge.base_flow_m3s + gauge.flow_share * self.city.downstream_m3s

    def _level(self, stream: Stream, gauge: _Gauge, model_time: datetime) -> float:
        if stream.place_kind == "dam":  # held near its operating level, drawn down a little in floods
            drawdown = 0.3 * min(1.0, self.city.upstream_m3s / 10_000)
            return DAM_LEVEL_M - drawdown + self.city.dam_wobble_m
        if stream.place_kind == "tide_station":
            seconds = (model_time - datetime(2000, 1, 1, tzinfo=UTC)).total_seconds()
            spring_neap = 1 + 0.3 * math.cos(2 * math.pi * seconds / SPRING_NEAP_S)
            tide = TIDE_AMPLITUDE_M * spring_neap * math.cos(2 * math.pi * seconds / TIDE_PERIOD_S + gauge.tide_phase)
            return TIDE_MEAN_M + tide + 0.0001 * self.city.downstream_m3s
        return rating_level(self._flow(stream, gauge), gauge.base_level_m, gauge.base_flow_m3s)


def round_times(start: datetime, interval_s: float) -> Iterator[datetime]:
    """start, start + interval, … : when each round of observations is taken."""
    n = 0
    while True:
        yield start + timedelta(seconds=n * interval_s)
        n += 1


def rounds(streams: Sequence[Stream], times: Iterable[datetime], *, seed: int = 0,
           speed: float = 1.0) -> Iterator[list[dict[str, Any]]]:
    """One list of observations (every stream) for each time; pure and repeatable for a seed."""
    simulation: CitySimulation | None = None
    for at in times:
        simulation = simulation or CitySimulation(streams, seed=seed, start=at, speed=speed)
        yield simulation.step(at)


# ── reading the streams from the store ───────────────────────────────────────────────────


def load_streams(engine: Engine) -> list[Stream]:
    """The datastreams of the integrated DB, with the kind of place each belongs to."""
    with engine.connect() as conn:
        profiles = sensing.stream_profiles(conn)
        rows = conn.execute(select(datastreams.c.id, datastreams.c.properties))
        kinds = {i: (properties or {}).get("place_kind") for i, properties in rows}
    return [Stream(p["id"], p["property"], p["unit_symbol"], kinds.get(p["id"]), p["lon"], p["lat"]) for p in profiles]


# ── publishers ───────────────────────────────────────────────────────────────────────────


class PublishRefused(Exception):
    """The receiver refused what was sent (bad token, bad request): retrying would not help."""


class Publisher(Protocol):
    sent: int  # observations handed over
    confirmed: int  # of which the receiver has acknowledged

    def send(self, observations: list[dict[str, Any]]) -> None: ...

    def backlog(self) -> int: ...  # sent, not yet acknowledged

    def close(self, timeout: float) -> None: ...


class MqttPublisher:
    """QoS 1, one message per observation; paho keeps and resends what the broker has not acked."""

    def __init__(self, url: str, *, topic_prefix: str = mqtt.TOPIC_PREFIX, client_id: str | None = None,
                 session_expiry: int = 3600) -> None:
        address = mqtt.broker_address(url)
        self.topic_prefix, self.sent, self.confirmed = topic_prefix, 0, 0
        self.client = client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=client_id or f"haechi-simulator-{os.getpid()}",
            protocol=paho.MQTTv5)
        if address.tls:
            client.tls_set()
        if address.username:
            client.username_pw_set(address.username, address.password)
        client.on_publish = self._on_puback
        client.reconnect_delay_set(1, 30)
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = session_expiry
        client.connect_async(address.host, address.port, 30, clean_start=False, properties=properties)
        client.loop_start()

    def _on_puback(self, *_) -> None:  # once per message, even when resent after a reconnect
        self.confirmed += 1

    def send(self, observations: list[dict[str, Any]]) -> None:
        for o in observations:
            self.client.publish(mqtt.observation_topic(o["datastream_id"], self.topic_prefix),
                                mqtt.message_payload(o), qos=1)
            self.sent += 1

    def backlog(self) -> int:
        return self.sent - self.confirmed

    def close(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the broker's acknowledgements, then disconnect."""
        deadline = time.monotonic() + timeout
        while self.backlog() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.client.disconnect()
        self.client.loop_stop()


class HttpPublisher:
    """JSON arrays POSTed to ``<url>/api/v1/observations`` on one kept-alive connection; retries
    connection failures and 5xx with backoff (the store is idempotent, so a resend is harmless)."""

    PATH = "/api/v1/observations"

    def __init__(self, url: str, token: str | None = None, *, backoff: tuple[float, float] = (0.5, 30.0)) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"an HTTP URL looks like http://127.0.0.1:8000, not {url!r}")
        self.parts, self.backoff = parts, backoff
        self.path = parts.path.rstrip("/") + self.PATH
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.sent = self.confirmed = self.refused = 0
        self.connection: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self.parts.scheme == "https" else http.client.HTTPConnection
        return kind(self.parts.hostname, self.parts.port, timeout=60)

    def send(self, observations: list[dict[str, Any]]) -> None:
        body, delay = orjson.dumps(observations), self.backoff[0]
        while True:
            try:
                status, reply = self._post(body)
            except (OSError, http.client.HTTPException):
                status, reply = None, b""
                self.connection = None
            if status is not None and status < 300:
                self._count(len(observations), reply)
                return
            if status is not None and 400 <= status < 500:
                raise PublishRefused(f"{self.path} answered {status}: {reply[:500].decode(errors='replace')}")
            time.sleep(delay)
            delay = min(delay * 2, self.backoff[1])

    def _post(self, body: bytes) -> tuple[int, bytes]:
        self.connection = self.connection or self._connect()
        self.connection.request("POST", self.path, body=body, headers=self.headers)
        response = self.connection.getresponse()
        return response.status, response.read()

    def _count(self, sent: int, reply: bytes) -> None:
        self.sent += sent
        self.confirmed += sent
        try:
            rejected = orjson.loads(reply).get("rejected", 0)
        except (orjson.JSONDecodeError, AttributeError):
            rejected = 0
        self.refused += rejected if isinstance(rejected, int) else len(rejected)

    def backlog(self) -> int:
        return 0  # each POST waits for its answer

    def close(self, timeout: float) -> None:
        if self.connection is not None:
            self.connection.close()


# ── pacing ───────────────────────────────────────────────────────────────────────────────


@dataclass
class Progress:
    """Where a run stands: observations handed to the publisher, acknowledged, waiting for an ack."""

    sent: int = 0
    confirmed: int = 0
    backlog: int = 0
    elapsed_s: float = 0.0
    interrupted: bool = False
    skipped_streams: list[int] = field(default_factory=list)


MAX_BACKLOG = 100_000  # un-acked observations before generation pauses (the broker is away)
MAX_CHUNK = 5_000  # observations per send (one HTTP request)


def run(
    streams: Sequence[Stream], publisher: Publisher, rate: float, *, duration: float | None = None,
    seed: int = 0, speed: float = 1.0, on_progress: Callable[[Progress], None] = lambda _: None,
    clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] = lambda: datetime.now(UTC), flush_timeout: float = 30.0,
) -> Progress:
    """Publish ``rate`` observations a second in all for ``duration`` seconds (None: until Ctrl-C).

    Each stream reports every ``len(streams) / rate`` seconds, stamped with its round's time, so
    no two observations of a stream share a timestamp and none lies in the future. Ctrl-C stops
    cleanly: what was handed over gets ``flush_timeout`` seconds to be acknowledged.
    """
    if rate <= 0:
        raise ValueError("rate must be a positive number of observations per second")
    simulation = CitySimulation(streams, seed=seed, start=now(), speed=speed)
    if not simulation.streams:
        raise ValueError("none of these datastreams has a property the simulator models")
    progress = Progress(skipped_streams=simulation.skipped)
    times = round_times(simulation.start, len(simulation.streams) / rate)
    waiting: deque[dict[str, Any]] = deque()
    total = math.inf if duration is None else int(rate * duration)
    scheduled, started = 0, clock()
    try:
        while scheduled < total:
            progress.elapsed_s = clock() - started
            due = min(int(rate * progress.elapsed_s), total) - scheduled
            if due <= 0 or publisher.backlog() > MAX_BACKLOG:
                _report(progress, publisher, on_progress)
                sleep(0.02)
                continue
            due = min(due, MAX_CHUNK)
            while len(waiting) < due:
                waiting.extend(simulation.step(next(times)))
            publisher.send([waiting.popleft() for _ in range(due)])
            scheduled += due
            _report(progress, publisher, on_progress)
    except KeyboardInterrupt:
        progress.interrupted = True
    publisher.close(flush_timeout)
    progress.elapsed_s = clock() - started
    _report(progress, publisher, on_progress)
    return progress


def _report(progress: Progress, publisher: Publisher, on_progress: Callable[[Progress], None]) -> None:
    progress.sent, progress.confirmed, progress.backlog = publisher.sent, publisher.confirmed, publisher.backlog()
    on_progress(progress)
