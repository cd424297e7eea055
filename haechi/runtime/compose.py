"""The composer: the chosen roles of the declared parts, started in order and stopped in reverse.

Whatever the process — ``haechi serve`` (the HTTP app's lifespan), ``haechi engine``, ``haechi
worker``, a headless demo — it makes a :class:`Context` and asks a :class:`Runtime` to run its
roles. Services start part by part, in the order the parts are declared; when one fails to
start, those already started are stopped (in reverse) and the failure is raised. Scheduled jobs
start after the services and stop before any. With the engine role, what runs only for the engine
starts once this process leads the engines (``leader``): a standby has started the rest already.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from .leader import Leadership, LeadershipLost, elect
from .part import Context, Job, Part, Role, Service, call, load

log = logging.getLogger(__name__)


class Runtime:
    """The ``roles`` of ``parts`` over ``context``.

    With the API role what the parts provide is made at once: routers use it from the first
    request on, started or not (a test client without its lifespan). Otherwise it is made when
    a service first asks for it.

    With the engine role the process must lead (``haechi.runtime.leader``; ``leadership``
    defaults to what :func:`~haechi.runtime.leader.elect` chooses): what runs only for the engine
    waits for the lead, and a standby runs just the rest (its membership, its other roles). The
    lead lost, the engine's services stop at once and :meth:`run` raises ``LeadershipLost``.
    """

    def __init__(self, parts: Sequence[Part], roles: Iterable[Role | str], context: Context,
                 leadership: Leadership | None = None) -> None:
        self.parts, self.roles, self.context = tuple(parts), frozenset(Role(r) for r in roles), context
        self.leadership = leadership or elect(context, self.roles)
        context.roles, context.leadership = self.roles, self.leadership
        self._started: list[tuple[Service, Any]] = []
        self._jobs: list[tuple[Job, asyncio.Task]] = []
        self._electing: asyncio.Task | None = None
        self._watching: asyncio.Task | None = None
        self.ended = asyncio.Event()  # set when the runtime cannot go on (the lead lost): see ``failure``
        self.failure: BaseException | None = None
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

    def needs_lead(self, item: Service | Job) -> bool:
        """Whether ``item`` runs here only for the engine role, so only while this process leads."""
        return self.runs(item) and not item.standby and not item.roles & (self.roles - {Role.ENGINE})

    def needs_no_lead(self, item: Service | Job) -> bool:
        return self.runs(item) and not self.needs_lead(item)

    @property
    def leading(self) -> bool:
        return self.leadership is not None and self.leadership.held

    @property
    def started(self) -> list[str]:
        """Names of the services running now, in the order they started."""
        return [service.name for service, _ in self._started]

    def routers(self) -> list[Any]:
        """The HTTP routers of the parts, in order (none unless this runtime has the API role)."""
        if Role.API not in self.roles:
            return []
        return [load(ref) for part in self.parts for ref in part.routers]

    def jobs(self) -> list[Job]:
        return [job for part in self.parts for job in part.jobs if self.runs(job)]

    async def start(self) -> None:
        """Start what needs no lead, then, leading, the engine; on a failure undo and raise.

        A standby returns at once: it takes the lead, and starts the engine, in the background.
        """
        try:
            await self._start_services(self.needs_no_lead)
            self._start_jobs(self.needs_no_lead)
            if self.leadership is None:
                self._log_running()
            elif await self.leadership.acquire(wait=False):
                await self._lead()
            else:
                self._electing = asyncio.create_task(self._lead_when_elected(), name="election")
        except BaseException:
            await self.stop()
            raise

    async def _lead(self) -> None:
        await self._start_services(self.needs_lead)
        self._start_jobs(self.needs_lead)
        self._watching = asyncio.create_task(self._watch_lead(), name="lead-watch")
        self._log_running()

    async def _lead_when_elected(self) -> None:
        try:
            await self.leadership.acquire()
            await self._lead()
        except Exception as exc:
            log.exception("the engine could not start after taking the lead")
            self._end(exc)

    async def _watch_lead(self) -> None:
        why = await self.leadership.until_lost()
        log.error("lost the lead (%s): stopping the engine at once; this process ends so that its "
                  "supervisor restarts it as a standby", why)
        try:
            await self._stop_jobs(self.needs_lead)
            await self._stop_services(self.needs_lead)
        finally:
            self._end(LeadershipLost(why))

    def _end(self, failure: BaseException) -> None:
        self.failure = self.failure or failure
        self.ended.set()

    def _log_running(self) -> None:
        jobs = [job.name for job, _ in self._jobs]
        log.info("running %s: %s; every so often: %s", "+".join(sorted(self.roles)),
                 ", ".join(self.started) or "no services", ", ".join(jobs) or "nothing")

    async def _start_services(self, chosen: Callable[[Service], bool]) -> None:
        """Start the ``chosen`` services, part by part; the others are published as None for now,
        unless a part provides an object by that name (made when first asked for)."""
        for part in self.parts:
            for service in part.services:
                if chosen(service):
                    await self._start(service)
                elif not self.runs(service) or service.name not in self.context.providers:
                    self.context.objects.setdefault(service.name, None)

    async def _start(self, service: Service) -> None:
        objects = self.context.objects
        built = service.build(self.context)
        if built is None:
            objects[service.name] = None
            return
        objects[service.name] = built
        await call(built.start)
        self._started.append((service, built))
        log.debug("started %s", service.name)

    def _start_jobs(self, chosen: Callable[[Job], bool]) -> None:
        for job in self.jobs():
            if chosen(job):
                self._jobs.append((job, asyncio.create_task(every(job, self.context), name=f"job:{job.name}")))

    async def stop(self) -> None:
        """Stop the election, the jobs, then the services in reverse, then give the lead up.

        Every service is stopped; the first failure is raised.
        """
        for task in (self._electing, self._watching):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._electing = self._watching = None
        await self._stop_jobs(lambda job: True)
        try:
            await self._stop_services(lambda service: True)
        finally:
            if self.leadership is not None:
                await self.leadership.release()

    async def _stop_jobs(self, chosen: Callable[[Job], bool]) -> None:
        stopping = [task for job, task in self._jobs if chosen(job)]
        self._jobs = [(job, task) for job, task in self._jobs if not chosen(job)]
        for task in stopping:
            task.cancel()
        await asyncio.gather(*stopping, return_exceptions=True)

    async def _stop_services(self, chosen: Callable[[Service], bool]) -> None:
        failure: BaseException | None = None
        for service, built in reversed([(s, b) for s, b in self._started if chosen(s)]):
            self._started.remove((service, built))
            try:
                await call(built.stop)
            except Exception as exc:
                log.exception("stopping %s failed", service.name)
                failure = failure or exc
        if failure is not None:
            raise failure

    async def run(self, stop: asyncio.Event) -> None:
        """Start, run until ``stop`` is set or the runtime cannot go on, stop; raise what ended it."""
        await self.start()
        asked = asyncio.ensure_future(stop.wait())
        ended = asyncio.ensure_future(self.ended.wait())
        try:
            await asyncio.wait({asked, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            asked.cancel()
            ended.cancel()
            await self.stop()
        if self.failure is not None:
            raise self.failure


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


class Hooks:
    """A service made of two functions, for work that has no object of its own.

    ``start`` may return the function that undoes it (a bus subscription's unsubscribe); either
    may be async.
    """

    def __init__(self, start: Callable[[], Any], stop: Callable[[], Any] | None = None) -> None:
        self._start, self._stop, self._undo = start, stop, None

    async def start(self) -> None:
        undo = await call(self._start)
        self._undo = undo if callable(undo) else None

    async def stop(self) -> None:
        if self._undo is not None:
            await call(self._undo)
        if self._stop is not None:
            await call(self._stop)


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
