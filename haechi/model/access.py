"""Who may do what: roles and the situation-room centers they work in."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    DISTRICT_OFFICIAL = "district_official"
    GUARDIAN = "guardian"
    CITIZEN = "citizen"
    DEVICE = "device"


class Center(StrEnum):
    """The three situation rooms the report wants on one picture."""

    CCTV = "cctv"  # CCTV 안전센터
    SITUATION_ROOM = "situation_room"  # 안전상황실
    FIRE_119 = "119"  # 119 종합상황실


#: Roles that may write the city's reference data (areas, places, disasters, projects).
CITY_EDITORS = frozenset({Role.ADMIN, Role.OPERATOR, Role.DISTRICT_OFFICIAL})
