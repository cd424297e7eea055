"""How ``haechi serve`` runs uvicorn: its options, and the HTTP protocol of ``--workers N``.

uvicorn binds the shared socket of several processes itself, without naming TCP as its protocol,
and asyncio then leaves Nagle's algorithm on for the connections it accepts: a small answer written
in two parts (headers, then body) waits for the client's delayed ACK, 40 ms on Linux, and every
request takes at least that long. One process serving (``uvicorn.run`` with a host and port) does
not have it.

Overload is the app's to answer (``haechi/api/shedding.py``): reads beyond the bound in flight get
a quick 503 with ``Retry-After``. uvicorn's own ``limit_concurrency`` is left off: it counts open
connections, so the live streams' thousands of clients would use it up and every request after
them would be refused, with a plain-text 503 and no ``Retry-After``. Connections not yet accepted
wait in the kernel's backlog (uvicorn's 2048, capped by ``net.core.somaxconn``); the event loop
accepts them as fast as they come, so it is the bound in the app that sheds.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

#: For ``uvicorn.run(http=...)``: the HTTP protocol below, by name, as each worker imports it.
NO_DELAY_HTTP = "haechi.api.serving:NoDelayHTTP"


class NoDelayHTTP(AutoHTTPProtocol):
    """uvicorn's HTTP protocol, sending each write at once (``TCP_NODELAY``)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


#: For every ``uvicorn.run`` of ``haechi serve``. The app itself takes the client from
#: ``X-Forwarded-For`` of trusted proxies (``HAECHI_TRUSTED_PROXIES``): uvicorn doing it first with
#: its own list (loopback by default) would let a peer the operator does not trust name any client.
UVICORN_OPTIONS: dict[str, Any] = {"proxy_headers": False, "log_level": "warning"}
