"""Pieces every router shares: strict request models, the DB dependency, coordinates, area codes."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.exceptions import RequestValidationError
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from sqlalchemy import Connection, Engine

from haechi.core.clock import as_utc
from haechi.core.errors import InvalidInput, NotFound
from haechi.model.geo import parse_bbox
from haechi.store import areas, deadletters

API_PREFIX = "/api/v1"


class RequestBody(BaseModel):
    """A JSON body: unknown fields are refused by name, enums are kept as their plain values."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, use_enum_values=True)


class QueryParams(RequestBody):
    """Query parameters as one model, so a misspelt parameter is refused instead of ignored."""


class Record(BaseModel):
    """A response model filled from a store row; columns it does not name are left out."""


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


#: The integrated DB; handlers open ``with engine.begin() as conn:`` around their store calls.
Db = Annotated[Engine, Depends(get_engine)]

Lon = Annotated[float, Field(ge=-180, le=180, description="Longitude, WGS84 degrees · 경도")]
Lat = Annotated[float, Field(ge=-90, le=90, description="Latitude, WGS84 degrees · 위도")]
AreaCode = Annotated[
    str,
    Field(
        pattern=r"^\d{2,10}$",
        description="행정표준코드: 2 digits for the city, 5 a district, 8–10 a dong",
        examples=["11680"],
    ),
]
#: PostgreSQL's INTEGER and BIGINT (SQLite's INTEGER is 64-bit): the ids, counts and amounts the DB
#: keeps. A larger number names no row and cannot be stored, and PostgreSQL refuses even to compare
#: one with a column, so it is refused up front (a 422 naming the field) instead of failing in the DB.
#: Most ids are INTEGER; the high-volume tables (observations, deliveries, the audit log, care
#: positions and alerts …) count in BIGINT, as do PostgreSQL's OFFSET and LIMIT.
MAX_INTEGER = 2**31 - 1
MAX_BIGINT = 2**63 - 1
#: A row id in a path; ``BigId`` for the BIGINT tables.
Id = Annotated[int, Path(ge=1, le=MAX_INTEGER)]
BigId = Annotated[int, Path(ge=1, le=MAX_BIGINT)]
Limit = Annotated[int, Field(ge=1, le=1000, description="Most rows to return")]
Offset = Annotated[int, Field(ge=0, le=MAX_BIGINT, description="Rows to skip, for paging")]


def _restore_plus(value: Any) -> Any:
    # An unencoded "+09:00" in a query string arrives as " 09:00"; put the sign back.
    if isinstance(value, str):
        return re.sub(r" (\d{2}:?\d{2})$", r"+\1", value)
    return value


#: A moment with its UTC offset (naive times are ambiguous across KST and UTC, so refused).
Moment = Annotated[AwareDatetime, BeforeValidator(_restore_plus)]
#: A stored moment rendered in UTC (SQLite hands times back naive, in UTC).
UtcMoment = Annotated[datetime, AfterValidator(as_utc)]


def ensure_area_exists(conn: Connection, code: str | None, field: str) -> None:
    """422 naming ``field`` when ``code`` is given but no such area is loaded."""
    if code is None:
        return
    try:
        areas.get_area(conn, code, geometry=False)
    except NotFound:
        raise InvalidInput(
            f"no administrative area with code {code!r} is loaded", field=field
        ) from None


def bbox_query(text: str) -> tuple[float, float, float, float]:
    """A ``bbox=w,s,e,n`` query parameter (WGS84 degrees); a 422 naming ``query.bbox`` otherwise."""
    try:
        return parse_bbox(text)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="query.bbox") from None


@contextlib.contextmanager
def kept_if_refused(engine: Engine, source: str, raw: bytes) -> Iterator[None]:
    """Validate (and write) a body inside this block: a refusal is kept in the dead-letter store with
    its reason, so nothing sent is lost, and answered as a 422 naming the fields at fault."""
    try:
        yield
    except (ValidationError, InvalidInput) as exc:
        with engine.begin() as conn:
            deadletters.keep(conn, source, refusal_reason(exc), raw)
        if isinstance(exc, ValidationError):
            errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
            raise RequestValidationError(errors, body=raw) from exc
        raise


def refusal_reason(exc: Exception) -> str:
    """One line naming each field at fault and why, as the dead-letter store keeps it."""
    if isinstance(exc, ValidationError):
        return "; ".join(f"body.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return f"{getattr(exc, 'field', None) or 'body'}: {exc}"


class OptionalPoint(RequestBody):
    """A body that may carry a point: both coordinates or neither."""

    lon: Lon | None = None
    lat: Lat | None = Field(None, validate_default=True)

    @field_validator("lat")
    @classmethod
    def _lat_goes_with_lon(cls, lat: float | None, info: ValidationInfo) -> float | None:
        if "lon" in info.data and (info.data["lon"] is None) != (lat is None):
            raise ValueError("give lon and lat together, or neither")
        return lat
