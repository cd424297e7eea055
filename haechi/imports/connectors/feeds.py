"""The four official feeds: which requests a run makes (paging, gap backfill) and what their records
say (pure reading of each record into observations, or refusals with the reason).

Times in every feed are Korea Standard Time (UTC+9, no daylight saving since 1988).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from functools import cache, partial
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from . import answers
from .client import ApiClient, Limits

KST = timezone(timedelta(hours=9))
CONFIG = Path(__file__).with_name("connectors.toml")


@dataclass(frozen=True)
class Obs:
    """One value read from a feed, in the catalogue property's unit."""

    ref: str
    name: str
    property: str
    unit: str
    time: datetime
    value: float


@dataclass(frozen=True)
class Refusal:
    """A value the feed published but that is no measurement (a flag, a dash, text), kept with why."""

    ref: str
    field: str
    reason: str
    raw: dict


@dataclass
class Pulled:
    """What a run fetched: the records, and the APIs' own words when they had no data."""

    records: list[dict]
    notes: list[str]


@dataclass
class Read:
    """What a feed made of its records: the observations, and what it refused with why."""

    found: list[Obs] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)

    def refuse(self, ref: str, field_name: str, reason: str, record: dict) -> None:
        self.refused.append(Refusal(ref, field_name, reason, record))

    def value(self, ref: str, name: str, measure: tuple[str, str, str], moment: datetime, published: Any,
              record: dict, above: float | None = None) -> None:
        """One published value of ``measure`` (field, property, unit): a blank is not observed, text is
        refused, a number (above ``above``, when the feed writes "missing" as a low sentinel) kept."""
        field_name, prop, unit = measure
        if blank(published):
            return
        if (number_ := number(published)) is None:
            self.refuse(ref, field_name, f"not a number: {published!r}", record)
        elif above is None or number_ > above:
            self.found.append(Obs(ref, name, prop, unit, moment, number_))

    def result(self) -> tuple[list[Obs], list[Refusal]]:
        return self.found, self.refused


def number(text: Any) -> float | None:
    try:
        return float(str(text).strip())
    except ValueError:
        return None


def blank(value: Any) -> bool:
    return value is None or str(value).strip() == ""


def kst(text: str, *formats: str) -> datetime | None:
    for fmt in formats:
        try:
            return datetime.strptime(str(text).strip(), fmt).replace(tzinfo=KST).astimezone(UTC)
        except ValueError:
            continue
    return None


def compact(moment: datetime, fmt: str) -> str:
    return moment.astimezone(KST).strftime(fmt)


class Feed:
    """One connector, configured by its block in ``connectors.toml``."""

    def __init__(self, name: str, config: dict, codes: dict[str, dict[str, str]]) -> None:
        self.name, self.config = name, config
        self.codes = codes.get(config["family"], {})
        self.place_kind: str = config["place_kind"]
        self.interval_s: float = float(config["interval_s"])
        self.limits = Limits(config["requests_per_s"], config["attempts"], config["backoff_s"], config["timeout_s"])

    @property
    def api(self) -> str:
        return self.config["title"].split(" · ")[0]

    @property
    def source(self) -> str:
        """Where the data comes from, for records and logs: the API's address without any key."""
        return self.config["base_url"]

    def key(self, environ=os.environ) -> str | None:
        """The service key from the first of ``key_env`` that is set."""
        for variable in self.config["key_env"]:
            if environ.get(variable, "").strip():
                return environ[variable].strip()
        return None

    async def pull(self, client: ApiClient, key: str, last: dict[str, datetime], now: datetime) -> Pulled:
        raise NotImplementedError

    def read(self, records: list[dict]) -> tuple[list[Obs], list[Refusal]]:
        raise NotImplementedError

    async def _paged(self, client: ApiClient, url: str, read, params: dict, pulled: Pulled,
                     max_pages: int = 100) -> list[dict]:
        """Every page of a pageNo/numOfRows query, until the API's totalCount is reached."""
        found: list[dict] = []
        size = self.config["page_size"]
        for page in range(1, max_pages + 1):
            answer = await client.get(url, read, params | {"pageNo": page, "numOfRows": size})
            found += answer.records
            if answer.note:
                pulled.notes.append(answer.note)
            if not answer.records or answer.total is None or len(found) >= answer.total:
                break
        return found

    def _window_start(self, last: datetime | None, now: datetime, step: timedelta) -> datetime:
        """After the newest stored observation (a gap back-filled up to max_backfill_h), or the first lookback."""
        start = last + step if last else now - timedelta(hours=self.config["first_lookback_h"])
        return max(start, now - timedelta(hours=self.config.get("max_backfill_h", self.config["first_lookback_h"])))


