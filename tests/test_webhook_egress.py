"""Where webhooks may go: public addresses only, checked on the URL and again at every connection.

The address rules are pure; the connection test sends through the real guarded transport to a
real receiver on 127.0.0.1, named ``localhost`` so that the name must be resolved to be refused.
"""

from __future__ import annotations

import asyncio
from ipaddress import ip_address

import httpx
import pytest
from test_channels_support import LOCAL_WEBHOOKS, Receiver

from haechi.core.egress import (
    GuardedTransport,
    RefusedTarget,
    WebhookPolicy,
    check_webhook_url,
    not_public,
)

STRICT = WebhookPolicy()


@pytest.mark.parametrize(("address", "kind"), [
    ("127.0.0.1", "loopback"),
    ("::1", "loopback"),
    ("169.254.169.254", "link-local"),  # the cloud metadata service
    ("fe80::1", "link-local"),
    ("10.0.0.5", "private"),
    ("172.16.3.4", "private"),
    ("192.168.0.1", "private"),
    ("fd00::5", "private"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.251", "multicast"),
    ("240.0.0.1", "reserved"),
    ("100.64.0.1", "not routed on the internet"),  # carrier-grade NAT
    ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped: judged as the IPv4 address it reaches
    ("2002:a00:5::", "private"),  # 6to4 of 10.0.0.5
])
def test_addresses_that_are_not_public_are_named_for_what_they_are(address, kind):
    assert kind in not_public(ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "211.234.10.20", "2001:4860:4860::8888", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address):
    assert not_public(ip_address(address)) is None


def test_only_https_unless_plain_http_is_allowed():
    with pytest.raises(RefusedTarget, match="must use https, not http"):
        STRICT.check_url("http://gateway.example/hook")
    assert STRICT.check_url("https://gateway.example/hook") == ("gateway.example", 443)
    assert WebhookPolicy(allow_http=True).check_url("http://gateway.example/hook") == ("gateway.example", 80)


@pytest.mark.parametrize(("url", "reason"), [
    ("https://127.0.0.1/hook", "127.0.0.1 is a loopback address"),
    ("https://[::1]:8443/", "::1 is a loopback address"),
    ("https://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("https://localhost:5432/", "localhost resolves to 127.0.0.1, a loopback address"),
    ("https://2130706433/", "2130706433 resolves to 127.0.0.1"),  # 127.0.0.1 written as one number
])
def test_a_url_reaching_this_host_or_its_network_is_refused_with_the_reason(url, reason):
    with pytest.raises(RefusedTarget, match=reason):
        check_webhook_url(url, STRICT)


def test_allowed_networks_are_the_only_exceptions():
    policy = WebhookPolicy.of(networks=["127.0.0.1/32"])
    assert check_webhook_url("https://127.0.0.1:8443/hook", policy)
    with pytest.raises(RefusedTarget, match="::1 is a loopback"):
        check_webhook_url("https://[::1]/", policy)
    with pytest.raises(ValueError, match="HAECHI_WEBHOOK_ALLOWED_NETWORKS"):
        WebhookPolicy.of(networks=["not-a-network"])


def test_a_name_that_does_not_resolve_yet_is_checked_again_at_delivery():
    assert check_webhook_url("https://gateway.invalid/hook", STRICT) == "https://gateway.invalid/hook"


def test_the_transport_refuses_to_connect_where_a_name_resolves_to_this_host():
    """As after DNS rebinding: the URL passed the scheme check, the connection is refused."""

    async def post(policy: WebhookPolicy, url: str) -> int:
        async with httpx.AsyncClient(transport=GuardedTransport(policy)) as client:
            return (await client.post(url, content=b"{}")).status_code

    with Receiver() as receiver:
        url = receiver.url.replace("127.0.0.1", "localhost") + "/hook"
        with pytest.raises(RefusedTarget, match="localhost resolves to 127.0.0.1, a loopback address"):
            asyncio.run(post(WebhookPolicy(allow_http=True), url))
        assert receiver.requests == []
        assert asyncio.run(post(LOCAL_WEBHOOKS, url)) == 200  # the same request, where it is allowed
    assert len(receiver.requests) == 1
