"""Serving from several processes on one port (``haechi serve --workers N``): the HTTP protocol.

uvicorn binds the shared socket itself, without naming TCP as its protocol, and asyncio then
leaves Nagle's algorithm on for the connections it accepts: a small answer written in two parts
(headers, then body) waits for the client's delayed ACK, 40 ms on Linux, and every request takes
at least that long. One process serving (``uvicorn.run`` with a host and port) does not have it.
"""

from __future__ import annotations

import asyncio
import socket

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

