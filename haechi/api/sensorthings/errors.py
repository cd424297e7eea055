"""The one error the SensorThings API adds: 400 Bad Request, naming the option or field at fault.

OGC 18-088 answers a malformed request with 400; the house renders it as RFC 9457 problem+json
whose ``errors`` names the query option (``$filter``) or body field (``body.result``).
"""

from __future__ import annotations

from haechi.core.errors import HaechiError


class BadRequest(HaechiError):
    status = 400
    title = "Bad request"
