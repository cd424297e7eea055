"""Streaming imports of station observations in tables (CSV, or JSON turned into columns).

A file is read in blocks of rows (pyarrow), every cell as text; each block is validated over
columns (times, station codes, numbers), turned into one reading per (row, measured column), and
stored through the bulk path (``bulk.py``). Rejected rows go to the dead-letter store with their
reason in the same transaction as the block's readings: nothing accepted is lost, nothing
rejected is silent. A thread reads and parses the next blocks while one is stored, so a long
import costs about what its inserts cost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from queue import Full, Queue
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import Connection, Engine, select

from haechi.core.clock import utcnow
from haechi.core.errors import InvalidInput
from haechi.model.catalogue import lookup
from haechi.model.units import converter
from haechi.store.schema import datastreams

from . import bulk, textfile
from .runs import Outcome, Progress, keep_rejected
from .streams import StreamCache

NUMBER = r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$"
KST_OFFSET_S = 9 * 3600
BLOCK_BYTES = 16 << 20  # ~500,000 rows a transaction: fewer commits, hot index pages rewritten less often
#: Cells that mean "no value" in the public files (blank, or a dash in AirKorea's and KMA's tables).
MISSING = ["", "-", "NA", "null"]
T = TypeVar("T")


@dataclass(frozen=True)
class Measure:
    """One measured column: which property it holds and in what unit the file gives it."""

    column: str
    property: str
    unit: str
    station: str | None = None  # wide tables name the station in the column (Han River CSV)
    above_datum: bool = False  # level given as elevation (El.): subtract the gauge zero when known


@dataclass(frozen=True)
class Layout:
    """How a table of station observations reads: its time, station and measured columns."""

    kind: str
    place_kind: str | None  # None: the table names datastream ids directly (Haechi's own CSV)
    time_column: str
    parse_time: Callable[[pa.Array], pa.Array]  # text → int64 epoch seconds UTC, null when unreadable
    measures: tuple[Measure, ...]
    station_column: str | None = None
    name_column: str | None = None
    source: str = ""
    #: The station as the file spells it → its place ref, where a publisher spells it otherwise.
    station_refs: Mapping[str, str] = field(default_factory=dict)


# ── time formats of the public files ─────────────────────────────────────────────────────


def kst_times(fmt: str) -> Callable[[pa.Array], pa.Array]:
    """Local times in Korea Standard Time (UTC+9, no daylight saving since 1988) in ``fmt``."""
    def parse(text: pa.Array) -> pa.Array:
        moments = pc.strptime(text, format=fmt, unit="s", error_is_null=True)
        return pc.subtract(moments.cast(pa.int64()), KST_OFFSET_S)
    return parse


def airkorea_times(text: pa.Array) -> pa.Array:
    """YYYYMMDDHH in KST where the hour runs 01–24: hour 24 is midnight ending that day."""
    ok = pc.match_substring_regex(text, r"^\d{10}$")
    text = pc.if_else(ok, text, pa.scalar(None, pa.string()))
    day = pc.strptime(pc.utf8_slice_codeunits(text, 0, 8), format="%Y%m%d", unit="s", error_is_null=True)
    hour = pc.utf8_slice_codeunits(text, 8, 10).cast(pa.int64())
    hour = pc.if_else(pc.and_(pc.greater_equal(hour, 1), pc.less_equal(hour, 24)), hour,
                      pa.scalar(None, pa.int64()))
    return pc.subtract(pc.add(day.cast(pa.int64()), pc.multiply(hour, 3600)), KST_OFFSET_S)


def iso_times(text: pa.Array) -> pa.Array:
    """ISO 8601 with a UTC offset (``Z`` or ±HH:MM), as Haechi's own observation CSV requires."""
    formats = ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%dT%H:%M%z")
    parsed = [pc.strptime(text, format=f, unit="s", error_is_null=True) for f in formats]
    return pc.coalesce(*parsed).cast(pa.int64())


# ── reading CSV in blocks ────────────────────────────────────────────────────────────────


