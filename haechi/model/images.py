"""Recognising the image formats citizens may attach, by their bytes rather than their label."""

from __future__ import annotations

from haechi.core.errors import InvalidInput

#: Formats every phone camera and browser produces, by their file signature.
SIGNATURES = {
    "image/jpeg": lambda b: b[:3] == b"\xff\xd8\xff",
    "image/png": lambda b: b[:8] == b"\x89PNG\r\n\x1a\n",
    "image/webp": lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP",
}


def image_type(data: bytes, declared: str | None) -> str:
    """The media type of ``data``; refuses anything that is not one of ``SIGNATURES`` or is mislabelled."""
    if not data:
        raise InvalidInput("the photo is empty", field="body")
    found = next((kind for kind, matches in SIGNATURES.items() if matches(data)), None)
    if found is None:
        raise InvalidInput(f"the photo must be one of {', '.join(SIGNATURES)}; these bytes are none of them",
                           field="body")
    declared = (declared or "").split(";")[0].strip().lower()
    if declared and declared not in (found, "application/octet-stream"):
        raise InvalidInput(f"the body is {found} but Content-Type says {declared}", field="header.content-type")
    return found
