"""A stock SensorThings client, FROST's ``frost-sta-client``, against a real server: unchanged.

The server is uvicorn in a thread on a free port of 127.0.0.1; the client talks HTTP to it with
its own model classes and query API — deep insert, Observations one by one and as a dataArray,
``$filter``, ``$orderby``, ``$expand``, ``$top`` with the paging it follows by itself.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import frost_sta_client as fsc
import pytest
import uvicorn
from frost_sta_client.model.ext.data_array_document import DataArrayDocument
from frost_sta_client.model.ext.data_array_value import DataArrayValue
from geojson import Point  # installed with the client

from haechi.api import create_app
from haechi.store import access

T0 = datetime(2020, 8, 6, 5, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(engine) -> Iterator[tuple[str, str]]:
    """(service root URL, device token) of a live server, stopped after the test."""
    with engine.begin() as conn:
        _, token = access.create_token(conn, "gauge-uploader", "device")
    port = free_port()
    config = uvicorn.Config(create_app(engine), host="127.0.0.1", port=port, log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not running.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/sta/v1.1", token
    running.should_exit = True
    thread.join(timeout=20)


def test_a_stock_client_creates_and_queries_through_its_own_api(server):
    url, token = server
    # Unchanged client: HTTP Basic with the token as the password, as any stock client can send.
    service = fsc.SensorThingsService(url, auth_handler=fsc.AuthHandler("haechi", token))

    level = fsc.Datastream(
        name="Jamsu water level", description="gauge height at Jamsu Bridge",
        observation_type="http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
        unit_of_measurement=fsc.UnitOfMeasurement(name="metre", symbol="m", definition="ucum:m"),
        sensor=fsc.Sensor(name="radar gauge", description="non-contact radar", encoding_type="text/html",
                          metadata="https://example.org/radar"),
        observed_property=fsc.ObservedProperty(name="Water level", description="gauge height",
                                               definition="http://qudt.org/vocab/quantitykind/Height"))
    thing = fsc.Thing(
        name="Jamsu Bridge", description="잠수교 수위관측소", properties={"river": "Han"},
        locations=[fsc.Location(name="잠수교", description="Jamsu Bridge", encoding_type="application/geo+json",
                                location=Point((126.9958, 37.5133)))],
        datastreams=[level])
    service.create(thing)
    assert thing.id == 1

    [stream] = service.things().find(thing.id).get_datastreams().query().list()
    for minutes, value in ((0, 6.1), (10, 6.3)):
        service.create(fsc.Observation(phenomenon_time=T0 + timedelta(minutes=minutes), result=value,
                                       datastream=stream))
    rows = DataArrayValue()
    rows.datastream = stream
    rows.components = {DataArrayValue.Property.PHENOMENON_TIME, DataArrayValue.Property.RESULT}
    for minutes in range(20, 120, 10):
        rows.add_observation(fsc.Observation(phenomenon_time=T0 + timedelta(minutes=minutes),
                                             result=6.3 + minutes / 100, datastream=stream))
    document = DataArrayDocument()
    document.add_data_array_value(rows)
    created = service.observations().create(document)
    assert len(created) == 10 and all("Observations(" in o.self_link for o in created)

    high = service.observations().query().filter("result gt 6.5 and Datastream/id eq 1") \
        .orderby("phenomenonTime", "desc").top(3).list()
    assert [o.result for o in high.entities] == pytest.approx([7.4, 7.3, 7.2])
    assert high.next_link is not None
    everything = [o.result for o in service.observations().query().top(4).list()]  # follows nextLink
    assert len(everything) == 12

    [found] = service.things().query().filter("Locations/name eq '잠수교'") \
        .expand("Datastreams($expand=Observations($top=2;$orderby=phenomenonTime desc)),Locations").list().entities
    assert found.name == "Jamsu Bridge" and found.locations.entities[0].name == "잠수교"
    newest = found.datastreams.entities[0].observations.entities
    assert [o.result for o in newest] == pytest.approx([7.4, 7.3])
    feature = service.observations().find(1)
    assert feature.result == pytest.approx(6.1) and feature.phenomenon_time == "2020-08-06T05:00:00Z"

    service.patch(stream, [{"op": "replace", "path": "/description", "value": "잠수교 수위"}])
    assert service.datastreams().find(stream.id).description == "잠수교 수위"
