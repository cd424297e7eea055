"""The bulk observation path: QC over columns with numpy, then driver-level inserts (COPY on
PostgreSQL, INSERTs of a thousand rows each on SQLite).

Per-reading Python (``Pipeline.store``) spends most of its time outside the database; imports of
years of data need the database to be the only limit. This path applies the same catalogue limits
and the same idempotency key
(datastream, phenomenon time) to whole columns at once:

- range and clock checks are exact (``bad``), with the pipeline's reason texts;
- spike and stuck checks compare each reading with the previous one of its stream *in the batch*,
  or the one before when that was bad or a spike (the pipeline uses the last plausible reading,
  however far back; the first reading of a stream in a batch is not spike-checked);
- duplicates (already stored, or twice in the file) are counted and skipped, never re-written.

Times are whole seconds since the epoch (UTC) as int64, the unit the public formats use.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Connection, select

from haechi.ingest import qc
from haechi.model.catalogue import QcLimits, catalogue
from haechi.store import sensing
from haechi.store.schema import datastreams, observations, observed_properties

GOOD, SUSPECT, BAD = 0, 1, 2
FLAG_NAMES = np.array([qc.GOOD, qc.SUSPECT, qc.BAD])
_KEY_SHIFT = np.int64(1) << np.int64(32)  # key = stream · 2³² + epoch seconds (valid to year 2106)


@dataclass
class Columns:
    """Readings as columns: the source row each came from, its datastream, time and value."""

    row: np.ndarray  # int64, 0-based data row within the run
    stream: np.ndarray  # int64
    time: np.ndarray  # int64 epoch seconds, UTC
    value: np.ndarray  # float64, in the datastream's unit

    def __len__(self) -> int:
        return len(self.row)

    def take(self, index) -> Columns:
        return Columns(self.row[index], self.stream[index], self.time[index], self.value[index])

    @staticmethod
    def concat(parts: list[Columns]) -> Columns:
        if not parts:
            empty = np.array([], dtype=np.int64)
            return Columns(empty, empty, empty, np.array([], dtype=np.float64))
        return Columns(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("row", "stream", "time", "value")))


@dataclass
class Stored:
    """What became of each reading of a batch: new (written) or a duplicate; QC flag counts."""

    new: np.ndarray  # bool per reading
    flags: dict[str, int]


def limits_of_streams(conn: Connection, ids) -> dict[int, QcLimits | None]:
    """The catalogue limits of each datastream's property (None outside the catalogue)."""
    known = catalogue()
    query = (select(datastreams.c.id, observed_properties.c.code)
             .join(observed_properties, observed_properties.c.id == datastreams.c.observed_property_id)
             .where(datastreams.c.id.in_([int(i) for i in ids])))
    return {i: (known[code].limits if code in known else None) for i, code in conn.execute(query)}


def store(conn: Connection, obs: Columns, limits: dict[int, QcLimits | None], now: datetime,
          clock: qc.ClockLimits = qc.DEFAULT_CLOCK) -> Stored:
    """Write the readings not stored yet, QC-flagged, and move the live state; in ``conn``'s transaction."""
    order = np.lexsort((obs.time, obs.stream))  # by stream, then time: what spike/stuck need
    obs = obs.take(order)
    key = obs.stream * _KEY_SHIFT + obs.time
    first = np.ones(len(obs), dtype=bool)
    first[1:] = key[1:] != key[:-1]  # a second copy in the same batch is a duplicate
    fresh = first & ~_stored_already(conn, obs, key)
    flags, reasons = assess(obs.take(fresh), limits, now, clock)
    _write(conn, obs.take(fresh), flags, reasons, now)
    _save_state(conn, obs.take(fresh), flags, now)
    new = np.empty(len(obs), dtype=bool)
    new[order] = fresh
    counts = np.bincount(flags, minlength=3)
    return Stored(new, {name: int(n) for name, n in zip(FLAG_NAMES, counts, strict=True)})


def _stored_already(conn: Connection, obs: Columns, key: np.ndarray) -> np.ndarray:
    if not len(obs):
        return np.zeros(0, dtype=bool)
    o = observations.c
    start = datetime.fromtimestamp(int(obs.time.min()), UTC)
    end = datetime.fromtimestamp(int(obs.time.max()), UTC)
    found = []
    streams = np.unique(obs.stream).tolist()
    for i in range(0, len(streams), 500):
        query = select(o.datastream_id, o.phenomenon_time).where(
            o.datastream_id.in_(streams[i:i + 500]), o.phenomenon_time.between(start, end))
        found.extend(s * (1 << 32) + int(t.timestamp()) for s, t in conn.execute(query))
    if not found:
        return np.zeros(len(obs), dtype=bool)
    return np.isin(key, np.array(found, dtype=np.int64))


