"""Haechi's hand-written alert messages and action guidance, read from the TOML files beside this.

- ``common.toml``: languages, units, property and level vocabulary, time formats, update templates,
  exercise and test marks, sender name and contact.
- ``hazards/<hazard>.toml``: per level and language the level's ``name``, ``headline``,
  ``description`` and ``instruction``; the all-clear (``cancel``) texts; CAP categories, response
  types and the default expiry.
- ``guidance/<hazard>.toml``: action guidance per audience and language (a list of lines), used in
  CAP ``<instruction>`` and by the portal.

A city adds or replaces texts without code: :func:`load_library` merges folders of the same shape
over ours, key by key.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from haechi.core.errors import InvalidInput

HERE = Path(__file__).parent
TEXT_FIELDS = ("headline", "description", "instruction")
#: Every placeholder a template may use; :mod:`haechi.alerts.compose` fills them all.
PLACEHOLDERS = frozenset({
    "city", "area", "date", "time", "value", "unit", "threshold", "window", "persistence",
    "property", "level", "previous_level", "crisis"})
#: A level's ``name`` may only use these (it is rendered first, then becomes ``{level}``).
NAME_PLACEHOLDERS = frozenset({"property", "crisis"})


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path}: {exc}") from None


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` laid on ``base``: tables merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_folder(folder: Path) -> dict[str, Any]:
    """``{"common": …, "hazards": {name: …}, "guidance": {name: …}}`` of one folder."""
    data: dict[str, Any] = {"common": {}, "hazards": {}, "guidance": {}}
    if (folder / "common.toml").is_file():
        data["common"] = _read_toml(folder / "common.toml")
    for kind in ("hazards", "guidance"):
        for path in sorted((folder / kind).glob("*.toml")):
            data[kind][path.stem] = _read_toml(path)
    return data


def placeholders(template: str) -> set[str]:
    """The names between braces in ``template``."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def render(template: str, context: Mapping[str, str], *, where: str = "template") -> str:
    """``template`` with its placeholders filled from ``context``; a missing one is a clear error."""
    try:
        return template.format_map(context)
    except (KeyError, IndexError, ValueError) as exc:
        raise InvalidInput(f"{where}: cannot fill {exc} in {template!r}") from None


@dataclass(frozen=True)
class Library:
    """The messages and guidance, merged from Haechi's files and any city overrides."""

    common: dict[str, Any]
    hazards: dict[str, dict[str, Any]]
    guidance: dict[str, dict[str, Any]]

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.common["languages"])

    @property
    def audiences(self) -> tuple[str, ...]:
        return tuple(self.common["audiences"])

    def hazard(self, hazard: str) -> dict[str, Any]:
        try:
            return self.hazards[hazard]
        except KeyError:
            raise InvalidInput(f"no alert messages for hazard {hazard!r}", field="hazard") from None

    def level_text(self, hazard: str, level: str, language: str) -> dict[str, str]:
        """``name``, ``headline``, ``description``, ``instruction`` of one level in one language."""
        try:
            return self.hazard(hazard)["levels"][level][language]
        except KeyError:
            raise InvalidInput(f"no {language!r} message for {hazard} {level}", field="language") from None

    def level_profile(self, hazard: str, level: str) -> dict[str, Any]:
        """The level's CAP settings (``response_types``)."""
        return {k: v for k, v in self.hazard(hazard)["levels"][level].items() if k not in self.languages}

    def cancel_text(self, hazard: str, language: str) -> dict[str, str]:
        try:
            return self.hazard(hazard)["cancel"][language]
        except KeyError:
            raise InvalidInput(f"no {language!r} all-clear message for {hazard}", field="language") from None

    def update_text(self, direction: str, language: str) -> dict[str, str]:
        """The update templates, ``direction`` being ``raised`` or ``lowered``."""
        return self.common["update"][direction][language]

    def word(self, table: str, key: str, language: str) -> str:
        """One entry of a vocabulary table of ``common.toml`` (units, properties, crisis …)."""
        try:
            return self.common[table][key][language]
        except KeyError:
            raise InvalidInput(f"common.toml has no {table}.{key}.{language}") from None

    def guidance_lines(self, hazard: str, audience: str, language: str) -> tuple[str, ...]:
        """The action guidance for one hazard, audience and language, one action a line."""
        try:
            return tuple(self.guidance[hazard][audience][language])
        except KeyError:
            raise InvalidInput(
                f"no {language!r} guidance for {audience!r} on {hazard!r}", field="audience") from None

    def guidance_text(self, hazard: str, audience: str, language: str) -> str:
        """The guidance as it reads in ``<instruction>``: a heading, then a bullet per line."""
        layout = self.common["guidance_layout"][language]
        heading = layout["heading"].format(audience=self.word("audience_names", audience, language))
        lines = (layout["bullet"] + line for line in self.guidance_lines(hazard, audience, language))
        return "\n".join((heading, *lines))


