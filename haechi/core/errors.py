"""Errors that cross layers. The API renders each as RFC 9457 problem+json."""

from __future__ import annotations


class HaechiError(Exception):
    """Base class: ``status`` is the HTTP status the API answers with, ``title`` its short name."""

    status = 500
    title = "Internal error"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class InvalidInput(HaechiError):
    status = 422
    title = "Invalid input"


class NotFound(HaechiError):
    status = 404
    title = "Not found"


class Conflict(HaechiError):
    status = 409
    title = "Conflict"


class Unauthorized(HaechiError):
    status = 401
    title = "Unauthorized"


class Forbidden(HaechiError):
    status = 403
    title = "Forbidden"