def csv_header(path: Path, encoding: str, skip: int) -> list[str]:
    with open(path, "rb") as f:
        f.seek(skip)
        line = f.readline(1 << 16).decode(encoding).rstrip("\r\n")
    return [c.strip().strip('"') for c in line.split(",")]


def csv_blocks(path: Path, progress: Progress) -> tuple[str, list[str], Iterator[pa.RecordBatch]]:
    """(encoding, header, blocks of rows with every cell as text) of a CSV file."""
    encoding, skip = textfile.detect(path)
    header = csv_header(path, encoding, skip)
    if len(set(header)) != len(header):
        raise InvalidInput(f"{path.name}: repeated column names in the header", field="header")

    def blocks() -> Iterator[pa.RecordBatch]:
        size = path.stat().st_size
        with open(path, "rb") as f:
            f.seek(skip)
            reader = pacsv.open_csv(
                f, read_options=pacsv.ReadOptions(encoding=encoding, block_size=BLOCK_BYTES),
                convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(header, pa.string()),
                                                     strings_can_be_null=True, null_values=MISSING))
            try:
                for batch in reader:
                    progress(f.tell(), size)
                    yield batch
            except pa.ArrowInvalid as exc:
                raise InvalidInput(f"{path.name}: unreadable CSV: {exc}", field="file") from None
    return encoding, header, blocks()


def check_columns(layout: Layout, header: list[str], name: str) -> Layout:
    """The layout narrowed to the measured columns present; refuses a table missing the essentials."""
    needed = [c for c in (layout.time_column, layout.station_column) if c]
    absent = [c for c in needed if c not in header]
    measures = tuple(m for m in layout.measures if m.column in header)
    if absent or not measures:
        expected = ", ".join(needed + [m.column for m in layout.measures])
        missing = ", ".join(absent) or "any measured column"
        raise InvalidInput(f"{name}: not a {layout.kind} table: missing {missing}; expected columns {expected}",
                           field="header")
    return Layout(**{**layout.__dict__, "measures": measures})


# ── one block ────────────────────────────────────────────────────────────────────────────


@dataclass
class Block:
    """A block of rows read and checked cell by cell, before any station or datastream is looked up."""

    rows: int
    cells: dict[str, pa.Array]  # every cell as trimmed text
    times: pa.Array  # int64 epoch seconds, null when unreadable
    values: dict[str, np.ndarray]  # per measured column, float64 (NaN where not a number)
    present: dict[str, np.ndarray]  # per measured column, whether the cell was filled
    problems: list[tuple[np.ndarray, str, Callable[[int], str]]]  # (rows, column, reason of row i)


def read_block(layout: Layout, batch: pa.RecordBatch | pa.Table) -> Block:
    """Parse one block's times and numbers over whole columns (no database: it can run ahead)."""
    cells = {name: pc.utf8_trim_whitespace(_array(batch.column(name))) for name in batch.column_names}
    times = layout.parse_time(cells[layout.time_column])
    problems = [(~_valid(times), layout.time_column,
                 lambda i: f"unreadable time {_cell(cells, layout.time_column, i)!r}")]
    values, present = {}, {}
    for m in layout.measures:
        text = cells[m.column]
        is_number = _filled(pc.match_substring_regex(text, NUMBER))
        present[m.column] = _valid(text)
        problems.append((present[m.column] & ~is_number, m.column,
                         lambda i, c=m.column: f"not a number: {_cell(cells, c, i)!r}"))
        values[m.column] = pc.if_else(is_number, text, pa.scalar(None, pa.string())).cast(pa.float64()) \
            .to_numpy(zero_copy_only=False)
    empty = ~np.logical_or.reduce([present[m.column] for m in layout.measures])
    names = ", ".join(m.column for m in layout.measures)
    problems.append((empty, layout.measures[0].column, lambda i: f"no value in any measured column ({names})"))
    return Block(batch.num_rows, cells, times, values, present, problems)


