"""Who issues this installation's alerts, as the world sees them: the public pages they link and the
key they are signed with.

One per process, from the settings (``HAECHI_PUBLIC_URL``, ``HAECHI_CAP_SIGNING_KEY``): the
alerts part configures it when the runtime is built (:func:`configure`); a process that never
did (a CLI command) takes the environment's settings on first use (:func:`current`). Kept here
rather than passed along because every path that issues an alert — the engine, an operator by
hand, the refresher — must sign and link the same way.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from urllib.parse import quote

from haechi.core.settings import Settings, get_settings

from .signing import Signer

#: Where an alert's public page lives under the public URL (``haechi.api.alerts_public``).
PAGE_PATH = "/alerts/{identifier}.html"
KEY_PATH = "/alerts/signing-key.pem"


@dataclass(frozen=True)
class Issuer:
    public_url: str
    signer: Signer

    def page_url(self, identifier: str) -> str:
        """The alert's public page, the CAP ``<web>`` of each of its infos."""
        return self.public_url + PAGE_PATH.format(identifier=quote(identifier, safe=""))

    def key_url(self) -> str:
        return self.public_url + KEY_PATH

    def sign(self, xml: bytes) -> bytes:
        """The CAP document signed with this installation's key, naming where its public key is."""
        return self.signer.sign(xml, self.key_url())


def public_url(settings: Settings) -> str:
    """Where people, aggregators and webhooks reach this server (its host and port if unset)."""
    return (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")


_lock = threading.Lock()
_current: Issuer | None = None


def configure(settings: Settings) -> Issuer:
    """This process's issuer from ``settings``; makes the signing key on first start if missing."""
    global _current
    issuer = Issuer(public_url(settings), Signer.from_file(settings.cap_signing_key, create=True))
    with _lock:
        _current = issuer
    return issuer


def current() -> Issuer:
    with _lock:
        chosen = _current
    return chosen or configure(get_settings())
