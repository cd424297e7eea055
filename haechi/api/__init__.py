"""The HTTP API: FastAPI app, one router per capability, problem+json errors, auth and audit."""

from .app import create_app

__all__ = ["create_app"]
