"""A small seeded city for the API tests: Seoul with two districts, places, tokens per role.

Imported by the ``test_api*`` modules (it holds no tests itself). The data are seeded through the
store functions, so the API is tested against what the loaders would have written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from haechi.api import create_app
from haechi.core.settings import Settings
from haechi.store import access, areas, places

#: Small, so the size-limit tests need only a few kilobytes.
MAX_BODY_BYTES = 4_096


def square(w: float, s: float, e: float, n: float, *, clockwise: bool = False) -> dict[str, Any]:
    """A GeoJSON polygon of the box; ``clockwise`` winds it against RFC 7946's advice."""
    ring = [[w, s], [e, s], [e, n], [w, n], [w, s]]
    return {"type": "Polygon", "coordinates": [ring[::-1] if clockwise else ring]}


def area(code: str, level: str, parent: str | None, name_ko: str, name_en: str, box, **kw) -> dict:
    w, s, e, n = box
    return {
        "code": code,
        "level": level,
        "parent_code": parent,
        "name_ko": name_ko,
        "name_en": name_en,
        "geometry": square(w, s, e, n, **kw),
        "min_lon": w,
        "min_lat": s,
        "max_lon": e,
        "max_lat": n,
        "area_km2": round((e - w) * 88.4 * (n - s) * 111.0, 1),
        "source": "test fixture",
    }


# Boxes roughly where the districts are; Gangnam is wound clockwise on purpose.
JONGNO_BOX = (126.95, 37.57, 127.02, 37.63)
GANGNAM_BOX = (127.02, 37.46, 127.10, 37.53)
AREAS = [
    area("11", "city", None, "서울특별시", "Seoul", (126.76, 37.41, 127.19, 37.72)),
    area("11110", "district", "11", "종로구", "Jongno-gu", JONGNO_BOX),
    area("11680", "district", "11", "강남구", "Gangnam-gu", GANGNAM_BOX, clockwise=True),
    area("1168010100", "dong", "11680", "역삼동", "Yeoksam-dong", (127.03, 37.49, 127.05, 37.51)),
]

STATISTICS = [
    {
        "area_code": "11680",
        "indicator": "population",
        "year": 2019,
        "value": 544_055,
        "source": "t",
    },
    {
        "area_code": "11680",
        "indicator": "population",
        "year": 2023,
        "value": 536_107,
        "source": "t",
    },
    {
        "area_code": "11680",
        "indicator": "age_65_plus",
        "year": 2023,
        "value": 80_000,
        "source": "t",
    },
]

PLACES = [
    {
        "kind": "shelter",
        "ref": "S-GN-1",
        "name_ko": "역삼 무더위쉼터",
        "area_code": "11680",
        "lon": 127.036,
        "lat": 37.500,
        "shelter_kind": "cooling",
        "capacity": 50,
    },
    {
        "kind": "shelter",
        "ref": "S-GN-2",
        "name_ko": "대치 대피소",
        "area_code": "11680",
        "lon": 127.060,
        "lat": 37.495,
        "shelter_kind": "civil_defence",
        "capacity": 900,
    },
    {
        "kind": "shelter",
        "ref": "S-JN-1",
        "name_ko": "종로 대피소",
        "area_code": "11110",
        "lon": 126.985,
        "lat": 37.590,
        "shelter_kind": "civil_defence",
        "capacity": 1200,
    },
    {
        "kind": "fire_station",
        "ref": "F-GN",
        "name_ko": "강남소방서",
        "area_code": "11680",
        "lon": 127.048,
        "lat": 37.506,
    },
    {
        "kind": "hospital",
        "ref": "H-GN",
        "name_ko": "강남 응급의료센터",
        "area_code": "11680",
        "lon": 127.040,
        "lat": 37.499,
        "emergency_level": "regional",
        "er_beds": 30,
    },
]

#: One token per role; operators work in the 119 center, the district official in Gangnam.
ROLE_TOKENS = {
    "admin": {},
    "operator": {"center": "119"},
    "district_official": {"area_code": "11680"},
    "guardian": {},
    "citizen": {},
    "device": {},
}


@dataclass
class World:
    """A client over a seeded DB, with a live token for every role."""

    engine: Engine
    client: TestClient
    tokens: dict[str, str]
    token_ids: dict[str, int]

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def audit(self) -> list[dict[str, Any]]:
        """The audit log, oldest first."""
        with self.engine.begin() as conn:
            return list(reversed(access.audit_trail(conn, limit=1000)))


def seed(engine: Engine) -> tuple[dict[str, str], dict[str, int]]:
    with engine.begin() as conn:
        areas.save_areas(conn, AREAS)
        areas.save_statistics(conn, STATISTICS)
        places.save_places(conn, PLACES)
        made = {
            role: access.create_token(conn, f"{role}-1", role, **kw)
            for role, kw in ROLE_TOKENS.items()
        }
    return {r: token for r, (_, token) in made.items()}, {r: i for r, (i, _) in made.items()}


def build_world(engine: Engine, *, raise_server_exceptions: bool = True, **settings: Any) -> World:
    """The app on ``engine`` with seeded tokens; ``settings`` override the test defaults."""
    tokens, ids = seed(engine)
    app = create_app(engine, Settings(**{"max_body_bytes": MAX_BODY_BYTES, **settings}))
    client = TestClient(app, raise_server_exceptions=raise_server_exceptions)
    return World(engine, client, tokens, ids)


def assert_problem(response, status: int, *fields: str) -> dict[str, Any]:
    """The response is RFC 9457 problem+json with ``status``, naming each of ``fields``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    for member in ("type", "title", "status", "detail", "instance"):
        assert member in problem, f"problem lacks {member}: {problem}"
    assert problem["status"] == status
    assert problem["instance"] == response.request.url.path
    named = {e["field"] for e in problem.get("errors", [])}
    for field in fields:
        assert field in named, f"{field} not named in {problem}"
    return problem
