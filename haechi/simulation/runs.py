"""Simulation runs: validate a scenario, store it, run it in the background, keep its result.

A run reads the integrated DB and writes only its own ``simulations`` row: it never issues
warnings, writes observations or touches the live state, so a what-if cannot leak into operations.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, select, update
from sqlalchemy.engine import Engine

from haechi.core.clock import utcnow
from haechi.core.errors import Conflict, HaechiError, InvalidInput, NotFound
from haechi.store import deadletters
from haechi.store.schema import simulations

from .registry import Cancelled, Kind, Progress, kinds

log = logging.getLogger(__name__)
DEAD_LETTER_SOURCE = "simulations"
FINISHED = ("done", "failed", "cancelled")
#: Background runs share a small pool: the models are CPU-bound and the machine is shared.
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="haechi-simulation")
_PROGRESS_EVERY_S = 0.2
LIST_COLUMNS = [c for c in simulations.c if c.name != "result"]


# ── input ───────────────────────────────────────────────────────────────────────────────


def kind_named(name: str) -> Kind:
    found = kinds()
    if name not in found:
        raise InvalidInput(f"unknown simulation kind {name!r}; available: {', '.join(sorted(found)) or 'none'}",
                           field="kind")
    return found[name]


def validate(kind_name: str, params: dict[str, Any], field_prefix: str = "params") -> BaseModel:
    """The kind's params model, or InvalidInput naming the field (e.g. ``params.magnitude``)."""
    kind = kind_named(kind_name)
    try:
        return kind.params.model_validate(params)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join([field_prefix, *map(str, first["loc"])])
        message = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
        raise InvalidInput(f"{where}: {str(message).removeprefix('Value error, ')}", field=where) from error


def accept(engine: Engine, kind_name: str, params: Any) -> BaseModel:
    """Validate a scenario (fields, then the kind's DB checks); refused input is kept as a dead letter."""
    try:
        if not isinstance(params, dict):
            raise InvalidInput("params must be a JSON object", field="params")
        model = validate(kind_name, params)
        kind = kind_named(kind_name)
        if kind.check is not None:
            kind.check(engine, model)
        return model
    except InvalidInput as error:
        with engine.begin() as conn:
            _keep(conn, kind_name, params, error.detail)
        raise


def _keep(conn: Connection, kind: str, params: Any, reason: str) -> None:
    payload = json.dumps({"kind": kind, "params": params}, ensure_ascii=False, default=str)
    deadletters.keep(conn, DEAD_LETTER_SOURCE, reason, payload)


# ── store ───────────────────────────────────────────────────────────────────────────────


def create(conn: Connection, kind: str, params: BaseModel, created_by: str | None) -> dict[str, Any]:
    row = {"kind": kind, "params": params.model_dump(mode="json"), "status": "queued", "progress": 0.0,
           "cancel_requested": False, "created_by": created_by, "created_at": utcnow()}
    run_id = conn.execute(simulations.insert().values(row).returning(simulations.c.id)).scalar_one()
    return get(conn, run_id)


def get(conn: Connection, run_id: int, *, result: bool = True) -> dict[str, Any]:
    columns = simulations.c if result else LIST_COLUMNS
    row = conn.execute(select(*columns).where(simulations.c.id == run_id)).first()
    if row is None:
        raise NotFound(f"no simulation with id {run_id}")
    return dict(row._mapping)