def _data_go_kr_key(key: str) -> str:
    """The portal issues an 'Encoding' key (already %-escaped) and a 'Decoding' one; send the decoded form once."""
    return unquote(key) if "%" in key else key


# ── AirKorea ─────────────────────────────────────────────────────────────────────────────


class AirKorea(Feed):
    """Every Seoul station's latest hour in one paged query (getCtprvnRltmMesureDnsty); a station whose
    stored hours stop before it is back-filled from its own history (getMsrstnAcctoRltmMesureDnsty)."""

    async def pull(self, client, key, last, now):
        c, pulled = self.config, Pulled([], [])
        read = partial(answers.read_data_go_kr, codes=self.codes, api=self.api)
        common = {"serviceKey": _data_go_kr_key(key), "returnType": "json", "ver": c["version"]}
        city = await self._paged(client, f"{c['base_url']}/getCtprvnRltmMesureDnsty", read,
                                 common | {"sidoName": c["sido"]}, pulled)
        pulled.records += city
        for station, newest in self._newest(city).items():
            known = last.get(station)
            if known is None or newest - known <= timedelta(hours=1):
                continue
            history = await self._paged(client, f"{c['base_url']}/getMsrstnAcctoRltmMesureDnsty", read,
                                        common | {"stationName": station, "dataTerm": self._term(newest - known)},
                                        pulled)
            pulled.records += [r | {"stationName": r.get("stationName") or station} for r in history]
        return pulled

    def _newest(self, records: list[dict]) -> dict[str, datetime]:
        newest: dict[str, datetime] = {}
        for r in records:
            station, moment = r.get("stationName"), airkorea_time(r.get("dataTime"))
            if station and moment and (station not in newest or moment > newest[station]):
                newest[station] = moment
        return newest

    def _term(self, gap: timedelta) -> str:
        for term, hours in self.config["backfill_terms"]:
            if gap <= timedelta(hours=hours):
                return term
        return self.config["backfill_terms"][-1][0]

    def read(self, records):
        read = Read()
        for r in records:
            station, moment = str(r.get("stationName") or "").strip(), airkorea_time(r.get("dataTime"))
            if not station or moment is None:
                read.refuse(station, "dataTime", f"no station or unreadable time {r.get('dataTime')!r}", r)
                continue
            for prefix, prop, unit in self.config["measures"]:
                value, flag = r.get(f"{prefix}Value"), r.get(f"{prefix}Flag")
                if value is None and flag is None:
                    continue  # not published by this version of the service
                if not blank(flag):
                    read.refuse(station, f"{prefix}Value", f"flagged by AirKorea: {flag}", r)
                elif number(value) is None:  # AirKorea writes "-" (or nothing) for an hour not measured
                    read.refuse(station, f"{prefix}Value", f"no measurement ({value!r})", r)
                else:
                    read.value(station, station, (f"{prefix}Value", prop, unit), moment, value, r)
        return read.result()


def airkorea_time(text: Any) -> datetime | None:
    """"YYYY-MM-DD HH:MM" in KST, where hour 24:00 is the midnight ending that day."""
    if blank(text):
        return None
    day, _, clock = str(text).strip().partition(" ")
    if clock == "24:00":
        start = kst(day, "%Y-%m-%d")
        return start + timedelta(days=1) if start else None
    return kst(str(text), "%Y-%m-%d %H:%M")


# ── KMA ASOS ─────────────────────────────────────────────────────────────────────────────


