"""Urban components of the integrated DB: areas, places, disasters and management projects."""

from __future__ import annotations

from enum import StrEnum


class AreaLevel(StrEnum):
    CITY = "city"  # 시·도
    DISTRICT = "district"  # 자치구 (시·군·구)
    DONG = "dong"  # 법정동


class Indicator(StrEnum):
    """Statistics kept per area and year (counts of people or households unless named)."""

    POPULATION = "population"  # registered residents
    AGE_65_PLUS = "age_65_plus"
    UNDER_15 = "under_15"
    FOREIGNERS = "foreigners"  # registered foreigners
    HOUSEHOLDS = "households"
    SINGLE_PERSON_HOUSEHOLDS = "single_person_households"
    LOW_INCOME_RECIPIENTS = "low_income_recipients"  # 국민기초생활보장 수급자
    ELDERLY_LIVING_ALONE = "elderly_living_alone"  # 독거노인
    DISABLED = "disabled"  # 등록장애인
    AREA_KM2 = "area_km2"  # official land area


class PlaceKind(StrEnum):
    """Kinds of point (or small-area) places a city pack can load."""

    FACILITY = "facility"
    SHELTER = "shelter"
    FIRE_STATION = "fire_station"
    HOSPITAL = "hospital"
    CCTV = "cctv"
    SCHOOL_ZONE = "school_zone"
    RIVER_GAUGE = "river_gauge"
    DAM = "dam"
    TIDE_STATION = "tide_station"
    WEATHER_STATION = "weather_station"
    AIR_STATION = "air_station"
    SDOT_SENSOR = "sdot_sensor"  # Seoul's S-DoT IoT sensors (도시데이터 센서): a dense layer, not official stations
    STORE_24H = "store_24h"  # 24-hour convenience stores (안심편의점), safe spots on the way home
    POLICE_BOX = "police_box"  # 지구대 · 파출소 · 치안센터


class FacilityType(StrEnum):
    BRIDGE = "bridge"
    TUNNEL = "tunnel"
    BUILDING = "building"
    UNDERGROUND = "underground"
    HAZARDOUS_SITE = "hazardous_site"


class ShelterKind(StrEnum):
    CIVIL_DEFENCE = "civil_defence"  # 민방위 대피시설
    EARTHQUAKE_OUTDOOR = "earthquake_outdoor"  # 지진 옥외대피장소
    COOLING = "cooling"  # 무더위쉼터
    TEMPORARY_HOUSING = "temporary_housing"  # 이재민 임시주거시설


class EmergencyLevel(StrEnum):
    """Emergency-care designation of a hospital (응급의료에 관한 법률; codes of the NEMC data)."""

    REGIONAL = "regional"  # 권역응급의료센터 (G001)
    LOCAL_CENTER = "local_center"  # 지역응급의료센터 (G006)
    LOCAL_INSTITUTION = "local_institution"  # 지역응급의료기관 (G007)
    ER_REPORTED = "er_reported"  # 응급실운영신고기관 (G009): runs an ER without a designation


class FireStationType(StrEnum):
    """Units of a fire service that a 119 dispatch can start from, or that command them."""

    HEADQUARTERS = "headquarters"  # 소방재난본부
    FIRE_STATION = "fire_station"  # 소방서
    SAFETY_CENTER = "safety_center"  # 119안전센터
    RESCUE_UNIT = "rescue_unit"  # 119구조대 / 특수구조대


#: Facility safety grades of the Special Act on Facility Safety (시설물안전법): A best, E worst.
SAFETY_GRADES = ("A", "B", "C", "D", "E")


class DisasterCategory(StrEnum):
    NATURAL = "natural"
    SOCIAL = "social"


class DisasterKind(StrEnum):
    HEAVY_RAIN = "heavy_rain"
    TYPHOON = "typhoon"
    HEAVY_SNOW = "heavy_snow"
    EARTHQUAKE = "earthquake"
    HEAT_WAVE = "heat_wave"
    COLD_WAVE = "cold_wave"
    FINE_DUST = "fine_dust"
    FIRE = "fire"
    COLLAPSE = "collapse"
    TRAFFIC_ACCIDENT = "traffic_accident"
    SINKHOLE = "sinkhole"
    HAZMAT = "hazmat"
    CROWD = "crowd"

    @property
    def category(self) -> DisasterCategory:
        natural = {"heavy_rain", "typhoon", "heavy_snow", "earthquake", "heat_wave", "cold_wave", "fine_dust"}
        return DisasterCategory.NATURAL if self.value in natural else DisasterCategory.SOCIAL


class ProjectPhase(StrEnum):
    """The four phases of disaster management (예방 · 대비 · 대응 · 복구)."""

    PREVENTION = "prevention"
    PREPARATION = "preparation"
    RESPONSE = "response"
    RECOVERY = "recovery"