def find(conn: Connection, kind: str | None = None, *, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    query = select(*LIST_COLUMNS).order_by(simulations.c.id.desc()).limit(limit).offset(offset)
    if kind:
        query = query.where(simulations.c.kind == kind)
    return [dict(r._mapping) for r in conn.execute(query)]


def request_cancel(conn: Connection, run_id: int) -> dict[str, Any]:
    """Queued runs are cancelled at once; running ones stop at their next progress report."""
    run = get(conn, run_id, result=False)
    if run["status"] in FINISHED:
        raise Conflict(f"simulation {run_id} has already finished ({run['status']})")
    values: dict[str, Any] = {"cancel_requested": True}
    if run["status"] == "queued":
        values |= {"status": "cancelled", "finished_at": utcnow()}
    conn.execute(update(simulations).where(simulations.c.id == run_id).values(values))
    return get(conn, run_id, result=False)


def fail_interrupted(engine: Engine) -> int:
    """At start-up: runs left queued or running by a stopped server can never finish; say so."""
    with engine.begin() as conn:
        return conn.execute(update(simulations).where(simulations.c.status.not_in(FINISHED)).values(
            status="failed", error="interrupted: the server stopped before the run finished; start it again",
            finished_at=utcnow())).rowcount


def _set(engine: Engine, run_id: int, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(update(simulations).where(simulations.c.id == run_id).values(values))


def _cancel_requested(engine: Engine, run_id: int) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(select(simulations.c.cancel_requested).where(simulations.c.id == run_id)).scalar())


# ── running ─────────────────────────────────────────────────────────────────────────────


def progress_reporter(engine: Engine, run_id: int, also: Progress | None = None) -> Progress:
    """A Progress that stores the fraction done (throttled) and raises Cancelled once cancel is asked."""
    last = [0.0]

    def report(done: int, total: int, what: str) -> None:
        if also:
            also(done, total, what)
        now = time.monotonic()
        if now - last[0] < _PROGRESS_EVERY_S and done < total:
            return
        last[0] = now
        if _cancel_requested(engine, run_id):
            raise Cancelled(f"simulation {run_id} was cancelled")
        _set(engine, run_id, progress=min(done / total, 1.0) if total else 0.0, progress_text=what[:200])

    return report


def execute(engine: Engine, run_id: int, also: Progress | None = None) -> dict[str, Any]:
    """Run a stored simulation to its end (done, failed or cancelled) and return its row."""
    with engine.connect() as conn:
        run = get(conn, run_id, result=False)
    if run["status"] != "queued":
        return run
    if run["cancel_requested"]:
        _set(engine, run_id, status="cancelled", finished_at=utcnow())
        return _final(engine, run_id)
    _set(engine, run_id, status="running", started_at=utcnow())
    try:
        kind = kind_named(run["kind"])
        result = kind.run(engine, kind.params.model_validate(run["params"]), progress_reporter(engine, run_id, also))
        _set(engine, run_id, status="done", progress=1.0, result=json_safe(result), finished_at=utcnow())
    except Cancelled:
        _set(engine, run_id, status="cancelled", finished_at=utcnow())
    except HaechiError as error:
        _set(engine, run_id, status="failed", error=error.detail, finished_at=utcnow())
    except Exception as error:  # a failed model must not leave the run 'running'
        log.exception("simulation %s failed", run_id)
        _set(engine, run_id, status="failed", error=f"{type(error).__name__}: {error}", finished_at=utcnow())
    return _final(engine, run_id)


def _final(engine: Engine, run_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        return get(conn, run_id)


def submit(engine: Engine, kind: str, params: Any, created_by: str | None) -> dict[str, Any]:
    """Validate, store as queued and start in the background; returns the queued row."""
    model = accept(engine, kind, params)
    with engine.begin() as conn:
        run = create(conn, kind, model, created_by)
    _POOL.submit(execute, engine, run["id"])
    return run


def wait(engine: Engine, run_id: int, timeout_s: float = 60.0) -> dict[str, Any]:
    """Poll until the run has finished (for tests and the CLI's --wait)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = _final(engine, run_id)
        if run["status"] in FINISHED:
            return run
        threading.Event().wait(0.05)
    raise TimeoutError(f"simulation {run_id} did not finish within {timeout_s} s")


def json_safe(value: Any) -> Any:
    """numpy scalars → Python numbers, NaN/inf → None, so every DB's JSON column accepts the result."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def layer(conn: Connection, run: dict[str, Any]) -> dict[str, Any]:
    """The run's GeoJSON; features stored without geometry get their area's boundary by ``code``."""
    from haechi.store.schema import admin_areas

    features = list(((run["result"] or {}).get("features") or {}).get("features") or [])
    wanted = {f["properties"].get("code") for f in features if f.get("geometry") is None and f.get("properties")}
    shapes = {}
    if wanted - {None}:
        rows = conn.execute(select(admin_areas.c.code, admin_areas.c.geometry)
                            .where(admin_areas.c.code.in_(sorted(wanted - {None}))))
        shapes = {code: geometry for code, geometry in rows}
    filled = [f if f.get("geometry") is not None else
              {**f, "geometry": shapes.get((f.get("properties") or {}).get("code"))} for f in features]
    return {"type": "FeatureCollection", "features": filled}


# ── comparison ──────────────────────────────────────────────────────────────────────────


def compare(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Side-by-side summaries and, per area code, each run's numeric values and their differences."""
    if len(runs) < 2:
        raise InvalidInput("compare needs at least two simulation ids", field="query.ids")
    for run in runs:
        if run["status"] != "done":
            raise Conflict(f"simulation {run['id']} is {run['status']}, not done; only finished runs compare")
    base = runs[0]
    by_run = [{a["code"]: a for a in (r["result"] or {}).get("areas", [])} for r in runs]
    codes = sorted(set().union(*by_run))
    areas = []
    for code in codes:
        rows = [m.get(code) for m in by_run]
        name = next((r.get("name_ko") for r in rows if r), None)
        numbers = sorted({k for r in rows if r for k, v in r.items() if _number(v) and k != "code"})
        values = {k: [r.get(k) if r else None for r in rows] for k in numbers}
        differences = {k: [_diff(v, vs[0]) for v in vs] for k, vs in values.items()}
        areas.append({"code": code, "name_ko": name, "values": values, "differences_from_first": differences})
    summary_keys = sorted({k for r in runs for k, v in ((r["result"] or {}).get("summary") or {}).items()
                           if _number(v)})
    return {
        "ids": [r["id"] for r in runs],
        "kinds": [r["kind"] for r in runs],
        "params": [r["params"] for r in runs],
        "summaries": [(r["result"] or {}).get("summary") for r in runs],
        "summary_differences_from_first": {
            k: [_diff(((r["result"] or {}).get("summary") or {}).get(k),
                      ((base["result"] or {}).get("summary") or {}).get(k)) for r in runs]
            for k in summary_keys
        },
        "areas": areas,
    }


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _diff(value: Any, base: Any) -> float | None:
    return round(value - base, 6) if _number(value) and _number(base) else None