def assess(obs: Columns, limits: dict[int, QcLimits | None], now: datetime,
           clock: qc.ClockLimits = qc.DEFAULT_CLOCK) -> tuple[np.ndarray, dict[int, list[str]]]:
    """(flag per reading, reasons by position) for readings sorted by stream then time."""
    n = len(obs)
    flags = np.zeros(n, dtype=np.int64)
    reasons: dict[int, list[str]] = {}
    if not n:
        return flags, reasons
    lo, hi, rate, stuck, tol = _limit_columns(obs.stream, limits)
    now_s = int(now.timestamp())
    future = obs.time > now_s + clock.max_future.total_seconds()
    old = obs.time < now_s - clock.max_age.total_seconds()
    out_of_range = ~((obs.value >= lo) & (obs.value <= hi))
    bad = future | old | out_of_range
    same = np.zeros(n, dtype=bool)
    same[1:] = obs.stream[1:] == obs.stream[:-1]
    spike, step, minutes = _spikes(obs, same, bad, rate)
    flat = same & (step <= tol)
    run = _run_length(flat)
    stuck_now = (stuck > 0) & flat & (run >= stuck) & ~bad
    flags[spike | stuck_now] = SUSPECT
    flags[bad] = BAD
    for i in np.flatnonzero(flags).tolist():
        reasons[i] = _reasons(i, obs, lo, hi, rate, minutes, step, run, out_of_range, future, old, spike, stuck_now)
    return flags, reasons


def _spikes(obs: Columns, same: np.ndarray, bad: np.ndarray, rate: np.ndarray):
    """Spikes against the previous reading of the stream, or the one before it when the previous was
    bad or itself a spike (the pipeline judges against the last plausible reading; one step back
    covers isolated spikes and bad values, the common case)."""
    n = len(obs)
    step, minutes = np.zeros(n), np.ones(n)
    step[1:] = np.abs(np.diff(obs.value))
    minutes[1:] = np.maximum(np.diff(obs.time) / 60, 1.0)
    candidate = same & (step / minutes > rate) & ~bad
    previous_bad = np.zeros(n, dtype=bool)
    previous_bad[1:] = bad[:-1] | candidate[:-1]
    back = np.zeros(n, dtype=bool)  # the reading two back is of the same stream and plausible
    back[2:] = same[2:] & same[1:-1] & ~bad[:-2]
    step2, minutes2 = np.zeros(n), np.ones(n)
    step2[2:] = np.abs(obs.value[2:] - obs.value[:-2])
    minutes2[2:] = np.maximum((obs.time[2:] - obs.time[:-2]) / 60, 1.0)
    against_two = previous_bad & back & ~bad
    spike = np.where(against_two, step2 / minutes2 > rate, candidate & ~previous_bad)
    step = np.where(against_two, step2, step)
    minutes = np.where(against_two, minutes2, minutes)
    return spike, step, minutes


def _limit_columns(stream: np.ndarray, limits: dict[int, QcLimits | None]):
    ids, inverse = np.unique(stream, return_inverse=True)
    table = np.array([_limit_row(limits.get(int(i))) for i in ids], dtype=np.float64).reshape(-1, 5)
    return tuple(table[inverse, k] for k in range(5))


def _limit_row(limits: QcLimits | None) -> tuple[float, ...]:
    if limits is None:  # outside the catalogue: clock check only, as in the pipeline
        return (-np.inf, np.inf, np.inf, 0, 0.0)
    return (limits.min, limits.max, limits.max_rate_per_min, limits.stuck_count, limits.stuck_tolerance)


def _run_length(flat: np.ndarray) -> np.ndarray:
    """Readings in the current run of equal values, counting the run's first (1 where not flat)."""
    idx = np.arange(len(flat))
    starts = np.where(~flat, idx, 0)
    np.maximum.accumulate(starts, out=starts)
    return idx - starts + 1


def _reasons(i, obs, lo, hi, rate, minutes, step, run, out_of_range, future, old, spike, stuck) -> list[str]:
    moment = datetime.fromtimestamp(int(obs.time[i]), UTC).isoformat()
    found = []
    if out_of_range[i]:
        found.append(f"out of range: {obs.value[i]:g} not in [{lo[i]:g}, {hi[i]:g}]")
    if future[i]:
        found.append(f"timestamp {moment} is in the future")
    if old[i]:
        found.append(f"timestamp {moment} is implausibly old")
    if spike[i]:
        found.append(f"spike: {step[i] / minutes[i]:g} per minute exceeds {rate[i]:g}")
    if stuck[i]:
        found.append(f"stuck: the same value {obs.value[i]:g} {int(run[i])} times in a row")
    return found


# ── writing ──────────────────────────────────────────────────────────────────────────────


def _write(conn: Connection, obs: Columns, flags: np.ndarray, reasons: dict[int, list[str]], now: datetime) -> None:
    if not len(obs):
        return
    cursor = conn.connection.driver_connection.cursor()
    try:
        if conn.dialect.name == "sqlite":
            _write_sqlite(cursor, obs, flags, reasons, now)
        else:
            quality = FLAG_NAMES[flags].tolist()
            reason_text = [None] * len(obs)
            for i, found in reasons.items():
                reason_text[i] = orjson.dumps(found).decode()
            _write_postgres(cursor, obs, quality, reason_text, now)
    finally:
        cursor.close()