class KmaAsos(Feed):
    """Each station's hours since its newest stored one, up to the end of the day before (KST)."""

    async def pull(self, client, key, last, now):
        c, pulled = self.config, Pulled([], [])
        read = partial(answers.read_data_go_kr, codes=self.codes, api=self.api)
        today = now.astimezone(KST).replace(hour=0, minute=0, second=0, microsecond=0)
        end = today - timedelta(days=c["days_behind"] - 1, hours=1) if c["days_behind"] else now
        for station in c["stations"]:
            start = self._window_start(last.get(station), now, timedelta(hours=1))
            start = start.astimezone(KST).replace(minute=0, second=0, microsecond=0)
            if start > end:
                continue  # up to date
            pulled.records += await self._paged(client, c["base_url"], read, {
                "serviceKey": _data_go_kr_key(key), "dataType": "JSON", "dataCd": "ASOS", "dateCd": "HR",
                "startDt": compact(start, "%Y%m%d"), "startHh": compact(start, "%H"),
                "endDt": compact(end, "%Y%m%d"), "endHh": compact(end, "%H"), "stnIds": station}, pulled)
        return pulled

    def read(self, records):
        read = Read()
        for r in records:
            station, moment = str(r.get("stnId") or "").strip(), kst(r.get("tm", ""), "%Y-%m-%d %H:%M")
            if not station or moment is None:
                read.refuse(station, "tm", f"no station or unreadable time {r.get('tm')!r}", r)
                continue
            name = str(r.get("stnNm") or station)
            for field_name, prop, unit, flag_field in self.config["measures"]:
                flag = str(r.get(flag_field) or "").strip()
                if flag in self.config["bad_flags"]:
                    read.refuse(station, field_name, self.config["bad_flags"][flag], r)
                else:  # a blank is not observed that hour (rain: none recorded)
                    read.value(station, name, (field_name, prop, unit), moment, r.get(field_name), r)
        return read.result()


# ── KMA AWS (API허브) ─────────────────────────────────────────────────────────────────────


class KmaAws(Feed):
    """Snapshots of every station each ``minute_step`` minutes (``tm2``, ``stn=0``), kept for the
    city's stations: one request a run, one per missing snapshot after an outage."""

    async def pull(self, client, key, last, now):
        c, pulled = self.config, Pulled([], [])
        read = partial(answers.read_kma_text, columns=c["columns"], api=self.api)
        step = timedelta(minutes=c["minute_step"])
        known = [last[s] for s in c["stations"] if s in last]  # a station that never reports holds nothing back
        latest = _floor(now - timedelta(minutes=c["delay_min"]), step)
        moment = _ceil(self._window_start(min(known) if known else None, now, step), step)
        wanted = set(c["stations"])
        while moment <= latest:
            answer = await client.get(c["base_url"], read, {"tm2": compact(moment, "%Y%m%d%H%M"), "stn": "0",
                                                            "disp": "1", "help": "0", "authKey": key})
            pulled.records += [r for r in answer.records if r.get("STN") in wanted]
            if answer.note:
                pulled.notes.append(f"{compact(moment, '%Y-%m-%d %H:%M')}: {answer.note}")
            moment += step
        return pulled

    def read(self, records):
        read = Read()
        floor = self.config["missing_at_or_below"]  # at or below: no such sensor, or no value that minute
        for r in records:
            station = str(r.get("STN") or "").strip()
            moment = kst(r.get("TM", ""), "%Y%m%d%H%M", "%y%m%d%H%M")
            if not station or moment is None:
                read.refuse(station, "TM", f"no station or unreadable time {r.get('TM')!r}", r)
                continue
            measures = self.config["measures"] + (self.config["hourly_measures"] if moment.minute == 0 else [])
            for measure in measures:
                read.value(station, station, tuple(measure), moment, r.get(measure[0]), r, above=floor)
        return read.result()


def _floor(moment: datetime, step: timedelta) -> datetime:
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    return moment - (moment - epoch) % step


def _ceil(moment: datetime, step: timedelta) -> datetime:
    down = _floor(moment, step)
    return down if down == moment else down + step


