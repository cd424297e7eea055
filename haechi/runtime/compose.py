"""The composer: the chosen roles of the declared parts, started in order and stopped in reverse.

Whatever the process — ``haechi serve`` (the HTTP app's lifespan), ``haechi engine``, ``haechi
worker``, a headless demo — it makes a :class:`Context` and asks a :class:`Runtime` to run its
roles. Services start part by part, in the order the parts are declared; when one fails to
start, those already started are stopped (in reverse) and the failure is raised. Scheduled jobs
start after every service and stop before any.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from .part import Context, Job, Part, Role, Service, load

log = logging.getLogger(__name__)


class Runtime:
    """The ``roles`` of ``parts`` over ``context``.

    With the API role what the parts provide is made at once: routers use it from the first
    request on, started or not (a test client without its lifespan). Otherwise it is made when
    a service first asks for it.
    """

    def __init__(self, parts: Sequence[Part], roles: Iterable[Role | str], context: Context) -> None:
        self.parts, self.roles, self.context = tuple(parts), frozenset(Role(r) for r in roles), context
        self._started: list[tuple[str, Any]] = []
        self._jobs: list[asyncio.Task] = []
        for part in self.parts:
            for name, make in part.provides:
                context.providers.setdefault(name, make)  # a composition root may hand its own
        if Role.API in self.roles:
            for name in context.providers:
                context.get(name)

    def __getitem__(self, name: str) -> Any:
        return self.context.objects[name]

    def runs(self, item: Service | Job) -> bool:
        return bool(item.roles & self.roles)

    @property
    def started(self) -> list[str]:
        """Names of the services running now, in the order they started."""
        return [name for name, _ in self._started]

    def routers(self) -> list[Any]:
        """The HTTP routers of the parts, in order (none unless this runtime has the API role)."""
        if Role.API not in self.roles:
            return []
        return [load(ref) for part in self.parts for ref in part.routers]

    def jobs(self) -> list[Job]:
        return [job for part in self.parts for job in part.jobs if self.runs(job)]

    async def start(self) -> None:
        """Start every service of these roles, then the scheduled jobs; on a failure undo and raise."""
        try:
            for part in self.parts:
                for service in part.services:
                    await self._start(service)
            for job in self.jobs():
                self._jobs.append(asyncio.create_task(every(job, self.context), name=f"job:{job.name}"))
        except BaseException:
            await self.stop()
            raise
        log.info("running %s: %s; every so often: %s", "+".join(sorted(self.roles)),
                 ", ".join(self.started) or "no services", ", ".join(j.name for j in self.jobs()) or "nothing")

    async def _start(self, service: Service) -> None:
        objects = self.context.objects
        built = service.build(self.context) if self.runs(service) else None
        if built is None:
            objects.setdefault(service.name, None)
            return
        objects[service.name] = built
        await _call(built.start)
        self._started.append((service.name, built))
        log.debug("started %s", service.name)

    async def stop(self) -> None:
        """Stop the jobs, then the services in reverse; every one is stopped, the first failure raised."""
        jobs, self._jobs = self._jobs, []
        for task in jobs:
            task.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        failure: BaseException | None = None
        while self._started:
            name, service = self._started.pop()
            try:
                await _call(service.stop)
            except Exception as exc:
                log.exception("stopping %s failed", name)
                failure = failure or exc
        if failure is not None:
            raise failure

    async def run(self, stop: asyncio.Event) -> None:
        """Start, run until ``stop`` is set, stop."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()


async def every(job: Job, context: Context) -> None:
    """The scheduler of one job: run it each period; a failing run never ends the schedule."""
    period = job.period(context.settings)
    while True:
        await asyncio.sleep(period)
        try:
            if inspect.iscoroutinefunction(job.run):
                await job.run(context)
            else:
                await asyncio.to_thread(job.run, context)
        except Exception:
            log.exception("scheduled job %s failed; it runs again in %g s", job.name, period)


async def _call(fn: Callable[[], Any]) -> Any:
    result = fn()
    return await result if inspect.isawaitable(result) else result


class Hooks:
    """A service made of two functions, for work that has no object of its own.

    ``start`` may return the function that undoes it (a bus subscription's unsubscribe); either
    may be async.
    """

    def __init__(self, start: Callable[[], Any], stop: Callable[[], Any] | None = None) -> None:
        self._start, self._stop, self._undo = start, stop, None

    async def start(self) -> None:
        undo = await _call(self._start)
        self._undo = undo if callable(undo) else None

    async def stop(self) -> None:
        if self._undo is not None:
            await _call(self._undo)
        if self._stop is not None:
            await _call(self._stop)


async def run_roles(context: Context, roles: Iterable[Role | str], parts: Sequence[Part],
                    stop: asyncio.Event | None = None) -> None:
    """A process without an HTTP server: run ``roles`` until ``stop`` is set or SIGTERM/SIGINT arrives."""
    runtime = Runtime(parts, roles, context)
    if stop is not None:
        return await runtime.run(stop)
    with stopped_by_signals() as signalled:
        await runtime.run(signalled)


@contextlib.contextmanager
def stopped_by_signals() -> Iterator[asyncio.Event]:
    """An event set by SIGTERM or SIGINT (signal handlers need the main thread)."""
    stop, loop = asyncio.Event(), asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
