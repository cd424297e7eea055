"""The in-process asyncio bus: the embedded default."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from haechi.core.events import Event, Handler, matches

log = logging.getLogger(__name__)


class InProcessBus:
    """Delivers each event to every matching handler in this process, in order of subscription.

    A failing handler is logged and does not stop the others: one broken listener must not
    silence the warnings engine.
    """

    def __init__(self) -> None:
        self._handlers: list[tuple[str, Handler]] = []

    async def publish(self, event: Event) -> None:
        handlers = [h for pattern, h in self._handlers if matches(pattern, event.type)]
        results = await asyncio.gather(*(h(event) for h in handlers), return_exceptions=True)
        for handler, result in zip(handlers, results, strict=True):
            if isinstance(result, Exception):
                log.error("handler %r failed on %s", handler, event.type, exc_info=result)

    def wants(self, event_type: str) -> bool:
        return any(matches(pattern, event_type) for pattern, _ in self._handlers)

    def subscribe(self, pattern: str, handler: Handler) -> Callable[[], None]:
        entry = (pattern, handler)
        self._handlers.append(entry)
        return lambda: self._handlers.remove(entry)
