"""Where webhooks may go: public internet addresses only, unless the operator lists exceptions.

A webhook URL comes from a subscriber (an alert subscription, a guardian's profile) and the server
then POSTs to it. Unchecked, a subscriber could make the server call its own network (server-side
request forgery): a database at 127.0.0.1:5432, the cloud metadata service at 169.254.169.254,
hosts on 10.x. So a webhook is checked twice:

- when it is subscribed (:func:`check_webhook_url`): https only (plain http only with
  ``HAECHI_WEBHOOK_ALLOW_HTTP``, for development and tests), and a host that resolves to no
  private, loopback, link-local, multicast, reserved or unspecified address;
- at every delivery (:class:`GuardedTransport`): each connection resolves the host itself,
  refuses such addresses and connects to the very address it checked, so a name that resolves
  elsewhere later (DNS rebinding) cannot slip past the first check.

``HAECHI_WEBHOOK_ALLOWED_NETWORKS`` names networks allowed all the same (a receiver on this host in
development and tests, a gateway inside the city's own network); it is empty by default.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from urllib.parse import urlsplit

import anyio
import httpcore
import httpx

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

#: The kinds of address no webhook goes to, as ``ipaddress`` names them, checked in this order.
NOT_PUBLIC = (
    ("is_unspecified", "an unspecified address"),
    ("is_loopback", "a loopback address"),
    ("is_link_local", "a link-local address"),
    ("is_multicast", "a multicast address"),
    ("is_reserved", "a reserved address"),
    ("is_private", "a private address"),  # after reserved: Python counts 240.0.0.0/4 as both
)
EXCEPTIONS_HINT = "webhooks go to public addresses only (HAECHI_WEBHOOK_ALLOWED_NETWORKS lists exceptions)"


class RefusedTarget(ValueError):
    """A webhook URL or address the server will not send to; the message says why."""


# ── the rules (pure) ─────────────────────────────────────────────────────────────────────


def not_public(address: IPAddress) -> str | None:
    """Why ``address`` is no public internet address, or ``None`` when it is one.

    An IPv4 address inside IPv6 (``::ffff:127.0.0.1``, 6to4 ``2002:7f00:1::``) is judged as the
    IPv4 address it reaches.
    """
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return not_public(embedded)
    for attribute, kind in NOT_PUBLIC:
        if getattr(address, attribute):
            return kind
    return None if address.is_global else "an address not routed on the internet"


def _embedded_ipv4(address: IPAddress) -> IPv4Address | None:
    if isinstance(address, IPv6Address):
        return address.ipv4_mapped or address.sixtofour
    return None


def _literal(host: str) -> IPAddress | None:
    try:
        return ip_address(host.partition("%")[0])  # an IPv6 zone (fe80::1%eth0) names no other host
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    """Which webhook URLs and addresses the server may send to; the default is the strict one."""

    allow_http: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, allow_http: bool = False, networks: Iterable[str] = ()) -> WebhookPolicy:
        """From the settings; ``networks`` are addresses or CIDR blocks (``127.0.0.1/32``)."""
        try:
            allowed = tuple(ip_network(n, strict=False) for n in networks)
        except ValueError as exc:
            raise ValueError(f"HAECHI_WEBHOOK_ALLOWED_NETWORKS: {exc}") from None
        return cls(allow_http, allowed)

    def check_url(self, url: str) -> tuple[str, int]:
        """The URL's host and port, if its scheme is allowed and a literal address in it is too."""
        parts = urlsplit(url)
        schemes = ("https", "http") if self.allow_http else ("https",)
        if parts.scheme not in schemes:
            raise RefusedTarget(f"the URL must use {' or '.join(schemes)}, not {parts.scheme or 'no scheme'}")
        if not parts.hostname:
            raise RefusedTarget("the URL has no host")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise RefusedTarget("the URL's port is not a number from 0 to 65535") from None
        if (literal := _literal(parts.hostname)) is not None:
            self.check_address(str(literal), parts.hostname)
        return parts.hostname, port

    def check_address(self, address: str, host: str) -> None:
        """Refuse ``address`` (one that ``host`` resolved to) unless it is public or allowed."""
        ip = _literal(address)
        if ip is None:
            raise RefusedTarget(f"{host} resolved to {address!r}, which is no IP address")
        if self._allowed(ip):
            return
        if (kind := not_public(ip)) is not None:
            named = f"{ip} is" if _literal(host) == ip else f"{host} resolves to {ip},"
            raise RefusedTarget(f"{named} {kind}; {EXCEPTIONS_HINT}")

    def _allowed(self, ip: IPAddress) -> bool:
        candidates = [ip] if (embedded := _embedded_ipv4(ip)) is None else [ip, embedded]
        return any(c in network for c in candidates for network in self.allowed_networks)


# ── resolving and connecting (I/O) ───────────────────────────────────────────────────────


def check_webhook_url(url: str, policy: WebhookPolicy) -> str:
    """``url`` if the server may send to it now; otherwise :class:`RefusedTarget` says why.

    Blocks on DNS (call it from a worker thread). A name that does not resolve yet is let
    through: every delivery resolves and checks it again.
    """
    host, port = policy.check_url(url)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return url
    for *_, sockaddr in found:
        policy.check_address(sockaddr[0], host)
    return url


async def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, in the resolver's order, each once."""
    found = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(sockaddr[0] for *_, sockaddr in found))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Opens a connection only to addresses the policy allows, and to nothing else.

    The host is resolved here, every address it resolves to is checked, and the connection is made
    to a checked address; TLS still verifies the certificate against the host's name.
    """

    def __init__(self, policy: WebhookPolicy, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.policy = policy
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None, socket_options=None) -> httpcore.AsyncNetworkStream:
        last: Exception | None = None
        for address in await self._checked(host, port, timeout):
            try:
                return await self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:  # try the next address
                last = exc
        raise last or httpcore.ConnectError(f"{host} resolves to no address")

    async def _checked(self, host: str, port: int, timeout: float | None) -> list[str]:
        try:
            with anyio.fail_after(timeout):
                addresses = await resolve(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} took longer than {timeout} s") from None
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        for address in addresses:  # all of them: a name mixing public and private ones is refused
            self.policy.check_address(address, host)
        return addresses

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options=None) -> httpcore.AsyncNetworkStream:
        raise RefusedTarget("webhooks are not sent to Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, but every connection opened through :class:`GuardedBackend`.

    A refused address raises :class:`RefusedTarget` from the request. An ``httpx`` client given
    this transport mounts no proxy from the environment, which would connect where no check sees.
    """

    def __init__(self, policy: WebhookPolicy, limits: httpx.Limits | None = None) -> None:
        super().__init__()
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        # httpx 0.28 (pinned) takes no network backend of its own; its pool is what it sends through.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(), network_backend=GuardedBackend(policy),
            max_connections=limits.max_connections, max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry)
