"""Geofence checks for many wards at once, vectorised with shapely 2 (array predicates + STRtree).

One ``Geofence`` holds every ward's safe zones (each position tested against its own ward's zones
with ``intersects_xy``), the active hazard areas (an STRtree) and per-ward state in numpy arrays
indexed by ward id (was the ward inside, where did it stop and since when, what was
already alerted). ``check`` takes a batch of positions and returns the findings:

- ``left_zone``: outside all its safe zones while a zone's schedule expects it inside;
- ``dwell``: stopped (within ``dwell_radius_m``) for ``dwell_s`` or more outside every safe zone;
- ``hazard``: inside the area of an active warning (once per ward and warning).

Each finding fires once per episode: it re-arms when the ward is back inside / moves on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

import numpy as np
import shapely
from shapely import STRtree
from shapely.geometry.base import BaseGeometry

from haechi.core.clock import KST

METRES_PER_DEGREE_LAT = 110_574.0  # WGS84 near 37° N; plenty for tens of metres
METRES_PER_DEGREE_LON_EQUATOR = 111_320.0


@dataclass(frozen=True, slots=True)
class Window:
    """When a ward is expected inside a zone: weekdays (0 = Monday) and local (KST) hours."""

    days: frozenset[int]
    start: time
    end: time

    def holds(self, moment: datetime) -> bool:
        local = moment.astimezone(KST)
        return local.weekday() in self.days and self.start <= local.time() < self.end


def parse_schedule(items: Iterable[dict[str, Any]] | None) -> tuple[Window, ...]:
    """``[{"days": [0,1,2,3,4], "start": "08:30", "end": "15:00"}]``; ValueError names what is wrong."""
    windows = []
    for i, item in enumerate(items or ()):
        days = item.get("days", list(range(7)))
        if not days or any(not isinstance(d, int) or not 0 <= d <= 6 for d in days):
            raise ValueError(f"schedule[{i}].days must be weekdays 0 (Monday) … 6 (Sunday)")
        try:
            start, end = time.fromisoformat(item["start"]), time.fromisoformat(item["end"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"schedule[{i}] needs start and end as HH:MM ({exc})") from None
        if end <= start:
            raise ValueError(f"schedule[{i}].end must be after its start")
        windows.append(Window(frozenset(days), start, end))
    return tuple(windows)


@dataclass(frozen=True, slots=True)
class Zone:
    id: int
    ward_id: int
    kind: str
    name: str
    geometry: BaseGeometry
    schedule: tuple[Window, ...] = ()


@dataclass(frozen=True, slots=True)
class HazardArea:
    warning_id: int
    hazard: str
    level: str
    geometry: BaseGeometry


@dataclass(slots=True)
class Finding:
    ward_id: int
    kind: str  # left_zone · dwell · hazard
    at: datetime
    lon: float
    lat: float
    detail: dict[str, Any] = field(default_factory=dict)


class _Schedules:
    """Every zone's windows flattened into arrays, so "which zones expect their ward now" is vectorised."""

    def __init__(self, zones: Sequence[Zone]) -> None:
        rows = [(i, sum(1 << d for d in w.days), _minute(w.start), _minute(w.end))
                for i, z in enumerate(zones) for w in z.schedule]
        table = np.array(rows, dtype=np.int64).reshape(-1, 4)
        self.zone, self.days, self.start, self.end = table.T

    def active(self, moment: datetime) -> np.ndarray:
        """Indices of the zones whose schedule holds at ``moment``."""
        local = moment.astimezone(KST)
        m = local.hour * 60 + local.minute
        on = ((self.days >> local.weekday()) & 1).astype(bool) & (self.start <= m) & (m < self.end)
        return self.zone[on]


def _minute(t: time) -> int:
    return t.hour * 60 + t.minute


