"""Guardian alerts in the guardian's language and for their needs (services 19, 20).

Templates are TOML per language (``messages/<lang>.toml``); needs choose the variant:
``easy_read`` puts the easy-read text first, ``large_text`` asks the app for larger type,
``sign_language`` adds the Korean Sign Language dictionary link.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from haechi.core.clock import KST

FOLDER = Path(__file__).with_name("messages")
NEEDS = ("large_text", "easy_read", "sign_language")


@cache
def common() -> dict[str, Any]:
    with open(FOLDER / "common.toml", "rb") as f:
        return tomllib.load(f)


def languages() -> tuple[str, ...]:
    return tuple(common()["languages"])


@cache
def templates(language: str) -> dict[str, Any]:
    if language not in languages():
        raise ValueError(f"language must be one of {', '.join(languages())}")
    with open(FOLDER / f"{language}.toml", "rb") as f:
        return tomllib.load(f)


def render(kind: str, language: str, needs: Iterable[str] = (), *, ward: str, at: datetime,
           detail: dict[str, Any] | None = None, zone: str | None = None) -> dict[str, Any]:
    """The message one guardian receives for one alert."""
    detail = detail or {}
    words = templates(language)
    hazard = detail.get("hazard") or "other"
    values = {
        "ward": ward, "zone": zone or detail.get("zone") or "",
        "minutes": detail.get("minutes", ""), "time": at.astimezone(KST).strftime("%H:%M"),
        "hazard": words["hazards"].get(hazard, words["hazards"]["other"]),
    }
    template = words[kind]
    needs = set(needs)
    easy = template["easy"].format(**values)
    message = {
        "language": language,
        "title": template["title"].format(**values),
        "body": easy if "easy_read" in needs else template["body"].format(**values),
        "easy_read": easy,
        "large_text": "large_text" in needs,
    }
    if "large_text" in needs:
        message["text_scale"] = common()["large_text_scale"]
    if "sign_language" in needs:
        message["sign_language_url"] = common()["sign_language_url"]
    return message
