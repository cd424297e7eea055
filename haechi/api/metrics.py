"""Prometheus metrics: request counts and latency by route template, a few DB gauges, and this
process's place in the cluster (its roles, whether it leads the engines, its consumers' lag).

Each app has its own registry, so several apps in one process (tests, workers) never clash.
Routes are labelled by their template (``/api/v1/places/{place_id}``), never the raw path, so
the number of series stays bounded; requests that match no route share the label ``unmatched``,
and requests shed before routing (haechi/api/shedding.py) the label ``shed``: status 429 for a
write beyond its client's limit, 503 for a read beyond the process's bound.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from haechi.store.areas import count_areas
from haechi.store.places import count_places

log = logging.getLogger(__name__)

#: Set in the scope by the shedding middlewares on a request they refuse before any route sees it.
SHED = "haechi.shed"
#: Latency buckets in seconds: API reads take milliseconds, bulk writes up to seconds.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HttpMetrics:
    """The registry and the HTTP series of one app."""

    def __init__(self, engine: Engine, runtime: Any = None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "haechi_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "haechi_http_request_duration_seconds",
            "Time to answer an HTTP request, in seconds.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.registry.register(CityCollector(engine))
        if runtime is not None:
            self.registry.register(ClusterCollector(runtime))
            self.registry.register(MqttCollector(runtime))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method, route, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """(body, content type) of the Prometheus text format."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class CityCollector(Collector):
    """Gauges read from the integrated DB at scrape time: is it up, and what is loaded."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "haechi_database_up", "1 when the integrated DB answered this scrape."
        )
        areas = GaugeMetricFamily(
            "haechi_areas", "Administrative areas loaded, by level.", labels=["level"]
        )
        places = GaugeMetricFamily("haechi_places", "Places loaded, by kind.", labels=["kind"])
        try:
            with self.engine.connect() as conn:
                area_counts, place_counts = count_areas(conn), count_places(conn)
        except Exception:
            log.exception("metrics could not read the integrated DB")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        for level, n in sorted(area_counts.items()):
            areas.add_metric([level], n)
        for kind, n in sorted(place_counts.items()):
            places.add_metric([kind], n)
        yield from (up, areas, places)


class ClusterCollector(Collector):
    """This process in the cluster, read from its runtime at scrape time.

    The lag is the membership's figure from its last heartbeat (a few seconds old at most): a
    scrape never waits on NATS.
    """

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        runtime = self.runtime
        info = GaugeMetricFamily("haechi_process_info", "This process: one series per role it runs, with its "
                                 "name in the cluster (haechi cluster status).", labels=["role", "name"])
        for role in sorted(runtime.roles):
            info.add_metric([str(role), runtime.context.member], 1)
        leader = GaugeMetricFamily("haechi_leader", "1 while this process leads the engines (runs the engine "
                                   "role's services), 0 on an API, a worker or a standby.")
        leader.add_metric([], 1 if runtime.leading else 0)
        lag = GaugeMetricFamily("haechi_consumer_lag", "Events each durable JetStream consumer of this process "
                                "has not acknowledged yet (pending + delivered unacknowledged).", labels=["consumer"])
        membership = runtime.context.objects.get("membership")
        for consumer, n in sorted((membership.consumers if membership else {}).items()):
            lag.add_metric([consumer], n)
        yield from (info, leader, lag)


class MqttCollector(Collector):
    """The MQTT ingest of this process (issue 17): what came, what was stored and acked, and the
    readings missing per datastream (sequence numbers or expected cadence; ``haechi/ingest/gaps.py``).
    Only streams with a gap get a series, so 100,000 healthy streams cost nothing here. Among API
    replicas one reads MQTT and the others stand by (``runtime/one_at_a_time.py``):
    ``haechi_mqtt_reading`` says which, and only the reader has the counts."""

    COUNTS = (("messages", "MQTT messages taken from the broker."),
              ("acked", "QoS-1 messages acknowledged, each after its readings were stored or queued."),
              ("stored", "Readings stored from MQTT."),
              ("duplicates", "Readings already stored (a redelivery)."), ("rejected", "Readings dead-lettered."),
              ("redelivered", "Messages the broker sent again after a reconnect."),
              ("connects", "Connections to the broker."))

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        configured = self.runtime.context.objects.get("mqtt")
        if configured is None:
            return
        ingest = getattr(configured, "running", configured)  # None while this replica stands by
        reading = GaugeMetricFamily("haechi_mqtt_reading", "1 where this process reads MQTT, 0 while it stands by "
                                    "for another replica that does.")
        reading.add_metric([], float(ingest is not None))
        yield reading
        if ingest is None:
            return
        for name, help_text in self.COUNTS:
            counter = CounterMetricFamily(f"haechi_mqtt_{name}", help_text)
            counter.add_metric([], getattr(ingest.stats, name))
            yield counter
        missing = ingest.gaps.missing
        per_stream = GaugeMetricFamily("haechi_mqtt_missing_readings", "Readings believed lost on the way in, "
                                       "per datastream with a gap (sequence numbers, else expected cadence).",
                                       labels=["datastream"])
        for stream_id, n in sorted(missing.items()):
            per_stream.add_metric([str(stream_id)], n)
        streams = GaugeMetricFamily("haechi_mqtt_streams_with_gaps", "Datastreams with readings missing.")
        streams.add_metric([], len(missing))
        yield from (per_stream, streams)


class MetricsMiddleware:
    """ASGI middleware timing every HTTP request and counting it under its route template."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            self.metrics.observe(
                scope["method"], route_template(scope), status, time.perf_counter() - started
            )


def route_template(scope: Scope) -> str:
    """The matched route's path template, read from what the router left in the scope."""
    template = getattr(scope.get("route"), "path", None)
    if template:
        return template
    # Plain Starlette routes (e.g. /openapi.json) leave only their endpoint; without path
    # parameters the path itself is the template, and still a bounded label.
    if scope.get("endpoint") is not None and not scope.get("path_params"):
        return scope["path"]
    return "shed" if scope.get(SHED) else "unmatched"
