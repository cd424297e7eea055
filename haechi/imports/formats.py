"""The public formats, as layouts: which column holds what, in which unit (docs/imports.md shows samples).

Column names are those of the publishers' downloads; units are the ones printed in the headers or
the portals' field descriptions. Readings are stored in the catalogue's units (ingest/properties.csv).
"""

from __future__ import annotations

import re

from .registers import vocabulary
from .tabular import Layout, Measure, airkorea_times, iso_times, kst_times

#: 기상자료개방포털 (data.kma.go.kr) › 지상 › 종관기상관측(ASOS) › 시간자료, CSV download.
#: 강수량 is the 1-hour total and is left blank in hours without rain (blank is stored as nothing).
KMA_ASOS = Layout(
    kind="kma-asos", place_kind="weather_station", station_column="지점", name_column="지점명",
    time_column="일시", parse_time=kst_times("%Y-%m-%d %H:%M"),
    measures=(Measure("기온(°C)", "air_temperature", "Cel"), Measure("강수량(mm)", "rainfall_1h", "mm"),
              Measure("풍속(m/s)", "wind_speed", "m/s"), Measure("습도(%)", "relative_humidity", "%")),
    source="KMA ASOS hourly data (기상자료개방포털 종관기상관측 시간자료)",
)

#: 에어코리아 (airkorea.or.kr) › 최종확정 측정자료: gases in ppm, particulates in µg/m³, hourly, KST, hour 01–24.
#: The station is keyed by its name (측정소명), as AirKorea's real-time API and the city pack key it, so
#: a file's readings land on the same ``air_station`` as the live feed's; 측정소코드 is reported as ignored.
AIRKOREA = Layout(
    kind="airkorea", place_kind="air_station", station_column="측정소명", name_column="측정소명",
    time_column="측정일시", parse_time=airkorea_times,
    measures=(Measure("SO2", "so2", "ppm"), Measure("CO", "co", "ppm"), Measure("O3", "o3", "ppm"),
              Measure("NO2", "no2", "ppm"), Measure("PM10", "pm10", "ug/m3"), Measure("PM25", "pm25", "ug/m3")),
    source="AirKorea final confirmed data (에어코리아 최종확정 측정자료)",
)

#: 서울 열린데이터광장 OA-2218 서울시 일별 평균 대기오염도 정보, CSV download (CP949; Korean headers with
#: units): one row per station and day (측정일시 YYYYMMDD, KST), blank where not measured. Daily means
#: go to the ``*_24h`` properties, never beside the hourly readings the warning rules judge; a mean is
#: stamped at the start of its day. 측정소명 is the AirKorea station name, the ``air_station`` ref,
#: except where Seoul spells it otherwise (vocabulary.toml [air_station_names]).
SEOUL_AIR_DAILY = Layout(
    kind="seoul-air-daily", place_kind="air_station", station_column="측정소명", name_column="측정소명",
    time_column="측정일시", parse_time=kst_times("%Y%m%d"),
    measures=(Measure("이산화질소농도(ppm)", "no2_24h", "ppm"), Measure("오존농도(ppm)", "o3_24h", "ppm"),
              Measure("일산화탄소농도(ppm)", "co_24h", "ppm"), Measure("아황산가스농도(ppm)", "so2_24h", "ppm"),
              Measure("미세먼지농도(㎍/㎥)", "pm10_24h", "ug/m3"),
              Measure("초미세먼지농도(㎍/㎥)", "pm25_24h", "ug/m3")),
    station_refs=vocabulary()["air_station_names"],
    source="Seoul daily mean air pollution per station (서울 열린데이터광장 OA-2218)",
)

#: 한강홍수통제소 open API (api.hrfco.go.kr) 10-minute data, JSON ``content`` records; wl in m of gauge
#: height, fw in m³/s; rainfall rf in mm per 10 minutes. ymdhm in KST.
HRFCO_LEVEL = Layout(
    kind="hrfco", place_kind="river_gauge", station_column="wlobscd", time_column="ymdhm",
    parse_time=kst_times("%Y%m%d%H%M"),
    measures=(Measure("wl", "water_level", "m"), Measure("fw", "discharge", "m3/s")),
    source="HRFCO open API, water level (한강홍수통제소 수위 10분자료)",
)
HRFCO_RAIN = Layout(
    kind="hrfco", place_kind="rain_gauge", station_column="rfobscd", time_column="ymdhm",
    parse_time=kst_times("%Y%m%d%H%M"), measures=(Measure("rf", "rainfall", "mm"),),
    source="HRFCO open API, rainfall (한강홍수통제소 강수량 10분자료)",
)

#: Haechi's own observation CSV (the HTTP bulk format of ingest/parse.py): one reading per row.
OBSERVATIONS = Layout(
    kind="observations", place_kind=None, station_column="datastream_id", time_column="phenomenon_time",
    parse_time=iso_times, measures=(Measure("result", "", ""),), source="Haechi observation CSV",
)

_HAN_COLUMN = re.compile(r"^(wl|fw)_(\d{7})$")


def han_river(header: list[str]) -> Layout:
    """The Han River competition CSV (Dacon 2022, from HRFCO): wl_<gauge> in cm (El.), fw_<gauge> in m³/s.

    Levels become gauge heights in m where the gauge zero is known (gauges.datum_elevation_m),
    as haechi/demo/derive.py does; elsewhere they stay elevations, as published.
    """
    measures = []
    for column in header:
        match = _HAN_COLUMN.match(column)
        if match:
            what, gauge = match.groups()
            measures.append(Measure(column, "water_level", "cm", station=gauge, above_datum=True) if what == "wl"
                            else Measure(column, "discharge", "m3/s", station=gauge))
    return Layout(kind="han-river", place_kind="river_gauge", time_column="ymdhm",
                  parse_time=kst_times("%Y-%m-%d %H:%M"), measures=tuple(measures),
                  source="Han River water level competition data (Dacon 2022, from HRFCO)")