#: Rows per INSERT statement on SQLite. One statement of many rows binds its parameters in one call
#: and runs in one step with the GIL released; 1,000 rows × 5 parameters stays well under SQLite's
#: 32,766-parameter limit.
_SQLITE_ROWS_PER_STATEMENT = 1000
#: The text form SQLAlchemy's SQLite DateTime reads back (store/sensing.py: _sqlite_time), made by
#: SQLite from epoch seconds: no Python string per reading.
_SQLITE_TIME = "strftime('%Y-%m-%d %H:%M:%S.000000', ?, 'unixepoch')"


def _write_sqlite(cursor, obs: Columns, flags: np.ndarray, reasons: dict[int, list[str]], now: datetime) -> None:
    """Good readings (nearly all) in statements of three parameters a row; flagged ones with their
    quality and reasons."""
    received = now.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    good = flags == GOOD
    _insert_sqlite(cursor, f"(?, {_SQLITE_TIME}, ?, 'good', NULL, '{received}')",
                   [obs.stream[good], obs.time[good], obs.value[good]])
    flagged = np.flatnonzero(~good)
    _insert_sqlite(cursor, f"(?, {_SQLITE_TIME}, ?, ?, ?, '{received}')",
                   [obs.stream[flagged], obs.time[flagged], obs.value[flagged], FLAG_NAMES[flags[flagged]],
                    np.array([orjson.dumps(reasons.get(i, [])).decode() for i in flagged.tolist()], dtype=object)])


def _insert_sqlite(cursor, row: str, columns: list[np.ndarray]) -> None:
    n, step = len(columns[0]), _SQLITE_ROWS_PER_STATEMENT

    def statement(rows: int) -> str:
        return ("INSERT INTO observations (datastream_id, phenomenon_time, result, result_quality, qc_reasons, "
                f"received_at) VALUES {', '.join([row] * rows)} "
                "ON CONFLICT (datastream_id, phenomenon_time) DO NOTHING")

    def parameters(start: int, stop: int) -> list:  # row by row, one statement's worth at a time
        return list(itertools.chain.from_iterable(zip(*(c[start:stop].tolist() for c in columns))))
    whole = n // step
    if whole:
        cursor.executemany(statement(step), (parameters(i * step, (i + 1) * step) for i in range(whole)))
    if n > whole * step:
        cursor.execute(statement(n - whole * step), parameters(whole * step, n))


def _write_postgres(cursor, obs: Columns, quality: list, reasons: list, now: datetime) -> None:
    """COPY straight into observations (the readings were checked new above); if another writer got
    there first (a unique violation), fall back to COPY into a temporary table and INSERT … ON CONFLICT."""
    table = pa.table({
        "datastream_id": pa.array(obs.stream, pa.int64()),
        "phenomenon_time": pa.array(obs.time, pa.int64()).cast(pa.timestamp("s", tz="UTC")),
        "result": pa.array(obs.value, pa.float64()),
        "result_quality": pa.array(quality, pa.string()),
        "qc_reasons": pa.array(reasons, pa.string()),
        "received_at": pa.array([now] * len(obs), pa.timestamp("us", tz="UTC")),
    })
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    data, columns = buffer.getvalue(), ", ".join(table.column_names)
    cursor.execute("SAVEPOINT import_copy")
    try:
        with cursor.copy(f"COPY observations ({columns}) FROM STDIN (FORMAT csv)") as copy:
            copy.write(data)
        cursor.execute("RELEASE SAVEPOINT import_copy")
        return
    except psycopg.errors.UniqueViolation:
        cursor.execute("ROLLBACK TO SAVEPOINT import_copy")
    cursor.execute("CREATE TEMP TABLE import_batch (datastream_id bigint, phenomenon_time timestamptz, "
                   "result double precision, result_quality text, qc_reasons text, received_at timestamptz) "
                   "ON COMMIT DROP")
    with cursor.copy("COPY import_batch FROM STDIN (FORMAT csv)") as copy:
        copy.write(data)
    cursor.execute(
        f"INSERT INTO observations ({columns}) SELECT datastream_id, phenomenon_time, result, result_quality, "
        "qc_reasons::json, received_at FROM import_batch ON CONFLICT (datastream_id, phenomenon_time) DO NOTHING")
    cursor.execute("DROP TABLE import_batch")


def _save_state(conn: Connection, obs: Columns, flags: np.ndarray, now: datetime) -> None:
    """Each stream's newest reading of the batch becomes its live state (unless a newer one is known)."""
    if not len(obs):
        return
    last = np.ones(len(obs), dtype=bool)
    last[:-1] = obs.stream[:-1] != obs.stream[1:]  # sorted by stream then time: the last of each run
    rows = []
    for i in np.flatnonzero(last).tolist():
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=int(obs.time[i]))
        value, flag = float(obs.value[i]), str(FLAG_NAMES[flags[i]])
        rows.append((int(obs.stream[i]), moment, value, flag, moment, value, 1, now))
    sensing.save_stream_states(conn, rows)