class Geofence:
    """Zones, hazards and per-ward state; ``check`` evaluates a batch of positions."""

    def __init__(self, zones: Sequence[Zone] = (), hazards: Sequence[HazardArea] = (), *,
                 dwell_radius_m: float, dwell_s: float) -> None:
        self.dwell_radius_m, self.dwell_s = dwell_radius_m, dwell_s
        self._size = 0
        self._grow(1024)
        self.set_zones(zones)
        self.set_hazards(hazards)

    # ── configuration ──

    def set_zones(self, zones: Sequence[Zone]) -> None:
        # Sorted by ward, so each ward's zones are one slice (CSR): a position is tested against its
        # own ward's few zones only, element-wise in one vectorised call.
        self.zones = sorted(zones, key=lambda z: z.ward_id)
        self._zone_geoms = np.array([z.geometry for z in self.zones], dtype=object)
        self._zone_ward = np.array([z.ward_id for z in self.zones], dtype=np.int64)
        self._schedules = _Schedules(self.zones)
        self._expected_minute: tuple[int, np.ndarray] | None = None
        if self.zones:
            self._grow(int(self._zone_ward.max()) + 1)
        self._index_zones()

    def _index_zones(self) -> None:
        self._zone_count = np.bincount(self._zone_ward, minlength=self._size).astype(np.int64)
        self._zone_start = np.concatenate(([0], np.cumsum(self._zone_count)[:-1])).astype(np.int64)

    def set_hazards(self, hazards: Sequence[HazardArea]) -> None:
        self.hazards = list(hazards)
        self._hazard_tree = STRtree([h.geometry for h in self.hazards])
        live = {h.warning_id for h in self.hazards}
        self._hazard_alerted = {k for k in getattr(self, "_hazard_alerted", set()) if k[1] in live}

    def alerted(self, ward_id: int, warning_id: int) -> None:
        """Remember that the ward was alerted of being inside this warning's area (read back from the
        stored alerts when a service takes over): no second alert for it."""
        self._hazard_alerted.add((ward_id, warning_id))

    def forget(self, ward_id: int) -> None:
        """Drop a ward's remembered state (consent withdrawn, ward removed)."""
        if ward_id < self._size:
            self._reset(np.array([ward_id]))
        self._hazard_alerted = {k for k in self._hazard_alerted if k[0] != ward_id}

    # ── evaluation ──

    def check(self, ward_ids: np.ndarray, lon: np.ndarray, lat: np.ndarray, t: np.ndarray) -> list[Finding]:
        """Findings for positions (``t`` in POSIX seconds), evaluated in time order per ward."""
        ward_ids = np.asarray(ward_ids, dtype=np.int64)
        lon, lat, t = (np.asarray(a, dtype=np.float64) for a in (lon, lat, t))
        if len(ward_ids) == 0:
            return []
        self._grow(int(ward_ids.max()) + 1)
        order = np.argsort(t, kind="stable")
        findings: list[Finding] = []
        while len(order):  # a ward reporting twice in one batch: its positions in separate rounds
            _, first = np.unique(ward_ids[order], return_index=True)
            take = order[np.sort(first)]
            findings += self._check_round(ward_ids[take], lon[take], lat[take], t[take])
            order = np.delete(order, np.sort(first))
        return findings

    def _check_round(self, wards, lon, lat, t) -> list[Finding]:
        inside, inside_zone = self._inside_own_zone(wards, lon, lat)
        expected_zone = self._expected_zone(datetime.fromtimestamp(float(t.max()), UTC))[wards]
        findings = self._left(wards, lon, lat, t, inside, expected_zone)
        findings += self._dwell(wards, lon, lat, t, inside)
        findings += self._in_hazard(wards, lon, lat, t)
        self.inside[wards] = inside
        self.last_zone[wards] = np.where(inside, inside_zone, self.last_zone[wards])
        return findings

    def _inside_own_zone(self, wards: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per position: inside (or on the edge of) one of its ward's zones, and which zone."""
        inside = np.zeros(len(wards), dtype=bool)
        zone_of = np.full(len(wards), -1, dtype=np.int64)
        counts = self._zone_count[wards]
        if counts.sum() == 0:
            return inside, zone_of
        pair_pos = np.repeat(np.arange(len(wards)), counts)
        first_of_pair = np.repeat(np.cumsum(counts) - counts, counts)
        pair_zone = np.repeat(self._zone_start[wards], counts) + np.arange(len(pair_pos)) - first_of_pair
        hit = shapely.intersects_xy(self._zone_geoms[pair_zone], lon[pair_pos], lat[pair_pos])
        inside[pair_pos[hit]] = True
        zone_of[pair_pos[hit][::-1]] = pair_zone[hit][::-1]  # the first zone hit, when several
        return inside, zone_of

    def _expected_zone(self, moment: datetime) -> np.ndarray:
        """Per ward id: the index of a zone whose schedule expects it now, or -1 (cached per minute)."""
        minute = int(moment.timestamp() // 60)
        if self._expected_minute is None or self._expected_minute[0] != minute:
            expected = np.full(self._size, -1, dtype=np.int64)
            active = self._schedules.active(moment)
            expected[self._zone_ward[active]] = active
            self._expected_minute = (minute, expected)
        return self._expected_minute[1]

    def _left(self, wards, lon, lat, t, inside, expected_zone) -> list[Finding]:
        expected = expected_zone >= 0
        fire = ~inside & expected & ~self.left_alerted[wards]
        self.left_alerted[wards] = ~inside & expected & (self.left_alerted[wards] | fire)
        found = []
        for i in np.flatnonzero(fire):
            zone = self.zones[expected_zone[i]]
            found.append(self._finding(wards[i], "left_zone", t[i], lon[i], lat[i], {
                "zone_id": zone.id, "zone": zone.name, "zone_kind": zone.kind,
                "was_inside": bool(self.inside[wards[i]])}))
        return found

    def _dwell(self, wards, lon, lat, t, inside) -> list[Finding]:
        a_lon, a_lat, since = self.anchor_lon[wards], self.anchor_lat[wards], self.anchor_t[wards]
        dx = (lon - a_lon) * METRES_PER_DEGREE_LON_EQUATOR * np.cos(np.radians(lat))
        dy = (lat - a_lat) * METRES_PER_DEGREE_LAT
        moved = np.isnan(since) | (np.hypot(dx, dy) > self.dwell_radius_m)
        self.anchor_lon[wards] = np.where(moved, lon, a_lon)
        self.anchor_lat[wards] = np.where(moved, lat, a_lat)
        self.anchor_t[wards] = np.where(moved, t, since)
        self.dwell_alerted[wards] &= ~moved
        fire = ~moved & ~inside & (t - since >= self.dwell_s) & ~self.dwell_alerted[wards]
        self.dwell_alerted[wards] |= fire
        return [self._finding(wards[i], "dwell", t[i], lon[i], lat[i], {
            "minutes": round(float(t[i] - since[i]) / 60), "radius_m": self.dwell_radius_m})
            for i in np.flatnonzero(fire)]

    def _in_hazard(self, wards, lon, lat, t) -> list[Finding]:
        if not self.hazards:
            return []
        found = []
        point_i, hazard_i = self._hazard_tree.query(shapely.points(lon, lat), predicate="intersects")
        for p, h in zip(point_i.tolist(), hazard_i.tolist(), strict=True):
            area = self.hazards[h]
            key = (int(wards[p]), area.warning_id)
            if key in self._hazard_alerted:
                continue
            self._hazard_alerted.add(key)
            found.append(self._finding(wards[p], "hazard", t[p], lon[p], lat[p], {
                "warning_id": area.warning_id, "hazard": area.hazard, "level": area.level}))
        return found

    @staticmethod
    def _finding(ward, kind, t, lon, lat, detail) -> Finding:
        return Finding(int(ward), kind, datetime.fromtimestamp(float(t), UTC), float(lon), float(lat), detail)

    # ── per-ward state arrays ──

    def _grow(self, size: int) -> None:
        if size <= self._size:
            return
        size = max(size, 2 * self._size)
        old = self._size

        def extend(name: str, fill, dtype) -> None:
            new = np.full(size, fill, dtype=dtype)
            if old:
                new[:old] = getattr(self, name)
            setattr(self, name, new)

        for name in ("inside", "left_alerted", "dwell_alerted"):
            extend(name, False, bool)
        for name in ("anchor_lon", "anchor_lat", "anchor_t"):
            extend(name, np.nan, np.float64)
        extend("last_zone", -1, np.int64)
        self._size = size
        self._expected_minute = None
        if hasattr(self, "_zone_ward"):
            self._index_zones()

    def _reset(self, wards: np.ndarray) -> None:
        for name in ("inside", "left_alerted", "dwell_alerted"):
            getattr(self, name)[wards] = False
        for name in ("anchor_lon", "anchor_lat", "anchor_t"):
            getattr(self, name)[wards] = np.nan
        self.last_zone[wards] = -1