class BlockImporter:
    """Validates and stores blocks of one table, keeping the run's counts in ``outcome``."""

    def __init__(self, engine: Engine, layout: Layout, outcome: Outcome, now: Callable[[], datetime] = utcnow):
        self.engine, self.layout, self.outcome, self.now = engine, layout, outcome, now
        self.cache = StreamCache(layout.source or f"import:{layout.kind}")
        self.limits: dict = {}
        self.known_streams: dict[int, str] = {}  # id → unit, for tables naming datastreams directly

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        self.store(read_block(self.layout, batch))

    def store(self, block: Block) -> None:
        """Store one read block: its readings and its refused rows in one transaction."""
        problems, n = list(block.problems), block.rows
        first_row, started = self.outcome.rows_read, time.perf_counter()
        with self.engine.begin() as conn:
            stations, station_ok, station_problem = self._stations(conn, block.cells, n)
            problems.append((~station_ok, *station_problem))
            bad_row = np.zeros(n, dtype=bool)
            for mask, _, _ in problems:
                bad_row |= mask
            readings = self._readings(conn, stations, block.times, block.values, block.present, ~bad_row)
            self.limits.update(bulk.limits_of_streams(conn,
                                                      set(np.unique(readings.stream).tolist()) - self.limits.keys()))
            stored = bulk.store(conn, readings, self.limits, self.now())
            self._reject(conn, block.cells, problems, bad_row, first_row)
        self.outcome.store_seconds += time.perf_counter() - started
        self._count(n, bad_row, readings, stored)

    def _stations(self, conn: Connection, cells, n: int):
        """Per row, the index of its station in ``stations`` (a lookup of stream ids per property)."""
        layout = self.layout
        if layout.station_column is None and layout.place_kind is not None:  # wide table: one station per column
            return _Stations(np.zeros(n, dtype=np.int64), [""]), np.ones(n, dtype=bool), ("", lambda i: "")
        column = layout.station_column
        encoded = cells[column].dictionary_encode()
        index = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        refs = encoded.dictionary.to_pylist()
        if layout.place_kind is None:
            return self._stream_ids(conn, cells, index, refs)
        refs = [layout.station_refs.get(ref, ref) for ref in refs]
        names = cells.get(layout.name_column, None)
        station_names = {}
        for ref_index, ref in enumerate(refs):
            row = int(np.argmax(index == ref_index))
            station_names[ref] = (names[row].as_py() if names is not None else None) or ref
        return _Stations(index, refs, station_names), index >= 0, (column, lambda i: "no station code")

    def _stream_ids(self, conn: Connection, cells, index, refs):
        """Haechi's own table names datastream ids: rows of unknown ids are refused."""
        ids = [int(r) if r and r.isdigit() else None for r in refs]
        wanted = {i for i in ids if i is not None} - self.known_streams.keys()
        if wanted:
            rows = conn.execute(select(datastreams.c.id, datastreams.c.unit_symbol).where(datastreams.c.id.in_(wanted)))
            self.known_streams.update(dict(rows.all()))
        lut = np.array([i if i in self.known_streams else -1 for i in ids] + [-1], dtype=np.int64)
        stream = lut[index]
        column = self.layout.station_column
        return _Stations(index, refs, stream_ids=stream), stream >= 0, (
            column, lambda i: f"unknown datastream {_cell(cells, column, i)!r}")

    def _readings(self, conn, stations: _Stations, times, values, present, row_ok) -> bulk.Columns:
        layout = self.layout
        epoch = times.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        rows = np.arange(len(row_ok), dtype=np.int64) + self.outcome.rows_read
        parts = []
        for m in layout.measures:
            take = row_ok & present[m.column]
            if stations.stream_ids is not None:  # Haechi's own table: convert units per datastream
                stream = stations.stream_ids[take]
                value = values[m.column][take]
            else:
                refs = [m.station] if m.station else stations.refs
                names = {r: stations.names.get(r, r) for r in refs}
                ids = self.cache.streams(conn, layout.place_kind, names, [m.property])
                lut = np.array([ids[(r, m.property)] for r in refs] + [-1], dtype=np.int64)
                stream = lut[stations.index[take]]
                value = converter(m.unit, _unit_of(m.property))(values[m.column][take])
                if m.above_datum:
                    datum = self.cache.datums.get(m.station)
                    value = value - datum if datum is not None else value
            parts.append(bulk.Columns(rows[take], stream, epoch[take], np.asarray(value, dtype=np.float64)))
        return bulk.Columns.concat(parts)

    def _reject(self, conn, cells, problems, bad_row, first_row: int) -> None:
        letters = []
        for i in np.flatnonzero(bad_row).tolist():
            field, reason = next((f, why(i)) for mask, f, why in problems if mask[i])
            row_number = first_row + i + 1
            self.outcome.reject(row_number, field, reason)
            payload = {"row": row_number, **{name: col[i].as_py() for name, col in cells.items()}}
            letters.append((f"row {row_number}, {field}: {reason}", payload))
        keep_rejected(conn, self.layout.kind, letters)

    def _count(self, n: int, bad_row: np.ndarray, readings: bulk.Columns, stored: bulk.Stored) -> None:
        o = self.outcome
        local = readings.row - o.rows_read
        has_obs = np.bincount(local, minlength=n) > 0
        has_new = np.bincount(local[stored.new], minlength=n) > 0
        o.rows_read += n
        o.rows_rejected += int(bad_row.sum())
        o.rows_duplicate += int((~bad_row & has_obs & ~has_new).sum())
        o.rows_accepted += int((~bad_row & (has_new | ~has_obs)).sum())
        o.observations_stored += int(stored.new.sum())
        o.observations_duplicate += int((~stored.new).sum())
        for flag, count in stored.flags.items():
            o.quality[flag] += count


