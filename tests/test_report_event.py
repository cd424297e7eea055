"""Reports on seeded data: the August 2020 Han River flood replayed through the pipeline and the
warnings engine, then the after-action report shows the flood advisory and its lead time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert
from test_lake import add_readings, make_stream
from typer.testing import CliRunner

from haechi.cli import app
from haechi.core.errors import InvalidInput
from haechi.reports import data
from haechi.reports.build import district_report
from haechi.store import open_db, records
from haechi.store import warnings as warning_store
from haechi.store.schema import disasters


@pytest.fixture(scope="module")
def flood_db(tmp_path_factory):
    """The demo's replay of 1–10 August 2020 (observed HRFCO data), plus the flood as a disaster record."""
    url = f"sqlite:///{tmp_path_factory.mktemp('flood') / 'flood.db'}"
    result = CliRunner().invoke(app, ["demo", "--headless", "--speed", "0", "--database-url", url])
    assert result.exit_code == 0, result.output
    engine = open_db(url)
    with engine.begin() as conn:
        conn.execute(insert(disasters), [{
            "category": "natural", "kind": "flood", "title": "2020년 8월 한강 홍수", "area_code": "11",
            "started_at": datetime(2020, 8, 5, 15, tzinfo=UTC), "ended_at": datetime(2020, 8, 9, 15, tzinfo=UTC)}])
    engine.dispose()
    return url


def _pdf_pages(path) -> int:
    return len(re.findall(rb"/Type\s*/Page[^s]", path.read_bytes()))


def test_event_report_shows_the_flood_advisory_and_its_lead_time(flood_db, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["report", "event", "1", "--out", str(tmp_path), "--database-url", flood_db])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "event-1.html").read_text(encoding="utf-8")
    # Issued at 10:30 KST on the river model's forecast (the gauge passed 8.5 m at 12:00); the peak is
    # the river's own, 8.73 m at 14:20 KST, not the forecast's.
    assert "river_flood advisory issued 2020-08-06 10:30 KST" in page
    assert "+3.8 h before the peak 최고치 8.73 m at 2020-08-06 14:20 KST" in page
    assert "2020-08-06 21:20 KST" in page  # lifted
    # The headless replay sends its alerts in the scenario's time, so the record reads as the event did.
    assert "<td>2020-08-06 10:30 KST</td><td>CAP Alert sent" in page
    assert "<td>2020-08-06 21:20 KST</td><td>CAP Cancel sent" in page
    assert page.count("data:image/png;base64,") == 2  # the river plot and the map
    timeline = page[page.index("Timeline"):]
    assert timeline.index("발령") < timeline.index("최고치") < timeline.index("해제")
    pdf = tmp_path / "event-1.pdf"
    assert pdf.read_bytes().startswith(b"%PDF") and _pdf_pages(pdf) >= 3


def test_district_and_city_reports_for_the_flood_month(flood_db, tmp_path):
    for args, stem in ((["district", "11590", "--month", "2020-08"], "district-11590-2020-08"),
                       (["city", "--month", "2020-08"], "city-2020-08")):
        result = CliRunner().invoke(app, ["report", *args, "--out", str(tmp_path), "--database-url", flood_db])
        assert result.exit_code == 0, result.output
        page = (tmp_path / f"{stem}.html").read_text(encoding="utf-8")
        assert "Warnings 특보: 1" in page
        assert (tmp_path / f"{stem}.pdf").read_bytes().startswith(b"%PDF")
    city = (tmp_path / "city-2020-08.html").read_text(encoding="utf-8")
    assert "(11590)</td><td>1</td>" in city  # Dongjak-gu: the Hangang Bridge gauge's district
    none = CliRunner().invoke(app, ["report", "district", "11590", "--month", "2020-09", "--out", str(tmp_path),
                                    "--database-url", flood_db])
    assert "Warnings 특보: 0" in (tmp_path / "district-11590-2020-09.html").read_text(encoding="utf-8")
    assert none.exit_code == 0


def test_unknown_event_and_bad_month_are_clear_errors(flood_db, tmp_path):
    missing = CliRunner().invoke(app, ["report", "event", "99", "--out", str(tmp_path), "--database-url", flood_db])
    assert missing.exit_code == 2 and "no disaster with id 99" in missing.output
    bad = CliRunner().invoke(app, ["report", "city", "--month", "August", "--out", str(tmp_path),
                                   "--database-url", flood_db])
    assert bad.exit_code == 2 and "YYYY-MM" in bad.output


def test_district_report_counts_reports_without_their_text(engine, tmp_path):
    t0 = datetime(2021, 7, 10, 3, tzinfo=UTC)
    with engine.begin() as conn:
        stream = make_stream(conn)
        add_readings(conn, stream, t0, [1.0, 3.0], step=timedelta(days=1))
        records.add_report(conn, {"reported_at": t0, "kind": "flooding", "description": "secret 010-9999-0000",
                                  "area_code": "11590", "status": "new"})
        warning_store.open_warning(conn, {
            "hazard": "heavy_rain", "area_key": "district:11590", "area_code": "11590", "level": "advisory",
            "crisis_level": "caution", "value": 70.0, "unit": "mm", "criterion": {"value": 60},
            "datastream_id": stream, "issued_at": t0, "updated_at": t0})
    html_path, pdf_path = district_report(engine, "11590", "2021-07").write(tmp_path, "d")
    page = html_path.read_text(encoding="utf-8")
    assert "citizen reports 시민 신고: 1" in page and "<td>flooding</td><td>1</td>" in page
    assert "010-9999-0000" not in page
    assert "heavy_rain" in page and pdf_path.stat().st_size > 1000


def test_lead_time_is_measured_to_the_peak_after_issue():
    t = datetime(2020, 8, 6, 3, tzinfo=UTC)
    series = [(t - timedelta(hours=1), 9.9), (t, 8.5), (t + timedelta(hours=2), 8.7), (t + timedelta(hours=3), 8.7)]
    assert data.peak(series, t) == (t + timedelta(hours=2), 8.7)  # the earlier reading of a tie
    assert data.lead_time(t, t + timedelta(hours=2)) == timedelta(hours=2)
    assert data.hours(timedelta(minutes=140)) == "+2.3 h"
    start, end = data.month_bounds("2020-08")
    assert (start, end) == (datetime(2020, 7, 31, 15, tzinfo=UTC), datetime(2020, 8, 31, 15, tzinfo=UTC))
    with pytest.raises(InvalidInput, match="YYYY-MM"):
        data.month_bounds("2020-13")
