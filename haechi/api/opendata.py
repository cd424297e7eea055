"""Open data (공공데이터 개방): a public, read-only catalogue and bulk downloads, rate limited per client.

No token is needed; nothing personal is ever served (see haechi/warehouse/opendata.py). Each
client (by address) has a token bucket; an empty bucket is answered 429 with ``Retry-After``.
"""

from __future__ import annotations

import html
from datetime import date
from pathlib import Path
from string import Template
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException

from haechi.core.errors import InvalidInput
from haechi.warehouse import opendata

from .common import API_PREFIX, Db
from .problems import PROBLEM_RESPONSES, prefers_korean

PAGE = Path(__file__).resolve().parents[1] / "web" / "catalogue.html"


def rate_limited(request: Request) -> None:
    """Take one token from the client's bucket, or refuse with 429 and when to retry."""
    state = request.app.state
    limiter = getattr(state, "open_limiter", None)
    if limiter is None:
        limiter = state.open_limiter = opendata.TokenBucket(state.settings.open_rate_per_s, state.settings.open_burst)
    client = request.client.host if request.client else "unknown"
    wait = limiter.take(client)
    if wait > 0:
        raise HTTPException(429, f"too many open-data requests from {client}; retry in {wait:.1f} s "
                                 f"(at most {limiter.burst} at once, {limiter.rate:g} per second after)",
                            headers={"Retry-After": opendata.TokenBucket.retry_after(wait)})


router = APIRouter(prefix=f"{API_PREFIX}/open", tags=["open data"], responses=PROBLEM_RESPONSES,
                   dependencies=[Depends(rate_limited)])
page_router = APIRouter(dependencies=[Depends(rate_limited)])

LD_JSON = "application/ld+json"


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + f"{API_PREFIX}/open"


def _lake(request: Request) -> Path:
    return Path(request.app.state.settings.lake_dir)


@router.get("", summary="Open-data catalogue (DCAT) · 공공데이터 목록", response_class=JSONResponse)
def open_catalogue(request: Request) -> Response:
    """The DCAT catalogue as JSON-LD: every dataset with licence, update frequency, fields and downloads."""
    return JSONResponse(opendata.dcat_catalogue(_base(request)), media_type=LD_JSON)


@router.get("/datasets/{name}.{fmt}", summary="Download a dataset · 데이터 내려받기")
async def download(
    request: Request, engine: Db, name: str, fmt: str,
    start: Annotated[date | None, Query(description="First local day (by-day datasets)")] = None,
    end: Annotated[date | None, Query(description="Last local day (by-day datasets)")] = None,
) -> Response:
    """The whole dataset (or the days asked for) as CSV, GeoJSON, JSON or Parquet."""
    if fmt not in opendata.FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}; one of {', '.join(opendata.FORMATS)}", field="path.fmt")
    if start and end and end < start:
        raise InvalidInput("end is before start", field="query.end")
    spec = opendata.spec_of(name)
    table = await anyio.to_thread.run_sync(
        lambda: opendata.table_of(engine, _lake(request), name, opendata.Window(start, end)))
    body = opendata.render(table, fmt, spec)
    return Response(body, media_type=opendata.FORMATS[fmt], headers={
        "Content-Disposition": f'attachment; filename="{name}.{fmt}"',
        "Link": f'<{opendata.catalogue()["licence"]}>; rel="license"'})


@router.get("/datasets/{name}", summary="One dataset's metadata · 데이터셋 설명", response_class=JSONResponse)
def dataset(request: Request, name: str) -> Response:
    return JSONResponse({"@context": opendata.CONTEXT, **opendata.dcat_dataset(name, _base(request))},
                        media_type=LD_JSON)


@page_router.get("/open", include_in_schema=False, response_class=HTMLResponse)
def catalogue_page(request: Request, lang: Annotated[str | None, Query(pattern="^(ko|en)$")] = None) -> HTMLResponse:
    """The catalogue for people, in Korean or English (``?lang=``, else Accept-Language)."""
    korean = lang == "ko" if lang else prefers_korean(request)
    return HTMLResponse(render_page(opendata.dcat_catalogue(_base(request)), korean))


def _pick(values: list[dict[str, Any]], korean: bool) -> str:
    wanted = "ko" if korean else "en"
    return next((v["@value"] for v in values if v["@language"] == wanted), values[0]["@value"])


FREQUENCY_WORDS = {"CONT": ("수시(실시간)", "continuous"), "HOURLY": ("매시", "hourly"), "DAILY": ("매일", "daily"),
                   "ANNUAL": ("매년", "annual"), "IRREG": ("비정기", "irregular")}


def render_page(catalogue: dict[str, Any], korean: bool) -> str:
    words = {True: {"lang": "ko", "other": "en", "other_name": "English", "title": "해치 공공데이터",
                    "intro": "도시안전 데이터를 누구나 자유롭게 내려받을 수 있습니다. "
                             "개인정보와 위치 추적 정보는 포함하지 않습니다.",
                    "fields": "항목", "frequency": "갱신 주기", "licence": "이용 허락", "download": "내려받기",
                    "metadata": "메타데이터(DCAT JSON-LD)"},
             False: {"lang": "en", "other": "ko", "other_name": "한국어", "title": "Haechi open data",
                     "intro": "Urban-safety data anyone may download and reuse. No personal or location-tracking "
                              "data is included.",
                     "fields": "Fields", "frequency": "Updated", "licence": "Licence", "download": "Download",
                     "metadata": "Metadata (DCAT JSON-LD)"}}[korean]
    e = html.escape
    sections = []
    for d in catalogue["dcat:dataset"]:
        freq = FREQUENCY_WORDS[d["dct:accrualPeriodicity"]["@id"].rsplit("/", 1)[1]][0 if korean else 1]
        links = " · ".join(f'<a href="{e(x["dcat:downloadURL"])}" download>{e(x["dct:format"].upper())}</a>'
                           for x in d["dcat:distribution"])
        fields = ", ".join(f"<code>{e(c['csvw:name'])}</code>" for c in d["csvw:tableSchema"]["csvw:column"])
        title = e(_pick(d["dct:title"], korean))
        sections.append(f"""<section class="dataset" aria-labelledby="ds-{e(d['dct:identifier'])}">
  <h2 id="ds-{e(d['dct:identifier'])}">{title}</h2>
  <p>{e(_pick(d['dct:description'], korean))}</p>
  <dl>
    <dt>{words['frequency']}</dt><dd>{e(freq)}</dd>
    <dt>{words['licence']}</dt><dd><a href="{e(d['dct:license']['@id'])}">{e(d['dct:license']['dct:title'])}</a></dd>
    <dt>{words['fields']}</dt><dd>{fields}</dd>
    <dt>{words['download']}</dt><dd>{links}</dd>
  </dl>
  <p><a href="{e(d['@id'])}">{words['metadata']}</a></p>
</section>""")
    return Template(PAGE.read_text(encoding="utf-8")).substitute(
        lang=words["lang"], title=e(words["title"]), intro=e(words["intro"]), other=words["other"],
        other_name=words["other_name"], catalogue_url=e(catalogue["@id"]), datasets="\n".join(sections))