# ── HRFCO ────────────────────────────────────────────────────────────────────────────────


class Hrfco(Feed):
    """Each gauge's 10-minute levels since its newest stored one; the key is a path segment."""

    async def pull(self, client, key, last, now):
        c, pulled = self.config, Pulled([], [])
        read = partial(answers.read_hrfco, api=self.api)
        end = now.astimezone(KST).replace(second=0, microsecond=0)
        for gauge in c["stations"]:
            start = self._window_start(last.get(gauge), now, timedelta(minutes=10))
            if start > end:
                continue
            url = (f"{c['base_url']}/{quote(key, safe='')}/waterlevel/list/10M/{gauge}/"
                   f"{compact(start, '%Y%m%d%H%M')}/{compact(end, '%Y%m%d%H%M')}.json")
            answer = await client.get(url, read)
            pulled.records += answer.records
            if answer.note:
                pulled.notes.append(f"{gauge}: {answer.note}")
        return pulled

    def read(self, records):
        read = Read()
        for r in records:
            gauge, moment = str(r.get("wlobscd") or "").strip(), kst(r.get("ymdhm", ""), "%Y%m%d%H%M")
            if not gauge or moment is None:
                read.refuse(gauge, "ymdhm", f"no gauge or unreadable time {r.get('ymdhm')!r}", r)
                continue
            for measure in self.config["measures"]:  # a blank: the gauge does not report it (discharge) now
                read.value(gauge, gauge, tuple(measure), moment, r.get(measure[0]), r)
        return read.result()


# ── Seoul S-DoT ──────────────────────────────────────────────────────────────────────────


class Sdot(Feed):
    """The service lists the newest rows first: page back until the rows reach the oldest sensor's
    newest stored hour (a sensor long silent holds back at most max_backfill_h; the first run
    reaches first_lookback_h), at most max_pages pages of 1,000."""

    async def pull(self, client, key, last, now):
        c, pulled = self.config, Pulled([], [])
        read = partial(answers.read_seoul, codes=self.codes, service=c["service"], api=self.api)
        floor = self._window_start(min(last.values()) if last else None, now, timedelta(0))
        size = c["page_size"]
        for page in range(c["max_pages"]):
            first, final = page * size + 1, (page + 1) * size
            answer = await client.get(f"{c['base_url']}/{quote(key, safe='')}/json/{c['service']}/{first}/{final}/",
                                      read)
            pulled.records += answer.records
            if answer.note:
                pulled.notes.append(answer.note)
            times = [t for r in answer.records if (t := self._time(r))]
            last_page = answer.total is not None and final >= answer.total
            if not answer.records or last_page or (times and min(times) <= floor):
                break
        return pulled

    def _field(self, record: dict, names: list[str]) -> Any:
        return next((record[n] for n in names if n in record), None)

    def _time(self, record: dict) -> datetime | None:
        text = self._field(record, self.config["time_fields"])
        return None if blank(text) else kst(text, "%Y-%m-%d_%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y%m%d%H%M")

    def read(self, records):
        read = Read()
        for r in records:
            serial, moment = str(self._field(r, self.config["ref_fields"]) or "").strip(), self._time(r)
            if not serial or moment is None:
                read.refuse(serial, "SENSING_TIME", "no serial or unreadable time", r)
                continue
            for names, prop, unit in self.config["measures"]:  # each field under any of its known spellings
                read.value(serial, f"S-DoT {serial}", (names[0], prop, unit), moment, self._field(r, names), r)
        return read.result()


KINDS = {"airkorea": AirKorea, "kma-asos": KmaAsos, "kma-aws": KmaAws, "hrfco": Hrfco, "sdot": Sdot}


@cache
def _config(path: Path = CONFIG) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


def tick_s() -> float:
    return float(_config()["tick_s"])


def feeds(overrides: dict[str, dict] | None = None) -> dict[str, Feed]:
    """Every configured connector by name; ``overrides`` change settings of some (tests, one-off runs)."""
    config = _config()
    return {name: KINDS[name](name, block | (overrides or {}).get(name, {}), config["result_codes"])
            for name, block in config["connectors"].items()}