@dataclass
class _Stations:
    index: np.ndarray  # per row: position in refs, -1 when missing
    refs: list[str]
    names: dict[str, str] | None = None
    stream_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.names = self.names or {}


def _array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def cell_text(value) -> str | None:
    """JSON values as the CSV path sees cells: text, blank or a dash as missing."""
    if value is None:
        return None
    text = str(value).strip()
    return None if text in MISSING else text


def _valid(array: pa.Array) -> np.ndarray:
    return array.is_valid().to_numpy(zero_copy_only=False)


def _filled(mask: pa.Array) -> np.ndarray:
    return mask.fill_null(False).to_numpy(zero_copy_only=False)


def _cell(cells, column: str, i: int):
    return cells[column][i].as_py()


def _unit_of(code: str) -> str:
    return lookup(code).unit_symbol


def import_csv(engine: Engine, path: Path, layout: Layout, outcome: Outcome, progress: Progress) -> Outcome:
    encoding, header, blocks = csv_blocks(path, progress)
    layout = check_columns(layout, header, path.name)
    if layout.place_kind is None and "unit" in header:  # values must already be in each datastream's unit
        raise InvalidInput(f"{path.name}: a unit column is not supported by file imports; convert to each "
                           "datastream's unit or send the rows to POST /api/v1/observations", field="unit")
    used = {layout.time_column, layout.station_column, layout.name_column, *(m.column for m in layout.measures)}
    outcome.encoding, outcome.ignored_columns = encoding, [c for c in header if c not in used]
    importer = BlockImporter(engine, layout, outcome)
    # The next blocks are parsed in a thread while this one is stored: pyarrow and SQLite both work
    # without the GIL, so reading and writing overlap on two cores.
    for block in read_ahead(read_block(layout, batch) for batch in blocks):
        importer.store(block)
    return outcome


def read_ahead(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """``items``, produced in a background thread up to ``depth`` ahead of the consumer.

    An exception in the producer is raised in the consumer at the same point; a consumer that stops
    early (an error while storing) stops the producer too."""
    queue: Queue = Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def produce() -> None:
        try:
            for item in items:
                if not _put(queue, stop, (item, None)):
                    return
            _put(queue, stop, (end, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            _put(queue, stop, (end, exc))

    worker = threading.Thread(target=produce, name="import-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item, error = queue.get()
            if error is not None:
                raise error
            if item is end:
                return
            yield item
    finally:
        stop.set()
        worker.join()



def _put(queue: Queue, stop: threading.Event, entry) -> bool:
    """Put ``entry`` unless the consumer has stopped (it would never take it): whether it was put."""
    while not stop.is_set():
        try:
            queue.put(entry, timeout=0.1)
            return True
        except Full:
            continue
    return False
