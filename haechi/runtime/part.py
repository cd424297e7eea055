"""What a capability declares it runs (services, scheduled jobs, HTTP routers, commands), and from what.

A :class:`Part` is one capability's whole footprint in a running Haechi. Each service and job
says in which :class:`Role` it runs, so one declaration serves one process that does everything
(``haechi serve``) and a cluster of processes that each run some roles (``haechi engine``,
``haechi worker``). Routers and command groups are named (``"module:attribute"``), not imported:
a process loads only what its roles need, and an engine never loads the HTTP stack.
"""

from __future__ import annotations

import importlib
import inspect
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine

from haechi.bus.memory import InProcessBus
from haechi.core.clock import utcnow
from haechi.core.events import Bus
from haechi.core.settings import Settings
from haechi.ingest.pipeline import Pipeline
from haechi.ingest.queue import LocalSink, Sink


class Role(StrEnum):
    """What a process does; one process may have several."""

    API = "api"  # HTTP routers and device adapters (MQTT ingest); shows the live state
    WORKER = "worker"  # stores the readings queued on NATS
    ENGINE = "engine"  # everything stateful: warnings, forecasts, care, deliveries, simulations, schedules


API, WORKER, ENGINE = frozenset({Role.API}), frozenset({Role.WORKER}), frozenset({Role.ENGINE})
ALL = API | WORKER | ENGINE
#: The roles that keep the live state: the API shows it, the engine watches it for silence.
LIVE = API | ENGINE


def member_name() -> str:
    """A process's name in the cluster unless it is given one: host and pid, unique on a machine."""
    return f"{socket.gethostname()}-{os.getpid()}"[:100]


@dataclass
class Context:
    """What services are built from: the database, settings, bus, ingest pipeline and sink, the clock.

    ``bus`` and ``sink`` are this process's: in bus mode the runtime swaps in NATS ones as it
    starts. ``now`` is the runtime's clock (a replay's scenario time in the headless demo).
    ``name`` is how the process introduces itself to NATS (it names durable consumers, so every
    engine has the same); ``member`` is its own name in the cluster (host and pid by default).
    The runtime fills in ``roles`` and ``leadership`` (None without the engine role).
    ``options`` carry what a composition root tells a part beyond the settings (the worker's
    batch and streams). ``objects`` holds what the parts provide and the services built, by name;
    a provided object is made the first time it is asked for.
    """

    engine: Engine
    settings: Settings
    bus: Bus
    pipeline: Pipeline
    sink: Sink
    now: Callable[[], datetime] = utcnow
    name: str = "haechi"
    member: str = field(default_factory=member_name)
    roles: frozenset[Role] = frozenset()
    leadership: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    objects: dict[str, Any] = field(default_factory=dict)
    providers: dict[str, Callable[[Context], Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, engine: Engine, settings: Settings, *, bus: Bus | None = None, pipeline: Pipeline | None = None,
           **fields: Any) -> Context:
        """A context with the embedded defaults: the in-process bus, a pipeline on it storing locally."""
        bus = bus or InProcessBus()
        pipeline = pipeline or Pipeline(engine, bus=bus)
        return cls(engine, settings, bus, pipeline, LocalSink(pipeline), **fields)

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def get(self, name: str) -> Any:
        """The object by that name, made now if a part provides it and it is not made yet."""
        if name not in self.objects and name in self.providers:
            self.objects[name] = self.providers[name](self)
        return self.objects[name]


@dataclass(frozen=True)
class Service:
    """A background service: ``build`` makes it from the context when the runtime starts.

    What ``build`` returns has ``start()`` and ``stop()``, each plain or async; None means the
    settings leave it off (no broker configured, say). The built object is published under
    ``name`` (``runtime["warnings"]``, ``app.state.warnings``), None when it does not run here.
    What runs only for the engine role waits for this process to lead the engines (a standby
    runs none of it); ``standby=True`` marks what runs all the same (its cluster membership).
    """

    name: str
    build: Callable[[Context], Any]
    roles: frozenset[Role]
    standby: bool = False


@dataclass(frozen=True)
class Job:
    """Work done every ``period_s`` seconds (the first time one period after start).

    ``run`` takes the context; an async ``run`` is awaited on the event loop, a plain one runs
    in a worker thread. A run that fails is logged and the job runs again next period. Like a
    service's, an engine job waits for the lead unless ``standby``.
    """

    name: str
    period_s: float | Callable[[Settings], float]
    run: Callable[[Context], Any]
    roles: frozenset[Role]
    standby: bool = False

    def period(self, settings: Settings) -> float:
        return self.period_s(settings) if callable(self.period_s) else self.period_s


@dataclass(frozen=True)
class Part:
    """One capability: what it provides, runs and serves, declared in one place.

    ``provides``: objects made with the runtime, before anything starts, that routers use from
    the first request on (the care service), by name. ``routers``: ``"module:attribute"`` of
    its FastAPI routers, in the order they are mounted. ``commands``: ``(name, "module:attribute")``
    of its typer apps, mounted under ``haechi <name>``.
    """

    name: str
    provides: tuple[tuple[str, Callable[[Context], Any]], ...] = ()
    services: tuple[Service, ...] = ()
    jobs: tuple[Job, ...] = ()
    routers: tuple[str, ...] = ()
    commands: tuple[tuple[str, str], ...] = ()


def load(ref: str) -> Any:
    """The object a ``"package.module:attribute"`` reference names."""
    module, _, attribute = ref.partition(":")
    return getattr(importlib.import_module(module), attribute)


async def call(fn: Callable[[], Any]) -> Any:
    """A service's ``start`` or ``stop``, plain or async."""
    result = fn()
    return await result if inspect.isawaitable(result) else result
