"""Open data: every endpoint is public and read-only, serves only allowlisted fields, never anything
personal (a walk over every endpoint scans every output), and is rate limited per client."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert
from test_lake import T0, add_readings, make_stream

from haechi.api.app import create_app
from haechi.core.settings import Settings
from haechi.store import access, records
from haechi.store import warnings as warning_store
from haechi.store.schema import audit_log, disasters, places
from haechi.warehouse import lake, marts, opendata

SECRET_TEXT = "홍길동 010-1234-5678 personal-marker-7f3a"  # a citizen's report text and contact
TOKEN_NAME = "guardian-token-marker-91bd"
SCHEMA = Path(__file__).resolve().parents[1] / "haechi" / "store" / "schema.py"


def _seed(engine, tmp_path):
    with engine.begin() as conn:
        stream = make_stream(conn)
        add_readings(conn, stream, T0, [1.0, 2.0, 3.0])
        token_id, _ = access.create_token(conn, TOKEN_NAME, "citizen")
        records.add_report(conn, {"reported_at": T0, "kind": "flooding", "description": SECRET_TEXT,
                                  "area_code": "11590", "lon": 126.95, "lat": 37.51, "status": "new",
                                  "reporter_token_id": token_id})
        conn.execute(insert(audit_log), [{"at": T0, "actor": TOKEN_NAME, "action": "POST /api/v1/reports"}])
        conn.execute(insert(places), [
            {"kind": "fire_station", "ref": "fs1", "name_ko": "동작소방서", "lon": 126.94, "lat": 37.50},
            {"kind": "cctv", "ref": "cam1", "name_ko": "비공개 카메라 cctv-marker", "lon": 126.9, "lat": 37.5}])
        conn.execute(insert(disasters), [{"category": "natural", "kind": "flood", "title": "2020 한강 홍수",
                                          "started_at": T0, "area_code": "11590", "deaths": 0}])
        warning_store.open_warning(conn, {
            "hazard": "river_flood", "area_key": "gauge:1018683", "area_code": "11590", "level": "advisory",
            "crisis_level": "caution", "value": 8.6, "unit": "m", "criterion": {"property": "water_level"},
            "datastream_id": stream, "issued_at": T0, "updated_at": T0})
    folder = tmp_path / "lake"
    lake.export(engine, folder)
    marts.refresh(folder)
    return folder


def _client(engine, folder, **limits) -> TestClient:
    settings = Settings(lake_dir=str(folder), open_burst=limits.get("burst", 10_000),
                        open_rate_per_s=limits.get("rate", 1000.0))
    return TestClient(create_app(engine, settings))


def _keys(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def _fields_and_text(response) -> tuple[set[str], str]:
    """Every field name an output carries, and all its text, whatever the format."""
    media = response.headers["content-type"]
    if "parquet" in media:
        table = pq.read_table(io.BytesIO(response.content))
        return set(table.column_names), json.dumps(table.to_pylist(), default=str, ensure_ascii=False)
    if media.startswith("text/csv"):
        header = next(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
        return set(header), response.content.decode("utf-8-sig")
    if "json" in media:
        return _keys(response.json()), response.text
    return set(re.findall(r"<code>([a-z_0-9]+)</code>", response.text)), response.text


def test_every_open_endpoint_serves_only_allowlisted_non_personal_fields(engine, tmp_path):
    folder = _seed(engine, tmp_path)
    denied = set(opendata.catalogue()["denylist"])
    with _client(engine, folder) as client:
        catalogue = client.get("/api/v1/open")
        assert catalogue.status_code == 200 and catalogue.headers["content-type"] == "application/ld+json"
        urls = ["/api/v1/open", "/open?lang=ko", "/open?lang=en"]
        for dataset in catalogue.json()["dcat:dataset"]:
            urls.append(dataset["@id"])
            urls += [d["dcat:downloadURL"] for d in dataset["dcat:distribution"]]
        downloads = 0
        for url in urls:
            answer = client.get(url)
            assert answer.status_code == 200, (url, answer.text[:300])
            fields, text = _fields_and_text(answer)
            assert SECRET_TEXT not in text and "personal-marker" not in text, url
            assert TOKEN_NAME not in text and "cctv-marker" not in text, url
            for name in fields:
                parts = set(name.lower().split("_")) | {name.lower()}
                assert not parts & denied, (url, name)
            if "/datasets/" in url and "." in url.rsplit("/", 1)[1]:
                downloads += 1
                name = url.rsplit("/", 1)[1].rsplit(".", 1)[0]
                allowed = set(opendata.spec_of(name)["fields"])
                if url.endswith(".geojson"):
                    feature_fields = _keys([f["properties"] for f in answer.json()["features"]])
                    assert feature_fields <= allowed, url
                elif not url.endswith(".json"):
                    assert fields == allowed, url
        assert downloads >= 30

        # The data a user came for is there.
        stations = client.get("/api/v1/open/datasets/stations.geojson").json()
        assert stations["features"][0]["properties"]["district_code"] == "11590"
        hourly = list(csv.DictReader(io.StringIO(
            client.get("/api/v1/open/datasets/observations-hourly.csv").content.decode("utf-8-sig"))))
        assert [float(r["mean"]) for r in hourly] == [2.0]
        facilities = client.get("/api/v1/open/datasets/public-facilities.json").json()
        assert [f["kind"] for f in facilities] == ["fire_station"]  # CCTV positions are not published
        assert client.get("/api/v1/open/datasets/disasters.json").json()[0]["title"] == "2020 한강 홍수"


def test_no_open_dataset_reads_a_personal_table():
    text = SCHEMA.read_text()
    care = text[text.index("── 9."):text.index("(care tables end)")]
    personal = set(re.findall(r'^(\w+) = Table\(', care, re.MULTILINE)) | {"citizen_reports", "api_tokens", "audit_log",
                                                                   "subscriptions", "deliveries"}
    sources = {spec["source"].split(":")[-1] for spec in opendata.catalogue()["datasets"].values()}
    assert personal and not sources & personal


def test_a_personal_field_in_the_allowlist_is_refused():
    with pytest.raises(ValueError, match="reporter_token_id"):
        opendata.refuse_personal(["id", "reporter_token_id"], opendata.catalogue()["denylist"], "reports")


def test_unknown_dataset_and_format_are_clear_problems(sqlite_engine, tmp_path):
    with _client(sqlite_engine, tmp_path) as client:
        missing = client.get("/api/v1/open/datasets/citizen-reports.csv")
        assert missing.status_code == 404 and "citizen-reports" in missing.json()["detail"]
        bad = client.get("/api/v1/open/datasets/warnings.xlsx")
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "path.fmt"
        assert client.post("/api/v1/open/datasets/warnings.csv").status_code == 405  # read-only


def test_rate_limit_answers_429_with_retry_after(sqlite_engine, tmp_path):
    with _client(sqlite_engine, tmp_path, burst=3, rate=0.1) as client:
        assert [client.get("/api/v1/open").status_code for _ in range(3)] == [200, 200, 200]
        refused = client.get("/api/v1/open/datasets/warnings.csv")
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["Retry-After"]) >= 1
        assert "retry" in refused.json()["detail"]
        assert client.get("/open").status_code == 429  # the page shares the bucket


def test_token_bucket_refills_per_client():
    now = [0.0]
    bucket = opendata.TokenBucket(rate=2.0, burst=2, clock=lambda: now[0])
    assert [bucket.take("a"), bucket.take("a")] == [0.0, 0.0]
    assert bucket.take("a") == pytest.approx(0.5)  # one token comes back in half a second
    assert bucket.take("b") == 0.0  # another client has its own bucket
    now[0] += 0.5
    assert bucket.take("a") == 0.0
    now[0] += timedelta(hours=1).total_seconds()
    assert [bucket.take("a") for _ in range(3)][:2] == [0.0, 0.0]  # refilled to the burst, not beyond


def test_the_download_limit_forgets_clients_once_their_bucket_refills():
    now = [0.0]
    bucket = opendata.TokenBucket(rate=1.0, burst=2, clock=lambda: now[0])
    for i in range(1000):  # a flood from many addresses
        bucket.take(f"10.0.{i // 256}.{i % 256}")
    assert len(bucket) == 1000
    now[0] += 60
    bucket.take("192.0.2.1")
    assert len(bucket) == 1  # the flood's addresses are no longer held


def test_day_window_filters_by_day_datasets(sqlite_engine, tmp_path):
    with sqlite_engine.begin() as conn:
        stream = make_stream(conn)
        add_readings(conn, stream, datetime(2020, 8, 1, 3, tzinfo=UTC), [1.0] * 3, step=timedelta(days=1))
    folder = tmp_path / "lake"
    lake.export(sqlite_engine, folder)
    marts.refresh(folder)
    with _client(sqlite_engine, folder) as client:
        rows = client.get("/api/v1/open/datasets/observations-hourly.json?start=2020-08-02&end=2020-08-03").json()
        assert [r["date"] for r in rows] == ["2020-08-02", "2020-08-03"]
        backwards = client.get("/api/v1/open/datasets/observations-hourly.json?start=2020-08-03&end=2020-08-02")
        assert backwards.status_code == 422 and backwards.json()["errors"][0]["field"] == "query.end"
