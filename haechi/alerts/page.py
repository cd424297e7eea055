"""An alert's public page: what its CAP ``<web>`` links, rendered from the stored alert. Pure.

One section per language the alert was written in, each with its ``lang``: the headline, when
and where, what is happening and what to do, who sent it, and the CAP message itself. A drill or
a test says so first, in Korean and English. Plain, accessible HTML with no script, so it
works for anyone, on any device, and a cache can keep it.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from .webhooks import info_blocks, primary_language

#: Labels, Korean then English (the page's own words; the alert's are its own).
LABELS = {
    "when": ("발령·유효 시각", "Effective / expires"),
    "where": ("대상 지역", "Area"),
    "what": ("상황", "What is happening"),
    "todo": ("행동 요령", "What to do"),
    "from": ("발신", "From"),
    "cap": ("CAP 원문", "The CAP message"),
}
NOT_REAL = {
    "Exercise": "훈련 메시지입니다. 실제 상황이 아닙니다. · This is an exercise, not a real emergency.",
    "Test": "시스템 시험 메시지입니다. 실제 상황이 아닙니다. · This is a system test, not a real emergency.",
}
CANCELLED = "해제되었습니다 · Lifted (all clear)"
STYLE = ("<style>body{font:1rem/1.5 system-ui,sans-serif;max-width:48rem;margin:auto;padding:1rem}"
         ".notice{border:2px solid;padding:.5rem;font-weight:bold}section{border-top:1px solid #888}</style>")


def render(alert: Mapping[str, Any], links: Mapping[str, str]) -> str:
    """The page (HTML5, UTF-8) of a stored alert row; ``links`` are its CAP XML and JSON addresses."""
    infos = info_blocks(alert["cap_json"])
    first = infos[0] if infos else {}
    title = first.get("headline") or first.get("event") or alert["identifier"]
    notice = NOT_REAL.get(alert["status"])
    parts = [
        "<!doctype html>",
        f'<html lang="{_lang(first)}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f'<link rel="alternate" type="application/cap+xml" href="{escape(links["cap_xml"])}">',
        STYLE,
        "</head><body><main>",
        f'<p class="notice"><strong>{escape(notice)}</strong></p>' if notice else "",
        f'<p class="notice">{escape(CANCELLED)}</p>' if alert["msg_type"] == "Cancel" else "",
        *(_section(info) for info in infos),
        _source(alert["identifier"], links),
        "</main></body></html>",
    ]
    return "\n".join(p for p in parts if p)


def _section(info: Mapping[str, Any]) -> str:
    areas = ", ".join(a.get("areaDesc", "") for a in info.get("area", ()))
    times = " – ".join(t for t in (info.get("effective"), info.get("expires")) if t)
    rows = [("when", times), ("where", areas), ("what", info.get("description")),
            ("todo", info.get("instruction")), ("from", info.get("senderName"))]
    items = "".join(f"<dt>{_label(key)}</dt><dd>{_paragraphs(value)}</dd>" for key, value in rows if value)
    heading = escape(info.get("headline") or info.get("event") or "")
    return f'<section lang="{_lang(info)}"><h2>{heading}</h2><dl>{items}</dl></section>'


def _source(identifier: str, links: Mapping[str, str]) -> str:
    return (f'<p>{_label("cap")}: <a href="{escape(links["cap_xml"])}">CAP XML</a> · '
            f'<a href="{escape(links["json"])}">JSON</a> · <code>{escape(identifier)}</code></p>')


def _label(key: str) -> str:
    korean, english = LABELS[key]
    return f'<span lang="ko">{korean}</span> · <span lang="en">{english}</span>'


def _paragraphs(text: str) -> str:
    return "<br>".join(escape(line) for line in text.splitlines())


def _lang(info: Mapping[str, Any]) -> str:
    return escape(primary_language(info.get("language", "ko")))