def load_library(overrides: Iterable[Path] = ()) -> Library:
    """Haechi's messages with each override folder (same layout) merged over them in turn."""
    data = _read_folder(HERE)
    for folder in overrides:
        data = _merge(data, _read_folder(Path(folder)))
    return Library(data["common"], data["hazards"], data["guidance"])


@cache
def library() -> Library:
    """Haechi's own messages, read once."""
    return load_library()


# ── completeness: used by the tests, and by a city to check its overrides ──────────────

def _template_problems(where: str, texts: Mapping[str, str], fields: Iterable[str],
                       allowed: frozenset[str]) -> list[str]:
    problems = []
    for name in fields:
        text = texts.get(name)
        if not isinstance(text, str) or not text.strip():
            problems.append(f"{where}: no {name}")
            continue
        unknown = placeholders(text) - allowed
        if unknown:
            problems.append(f"{where}.{name}: unknown placeholders {sorted(unknown)}")
    return problems


def problems(lib: Library, levels: Iterable[tuple[str, str]], guided: Iterable[str]) -> list[str]:
    """What is missing or wrong: every (hazard, level) in ``levels`` needs every text in every
    language, with known placeholders only; every hazard in ``guided`` needs guidance for every
    audience in every language."""
    found: list[str] = []
    levels = sorted(set(levels))
    for hazard, level in levels:
        for lang in lib.languages:
            texts = lib.hazards.get(hazard, {}).get("levels", {}).get(level, {}).get(lang, {})
            found += _template_problems(f"{hazard}.{level}.{lang}", texts, ("name",), NAME_PLACEHOLDERS)
            found += _template_problems(f"{hazard}.{level}.{lang}", texts, TEXT_FIELDS, PLACEHOLDERS)
    for hazard in sorted({h for h, _ in levels}):
        for lang in lib.languages:
            texts = lib.hazards.get(hazard, {}).get("cancel", {}).get(lang, {})
            found += _template_problems(f"{hazard}.cancel.{lang}", texts, TEXT_FIELDS, PLACEHOLDERS)
    for direction in ("raised", "lowered"):
        for lang in lib.languages:
            texts = lib.common.get("update", {}).get(direction, {}).get(lang, {})
            found += _template_problems(f"update.{direction}.{lang}", texts, ("headline", "description"),
                                        PLACEHOLDERS)
    for hazard in sorted(set(guided)):
        for audience in lib.audiences:
            for lang in lib.languages:
                lines = lib.guidance.get(hazard, {}).get(audience, {}).get(lang)
                if not lines or not all(isinstance(x, str) and x.strip() for x in lines):
                    found.append(f"guidance {hazard}.{audience}.{lang}: missing or empty")
                elif any(placeholders(x) for x in lines):
                    found.append(f"guidance {hazard}.{audience}.{lang}: guidance takes no placeholders")
    return found
