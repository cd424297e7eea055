"""SQLAlchemy Core schema of the integrated DB, in the four scopes of MISSION.md plus operations.

Geometry is stored as GeoJSON text (WGS84) with a bounding box or lon/lat columns beside it, so
the same schema, migrations and queries run on SQLite and PostgreSQL; exact spatial work is done
with shapely in Python. PostGIS can be layered on later where spatial SQL pays.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

from haechi.core.clock import as_utc

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

class UtcDateTime(TypeDecorator):
    """Timestamps stored in UTC and read back timezone-aware, on every engine.

    SQLite has no time zones: without this, 14:20+09:00 would be stored as 14:20 and read back
    naive. Naive values given to us are taken as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else as_utc(value)


# SQLite only autoincrements INTEGER primary keys; BigInteger elsewhere for observation volumes.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def _when(name: str, **kw) -> Column:
    return Column(name, UtcDateTime(), **kw)


def _point() -> list[Column]:
    return [Column("lon", Float), Column("lat", Float)]


def _bbox() -> list[Column]:
    return [Column(n, Float) for n in ("min_lon", "min_lat", "max_lon", "max_lat")]


# ── 1. Sensing: the OGC SensorThings API 1.1 data model ──────────────────────────────────

things = Table(
    "things", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("properties", JSON),
    Column("place_id", ForeignKey("places.id", ondelete="SET NULL")),
)

locations = Table(
    "locations", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("encoding_type", String(64), nullable=False, default="application/geo+json"),
    Column("location", JSON, nullable=False),
    *_point(),
)

thing_locations = Table(
    "thing_locations", metadata,
    Column("thing_id", ForeignKey("things.id", ondelete="CASCADE"), primary_key=True),
    Column("location_id", ForeignKey("locations.id", ondelete="CASCADE"), primary_key=True),
)

historical_locations = Table(
    "historical_locations", metadata,
    Column("id", Integer, primary_key=True),
    Column("thing_id", ForeignKey("things.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("location_id", ForeignKey("locations.id", ondelete="CASCADE"), nullable=False),
    _when("time", nullable=False),
)

sensors = Table(
    "sensors", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("encoding_type", String(64), nullable=False, default="application/pdf"),
    Column("metadata", Text, nullable=False, default=""),
    Column("properties", JSON),
)

observed_properties = Table(
    "observed_properties", metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(64), unique=True),  # Haechi's catalogue key, e.g. water_level
    Column("name", String(200), nullable=False),
    Column("definition", String(500), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("properties", JSON),
)

datastreams = Table(
    "datastreams", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("thing_id", ForeignKey("things.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("sensor_id", ForeignKey("sensors.id"), nullable=False),
    Column("observed_property_id", ForeignKey("observed_properties.id"), nullable=False, index=True),
    Column("unit_name", String(100), nullable=False),
    Column("unit_symbol", String(32), nullable=False),
    Column("unit_definition", String(500), nullable=False),
    Column(
        "observation_type", String(200), nullable=False,
        default="http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
    ),
    Column("area_code", ForeignKey("admin_areas.code"), index=True),
    Column("properties", JSON),
)

features_of_interest = Table(
    "features_of_interest", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("encoding_type", String(64), nullable=False, default="application/geo+json"),
    Column("feature", JSON, nullable=False),
)

#: QC flags carried as SensorThings ``resultQuality``.
QC_FLAGS = ("good", "suspect", "bad")

observations = Table(
    "observations", metadata,
    Column("id", BigId, primary_key=True),
    Column("datastream_id", ForeignKey("datastreams.id", ondelete="CASCADE"), nullable=False),
    _when("phenomenon_time", nullable=False),
    _when("result_time"),
    Column("result", Float),  # numeric results, the hot path
    Column("result_json", JSON),  # anything else SensorThings allows
    Column("result_quality", String(8), nullable=False, default="good"),
    Column("qc_reasons", JSON),
    Column("feature_of_interest_id", ForeignKey("features_of_interest.id")),
    Column("parameters", JSON),
    _when("received_at", nullable=False),
    # The idempotency key: a resend of the same reading is a no-op, never a duplicate.
    UniqueConstraint("datastream_id", "phenomenon_time", name="uq_observations_stream_time"),
    CheckConstraint("result_quality IN ('good', 'suspect', 'bad')", name="quality"),
)

#: The live state of each datastream, kept beside the in-memory copy so a restart resumes it:
#: its newest reading as shown to people, and what QC remembers (newest plausible reading, flat run).
datastream_state = Table(
    "datastream_state", metadata,
    Column("datastream_id", ForeignKey("datastreams.id", ondelete="CASCADE"), primary_key=True),
    _when("phenomenon_time", nullable=False),
    Column("result", Float),
    Column("result_quality", String(8), nullable=False),
    _when("qc_time"),
    Column("qc_value", Float),
    Column("flat_count", Integer, nullable=False, default=0),
    _when("updated_at", nullable=False),
)

# ── 2. Urban components ─────────────────────────────────────────────────────────────────

admin_areas = Table(
    "admin_areas", metadata,
    Column("code", String(10), primary_key=True),  # 행정표준코드 (legal code: 2/5/8 digits)
    Column("level", String(16), nullable=False, index=True),
    Column("parent_code", ForeignKey("admin_areas.code"), index=True),
    Column("name_ko", String(100), nullable=False),
    Column("name_en", String(100)),
    Column("area_km2", Float),
    Column("geometry", JSON),  # GeoJSON geometry, WGS84
    *_bbox(),
    Column("source", Text),
    CheckConstraint("level IN ('city', 'district', 'dong')", name="level"),
)

#: Statistics in long form: each indicator keeps its own year and source, because public tables
#: for population, households, recipients … are published for different years.
area_statistics = Table(
    "area_statistics", metadata,
    Column("area_code", ForeignKey("admin_areas.code", ondelete="CASCADE"), primary_key=True),
    Column("indicator", String(48), primary_key=True),  # haechi.model.city.Indicator
    Column("year", Integer, primary_key=True),
    Column("value", Float, nullable=False),
    Column("source", Text),
)

land_use = Table(
    "land_use", metadata,
    Column("id", Integer, primary_key=True),
    Column("area_code", ForeignKey("admin_areas.code", ondelete="CASCADE"), nullable=False, index=True),
    Column("use_class", String(64), nullable=False),  # e.g. residential, commercial, green
    Column("area_km2", Float, nullable=False),
    Column("geometry", JSON),
    Column("source", Text),
    UniqueConstraint("area_code", "use_class", name="uq_land_use_area_class"),
)

#: Every point place shares one table, so "what is near this incident?" is one query;
#: kind-specific facts live in the detail tables below.
places = Table(
    "places", metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(32), nullable=False, index=True),
    Column("ref", String(64), nullable=False),  # the publisher's own id, stable across reloads
    Column("name_ko", String(200), nullable=False),
    Column("name_en", String(200)),
    Column("area_code", ForeignKey("admin_areas.code"), index=True),
    Column("address", String(300)),
    *_point(),
    Column("attrs", JSON),
    Column("source", Text),
    UniqueConstraint("kind", "ref", name="uq_places_kind_ref"),
    Index("ix_places_lon_lat", "lon", "lat"),
)


def _detail(name: str, *columns: Column) -> Table:
    return Table(
        name, metadata,
        Column("place_id", ForeignKey("places.id", ondelete="CASCADE"), primary_key=True),
        *columns,
    )


facilities = _detail(
    "facilities",
    Column("facility_type", String(32), nullable=False),
    Column("structure_type", String(64)),  # e.g. RC, steel, masonry, PSC box girder
    Column("completion_year", Integer),
    Column("safety_grade", String(1)),
    Column("floors", Integer),
    Column("length_m", Float),
    CheckConstraint("safety_grade IS NULL OR safety_grade IN ('A','B','C','D','E')", name="grade"),
)

shelters = _detail(
    "shelters",
    Column("shelter_kind", String(32), nullable=False),
    Column("capacity", Integer),
    Column("floor_area_m2", Float),
)

hospitals = _detail(
    "hospitals",
    Column("emergency_level", String(32)),  # regional / local emergency medical center, or none
    Column("er_beds", Integer),
)

cctv_cameras = _detail(
    "cctv_cameras",
    Column("purpose", String(64)),  # crime prevention, traffic, disaster watch …
    Column("direction_deg", Float),  # clockwise from north
    Column("fov_deg", Float),
    Column("range_m", Float),
)

school_zones = _detail(
    "school_zones",
    Column("school_name", String(200)),
    Column("radius_m", Float),
    Column("geometry", JSON),
)

gauges = _detail(
    "gauges",
    Column("river", String(100)),
    # Flood stages in metres of gauge height (관심 · 홍수주의보 · 홍수경보 수위); source on the place.
    Column("attention_stage_m", Float),
    Column("advisory_stage_m", Float),
    Column("warning_stage_m", Float),
    # Elevation of the gauge zero (El. m): level above sea = datum + gauge height.
    Column("datum_elevation_m", Float),
)

#: Fire stations and 119 safety centers are places; their units (pumpers, ambulances …) are here.
fire_units = Table(
    "fire_units", metadata,
    Column("id", Integer, primary_key=True),
    Column("station_place_id", ForeignKey("places.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("call_sign", String(64), nullable=False, unique=True),
    Column("unit_type", String(32), nullable=False),  # pumper, tanker, ladder, rescue, ambulance
    Column("status", String(16), nullable=False, default="available"),
    # Where the unit is now (its station until it reports otherwise) and since when its status holds.
    Column("lon", Float),
    Column("lat", Float),
    _when("status_changed_at"),
)

# ── 3. Disaster occurrences ─────────────────────────────────────────────────────────────

disasters = Table(
    "disasters", metadata,
    Column("id", Integer, primary_key=True),
    Column("category", String(16), nullable=False),
    Column("kind", String(32), nullable=False, index=True),
    Column("title", String(300), nullable=False),
    _when("started_at", nullable=False, index=True),
    _when("ended_at"),
    Column("area_code", ForeignKey("admin_areas.code"), index=True),
    *_point(),
    Column("deaths", Integer, nullable=False, default=0),
    Column("injuries", Integer, nullable=False, default=0),
    Column("missing", Integer, nullable=False, default=0),
    Column("evacuated", Integer, nullable=False, default=0),
    Column("damage_krw", BigInteger),
    Column("description", Text),
    Column("source", Text),
    CheckConstraint("category IN ('natural', 'social')", name="category"),
)

# ── 4. Disaster management and citizens ─────────────────────────────────────────────────

projects = Table(
    "projects", metadata,
    Column("id", Integer, primary_key=True),
    Column("phase", String(16), nullable=False),
    Column("title", String(300), nullable=False),
    Column("area_code", ForeignKey("admin_areas.code"), index=True),
    Column("budget_krw", BigInteger),
    Column("start_date", Date),
    Column("end_date", Date),
    Column("evaluation_score", Float),  # 0–100
    Column("evaluation", Text),
    Column("source", Text),
    CheckConstraint("phase IN ('prevention', 'preparation', 'response', 'recovery')", name="phase"),
)

citizen_reports = Table(
    "citizen_reports", metadata,
    Column("id", Integer, primary_key=True),
    _when("reported_at", nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("description", Text, nullable=False),
    Column("area_code", ForeignKey("admin_areas.code"), index=True),
    *_point(),
    Column("status", String(16), nullable=False, default="new"),
    Column("reporter_token_id", ForeignKey("api_tokens.id", ondelete="SET NULL")),
)

#: A photo attached to a citizen's report (bytes as sent, after checking they are an image).
report_photos = Table(
    "report_photos", metadata,
    Column("id", Integer, primary_key=True),
    Column("report_id", ForeignKey("citizen_reports.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("content_type", String(32), nullable=False),
    Column("size_bytes", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    _when("received_at", nullable=False),
)

survey_results = Table(
    "survey_results", metadata,
    Column("id", Integer, primary_key=True),
    Column("survey", String(200), nullable=False),
    Column("year", Integer, nullable=False),
    Column("area_code", ForeignKey("admin_areas.code")),
    Column("question", String(500), nullable=False),
    Column("answer", String(200), nullable=False),
    Column("share_pct", Float),
    Column("respondents", Integer),
    Column("source", Text),
)

# ── Warnings and alerts ────────────────────────────────────────────────────────────────

#: A warning in force or past: one per hazard × area at a time (the engine's lifecycle).
warnings = Table(
    "warnings", metadata,
    Column("id", Integer, primary_key=True),
    Column("hazard", String(32), nullable=False, index=True),
    Column("area_key", String(64), nullable=False),  # district:11590, gauge:1018683, facility:12 …
    Column("area_code", String(10), index=True),  # the administrative area it falls in, if any
    Column("level", String(16), nullable=False),  # advisory, warning … (the criterion's level)
    Column("crisis_level", String(16), nullable=False),  # attention · caution · alert · serious
    Column("status", String(16), nullable=False),  # active · cancelled
    Column("value", Float),
    Column("unit", String(16)),
    Column("criterion", JSON),  # the deciding rule: property, operator, value, window, source
    Column("datastream_id", Integer),
    Column("exercise", Boolean, nullable=False, default=False),
    _when("issued_at", nullable=False),
    _when("updated_at", nullable=False),
    _when("cancelled_at"),
    # An operator has seen it and taken charge (상황실 확인); the warning stays in force.
    _when("acknowledged_at"),
    Column("acknowledged_by", String(100)),
    # Why it has no area, if it could not be placed (kept all the same): no_location · outside_areas
    Column("unplaced", String(32)),
    Index("ix_warnings_active", "hazard", "area_key", "status"),
)

#: A CAP 1.2 message: the XML as sent, the same content as JSON, and who it reaches.
alerts = Table(
    "alerts", metadata,
    Column("id", Integer, primary_key=True),
    Column("identifier", String(200), nullable=False, unique=True),
    Column("sender", String(200), nullable=False),
    _when("sent", nullable=False, index=True),
    Column("status", String(16), nullable=False),  # Actual · Exercise · System · Test · Draft
    Column("msg_type", String(16), nullable=False),  # Alert · Update · Cancel
    Column("references", Text),  # CAP references: sender,identifier,sent of earlier messages
    Column("warning_id", ForeignKey("warnings.id", ondelete="SET NULL"), index=True),
    Column("hazard", String(32), nullable=False),
    Column("crisis_level", String(16)),
    Column("severity", String(16), nullable=False),
    Column("urgency", String(16), nullable=False),
    Column("certainty", String(16), nullable=False),
    Column("area_codes", JSON),  # 행정표준코드 of the districts/dongs covered
    Column("languages", JSON),
    Column("affected", JSON),  # people, elderly, children, foreigners, facilities, shelters
    _when("expires"),
    Column("cap_xml", Text, nullable=False),
    Column("cap_json", JSON, nullable=False),
    Column("created_by", String(100)),
)

#: Who wants alerts where: webhooks for SNS and messaging gateways, by area, language and audience.
subscriptions = Table(
    "subscriptions", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("url", String(500), nullable=False),
    Column("secret", String(200), nullable=False),  # HMAC-SHA256 key for the signature header
    Column("area_codes", JSON),  # code prefixes; empty = everywhere
    Column("languages", JSON),
    Column("audiences", JSON),
    Column("include_exercises", Boolean, nullable=False, default=False),
    Column("format", String(8), nullable=False, default="json", server_default="json"),  # json · xml (CAP)
    Column("active", Boolean, nullable=False, default=True),
    _when("created_at", nullable=False),
)

deliveries = Table(
    "deliveries", metadata,
    Column("id", BigId, primary_key=True),
    Column("alert_id", ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("subscription_id", ForeignKey("subscriptions.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("status", String(16), nullable=False),  # pending · delivered · failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("response_status", Integer),
    Column("error", Text),
    _when("next_attempt_at"),
    _when("delivered_at"),
    _when("created_at", nullable=False),
    UniqueConstraint("alert_id", "subscription_id", name="uq_deliveries_alert_subscription"),
)

# ── Operations: access, audit, dead letters ────────────────────────────────────────────

api_tokens = Table(
    "api_tokens", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),  # SHA-256 hex; the token is never stored
    Column("role", String(32), nullable=False),
    Column("center", String(32)),  # operators only
    Column("area_code", ForeignKey("admin_areas.code")),  # district officials only
    _when("created_at", nullable=False),
    _when("revoked_at"),
    _when("last_used_at"),
)

audit_log = Table(
    "audit_log", metadata,
    Column("id", BigId, primary_key=True),
    _when("at", nullable=False, index=True),
    Column("actor", String(100), nullable=False),  # token name, or "cli:<user>"
    Column("role", String(32)),
    Column("action", String(100), nullable=False),  # e.g. "POST /api/v1/disasters"
    Column("target", String(200)),
    Column("status", Integer),
    Column("detail", JSON),
)

dead_letters = Table(
    "dead_letters", metadata,
    Column("id", BigId, primary_key=True),
    _when("received_at", nullable=False, index=True),
    Column("source", String(100), nullable=False),  # mqtt:<topic>, http:<path>, import:<kind>
    Column("reason", Text, nullable=False),
    Column("payload", Text, nullable=False),  # raw, as received (decoded leniently)
    _when("replayed_at"),
)

# ── 5. Response: incidents shared by the three centers, 119 units, drones (issue 9) ─────
#: An incident the three centers share: one owner at a time, every change in ``incident_events``.
incidents = Table(
    "incidents", metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(32), nullable=False, index=True),  # haechi/response/data/incident_kinds.csv
    Column("title", String(300), nullable=False),
    Column("severity", String(16), nullable=False),  # low · medium · high · critical
    Column("status", String(16), nullable=False, index=True),  # reported → … → closed (lifecycle.csv)
    Column("center", String(32), nullable=False, index=True),  # the owning Center
    *_point(),
    Column("area_code", String(10), index=True),
    Column("source", String(16), nullable=False),  # operator · report · warning · cctv
    Column("source_ref", String(100)),  # the report, warning or CCTV event it came from
    Column("detail", JSON),
    _when("opened_at", nullable=False, index=True),
    _when("updated_at", nullable=False),
    _when("closed_at"),
    Column("created_by", String(100), nullable=False),
)

#: The audit trail of incidents: who changed what, when, from what to what (never updated).
incident_events = Table(
    "incident_events", metadata,
    Column("id", BigId, primary_key=True),
    Column("incident_id", ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False, index=True),
    _when("at", nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(32), nullable=False),  # opened · status · handoff · dispatch · arrival · note …
    Column("from_value", String(100)),
    Column("to_value", String(100)),
    Column("note", Text),
    Column("detail", JSON),
)

#: Analytics events posted by camera systems; the camera system's own id makes a resend a replay.
cctv_events = Table(
    "cctv_events", metadata,
    Column("id", Integer, primary_key=True),
    Column("event_id", String(100), nullable=False, unique=True),
    Column("camera_place_id", ForeignKey("places.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("event_type", String(32), nullable=False),  # smoke_fire · fall · intrusion · crowd_density
    _when("observed_at", nullable=False, index=True),
    _when("received_at", nullable=False),
    *_point(),
    Column("confidence", Float),
    Column("density", Float),  # people per m², crowd_density only
    Column("incident_id", ForeignKey("incidents.id", ondelete="SET NULL"), index=True),
    Column("payload", JSON),
)

#: Drones and their bases; telemetry goes through the sensing pipeline to the drone's Thing.
drones = Table(
    "drones", metadata,
    Column("id", Integer, primary_key=True),
    Column("call_sign", String(64), nullable=False, unique=True),
    Column("model", String(100)),
    Column("base_place_id", ForeignKey("places.id", ondelete="SET NULL")),
    Column("base_lon", Float, nullable=False),
    Column("base_lat", Float, nullable=False),
    Column("thing_id", ForeignKey("things.id", ondelete="SET NULL")),
    Column("datastreams", JSON, nullable=False),  # telemetry property → datastream id
    Column("incident_id", ForeignKey("incidents.id", ondelete="SET NULL"), index=True),
    _when("created_at", nullable=False),
)

#: A unit sent to an incident: the travel-time estimate at dispatch, the arrival, the golden time.
dispatches = Table(
    "dispatches", metadata,
    Column("id", Integer, primary_key=True),
    Column("incident_id", ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("unit_id", ForeignKey("fire_units.id", ondelete="CASCADE"), nullable=False, index=True),
    _when("dispatched_at", nullable=False, index=True),
    Column("estimate_s", Float),
    Column("estimate_method", String(32)),  # road_graph · straight_line
    _when("arrived_at"),
    Column("response_s", Float),
    Column("golden_time_s", Float),
    Column("met_golden_time", Boolean),
    _when("cleared_at"),
    Column("dispatched_by", String(100), nullable=False),
)
# (response tables end)

# ── 6. Roads: closures from hazard areas (issue 9) ──────────────────────────────────────
#: An explicit road closure or slowdown over a polygon (operators, police); lifted, never deleted.
road_closures = Table(
    "road_closures", metadata,
    Column("id", Integer, primary_key=True),
    Column("reason", String(300), nullable=False),
    Column("effect", String(16), nullable=False),  # closed · slowed
    Column("speed_factor", Float),  # slowed: share of free-flow speed kept (0 < f < 1)
    Column("geometry", JSON, nullable=False),  # GeoJSON Polygon/MultiPolygon, lon/lat
    Column("created_by", String(100)),
    _when("created_at", nullable=False),
    _when("lifted_at"),
    CheckConstraint("effect IN ('closed', 'slowed')", name="effect"),
)

#: How many evacuees each shelter has been sent, so the next ones go where there is room.
shelter_loads = Table(
    "shelter_loads", metadata,
    Column("place_id", ForeignKey("places.id", ondelete="CASCADE"), primary_key=True),
    Column("evacuees", Integer, nullable=False, default=0),
    _when("updated_at", nullable=False),
)
# (roads tables end)

# ── 7. Predictions (issue 5) ───────────────────────────────────────────────────────────
# (prediction tables end)

# ── 8. Simulations and regional risk (issue 5) ─────────────────────────────────────────
#: What-if runs of the virtual city (flood, quake, heat, crowd). A run never touches live state:
#: everything it produces stays in ``result`` (summary, per-area rows, GeoJSON layer).
simulations = Table(
    "simulations", metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(16), nullable=False, index=True),
    Column("params", JSON, nullable=False),
    Column("status", String(16), nullable=False, default="queued"),
    Column("progress", Float, nullable=False, default=0.0),  # 0..1
    Column("progress_text", String(200)),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("result", JSON),
    Column("error", Text),
    Column("created_by", String(100)),
    _when("created_at", nullable=False),
    _when("started_at"),
    _when("finished_at"),
    CheckConstraint(
        "status IN ('queued', 'running', 'done', 'failed', 'cancelled')", name="status"
    ),
)
# (simulation tables end)

# ── 9. Care for the vulnerable: consent, wards, positions (issue 6) ────────────────────
#: Guardians (보호자): bound to their own GUARDIAN token; their alert channel and preferences.
care_guardians = Table(
    "care_guardians", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("token_id", ForeignKey("api_tokens.id", ondelete="SET NULL"), unique=True),
    Column("webhook_url", String(500)),
    Column("language", String(2), nullable=False, default="ko"),
    Column("needs", JSON),  # large_text, easy_read, sign_language
    Column("hazards", JSON),  # disaster types wanted; empty = all
    _when("created_at", nullable=False),
)

#: The people cared for: an alias only (no real name, no resident number: PIPA data minimisation).
care_wards = Table(
    "care_wards", metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("alias", String(100), nullable=False),
    Column("area_code", String(10)),
    _when("created_at", nullable=False),
    CheckConstraint("kind IN ('child', 'dementia', 'elderly_alone', 'walker')", name="kind"),
)

care_ward_guardians = Table(
    "care_ward_guardians", metadata,
    Column("ward_id", ForeignKey("care_wards.id", ondelete="CASCADE"), primary_key=True),
    Column("guardian_id", ForeignKey("care_guardians.id", ondelete="CASCADE"), primary_key=True),
    Column("relation", String(32)),
)

#: Consent (PIPA art. 15/22, 위치정보법 art. 18): who consented, for what, until when; withdrawn at.
care_consents = Table(
    "care_consents", metadata,
    Column("id", Integer, primary_key=True),
    Column("ward_id", ForeignKey("care_wards.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("consented_by", String(100), nullable=False),
    Column("relation", String(32), nullable=False),  # self, parent, legal_guardian …
    Column("purpose", String(300), nullable=False),
    _when("granted_at", nullable=False),
    _when("valid_until", nullable=False),
    _when("withdrawn_at"),
    Column("recorded_by", String(100), nullable=False),
)

care_devices = Table(
    "care_devices", metadata,
    Column("id", Integer, primary_key=True),
    Column("ref", String(64), nullable=False, unique=True),  # the id in the device's MQTT topic
    Column("ward_id", ForeignKey("care_wards.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    _when("created_at", nullable=False),
    # The device token it first reported over HTTP with; from then on only that token speaks for it.
    Column("token_id", ForeignKey("api_tokens.id", ondelete="SET NULL")),
    CheckConstraint("kind IN ('tracker', 'door', 'motion', 'power')", name="kind"),
)

#: Positions are personal data: kept here only (never in the public observations), purged after
#: the retention period.
care_positions = Table(
    "care_positions", metadata,
    Column("id", BigId, primary_key=True),
    Column("ward_id", ForeignKey("care_wards.id", ondelete="CASCADE"), nullable=False),
    Column("device_id", ForeignKey("care_devices.id", ondelete="CASCADE"), nullable=False),
    _when("at", nullable=False, index=True),
    _when("received_at", nullable=False),
    Column("lon", Float, nullable=False),
    Column("lat", Float, nullable=False),
    Column("accuracy_m", Float),
    Index("ix_care_positions_ward_at", "ward_id", "at"),
)

care_activity = Table(
    "care_activity", metadata,
    Column("id", BigId, primary_key=True),
    Column("ward_id", ForeignKey("care_wards.id", ondelete="CASCADE"), nullable=False),
    Column("device_id", ForeignKey("care_devices.id", ondelete="CASCADE"), nullable=False),
    _when("at", nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Index("ix_care_activity_ward_at", "ward_id", "at"),
)

#: Safe zones (home, school, day care) with the hours the ward is expected inside.
care_zones = Table(
    "care_zones", metadata,
    Column("id", Integer, primary_key=True),
    Column("ward_id", ForeignKey("care_wards.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("name", String(100), nullable=False),
    Column("geometry", JSON, nullable=False),
    Column("schedule", JSON),
    _when("created_at", nullable=False),
)

care_alerts = Table(
    "care_alerts", metadata,
    Column("id", BigId, primary_key=True),
    Column("ward_id", ForeignKey("care_wards.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    _when("at", nullable=False, index=True),
    *_point(),  # cleared by the purge with the positions
    Column("detail", JSON),
    Column("status", String(16), nullable=False, default="open"),  # open · answered · escalated
    _when("escalate_at"),
    _when("answered_at"),
    Column("delivery", String(16)),  # the guardian webhook: delivered · failed · none
)

#: The guardian notices of each care alert, an outbox written with the alert: one row per (alert,
#: guardian with a webhook), claimed with a lease by whoever delivers (the leading engine, or the
#: API replica that raised the alert), so each guardian gets each alert once, across a failover.
care_deliveries = Table(
    "care_deliveries", metadata,
    Column("id", BigId, primary_key=True),
    Column("alert_id", ForeignKey("care_alerts.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("guardian_id", ForeignKey("care_guardians.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("status", String(16), nullable=False),  # pending · delivered · failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("response_status", Integer),
    Column("error", Text),
    _when("next_attempt_at"),  # due from then; a claim moves it past the attempt (the lease)
    _when("delivered_at"),
    _when("created_at", nullable=False),
    UniqueConstraint("alert_id", "guardian_id", name="uq_care_deliveries_alert_guardian"),
    Index("ix_care_deliveries_due", "status", "next_attempt_at"),  # the sweep: pending and due
)

#: The ``care.reports`` events the engine has stored (reports an API replica took over HTTP), written
#: in the reports' own transaction: an event delivered again (its engine died between commit and
#: ack) is stored and alerted once. Purged with the positions.
care_report_events = Table(
    "care_report_events", metadata,
    Column("id", String(64), primary_key=True),
    _when("handled_at", nullable=False, index=True),
)

#: Every read of a ward's positions, shown to the ward's guardians.
care_access_log = Table(
    "care_access_log", metadata,
    Column("id", BigId, primary_key=True),
    Column("ward_id", ForeignKey("care_wards.id", ondelete="CASCADE"), nullable=False, index=True),
    _when("at", nullable=False),
    Column("actor", String(100), nullable=False),
    Column("role", String(32), nullable=False),
    Column("action", String(100), nullable=False),
    Column("detail", JSON),
)

care_trips = Table(
    "care_trips", metadata,
    Column("id", Integer, primary_key=True),
    Column("ward_id", ForeignKey("care_wards.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("route", JSON, nullable=False),  # GeoJSON LineString, ending at home
    _when("started_at", nullable=False),
    _when("expected_at", nullable=False),
    _when("ended_at"),
    Column("status", String(16), nullable=False),  # active · arrived · cancelled
    Column("contacts", JSON),  # guardian ids chosen for this trip
)

#: Missing-person incidents opened for a ward: operators read positions while one is open.
care_incidents = Table(
    "care_incidents", metadata,
    Column("id", Integer, primary_key=True),
    Column("ward_id", ForeignKey("care_wards.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("incident_id", Integer),  # haechi.response incidents
    _when("opened_at", nullable=False),
    _when("closed_at"),
)
# (care tables end)

# ── 10. Imports from existing systems (issue 7) ────────────────────────────────────────
#: One run of ``haechi import`` or ``POST /api/v1/imports/{kind}``: what came in and what became of it.
import_runs = Table(
    "import_runs", metadata,
    Column("id", BigId, primary_key=True),
    Column("kind", String(32), nullable=False, index=True),
    Column("source", Text, nullable=False),  # file name or URL
    Column("actor", String(100), nullable=False),  # token name, or "cli:<user>"
    _when("started_at", nullable=False, index=True),
    _when("finished_at"),
    Column("status", String(16), nullable=False, default="running"),  # running, done, failed
    Column("encoding", String(16)),
    Column("rows_read", BigInteger, nullable=False, default=0),
    Column("rows_accepted", BigInteger, nullable=False, default=0),
    Column("rows_rejected", BigInteger, nullable=False, default=0),
    Column("rows_duplicate", BigInteger, nullable=False, default=0),
    Column("observations_stored", BigInteger, nullable=False, default=0),
    Column("error", Text),
    CheckConstraint("status IN ('running', 'done', 'failed')", name="status"),
)
# (import tables end)

# ── 11. Warehouse and open data (issue 7) ──────────────────────────────────────────────
#: How far each dataset has been exported to the Parquet lake (haechi/warehouse/lake.py): rows
#: after (last_time, last_id) are new. Advanced only after the files are in place.
lake_watermarks = Table(
    "lake_watermarks", metadata,
    Column("dataset", String(64), primary_key=True),
    Column("last_id", BigInteger, nullable=False, default=0),
    _when("last_time"),
    Column("rows_exported", BigInteger, nullable=False, default=0),
    Column("files_written", Integer, nullable=False, default=0),
    _when("updated_at", nullable=False),
)
# (warehouse tables end)

# ── 12. The cluster (issue 15) ─────────────────────────────────────────────────────────
#: Every running process (``haechi serve``, ``engine``, ``worker``) by name, heartbeating every few
#: seconds: its roles, whether it leads the engines, and its JetStream consumer lag. A row not
#: seen for a few heartbeats belongs to a process that died (``haechi cluster status`` says gone).
cluster_members = Table(
    "cluster_members", metadata,
    Column("name", String(100), primary_key=True),
    Column("roles", String(64), nullable=False),  # "api", "engine", "api+engine", "worker"
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    _when("started_at", nullable=False),
    _when("seen_at", nullable=False),
    Column("leader", Boolean, nullable=False, default=False),
    Column("lag", BigInteger),  # events not yet acknowledged by its durable consumers; None without any
    Column("consumers", JSON),  # {consumer name: lag}
)
# (cluster tables end)

# ── 13. Live public feeds (issue 16) ───────────────────────────────────────────────────
#: Per connector and station, the newest observation time pulled from the official API: after an
#: outage the next run asks for everything since (gap backfill). haechi/imports/connectors.
connector_stations = Table(
    "connector_stations", metadata,
    Column("connector", String(32), primary_key=True),
    Column("station", String(64), primary_key=True),
    _when("last_time", nullable=False),
    _when("updated_at", nullable=False),
)
#: The last run of each connector: what became of it (ok, empty, key_refused, quota, failed) and why.
connector_status = Table(
    "connector_status", metadata,
    Column("connector", String(32), primary_key=True),
    _when("run_at", nullable=False),
    Column("status", String(16), nullable=False),
    Column("detail", Text),
    Column("requests", Integer, nullable=False, default=0),
    Column("stored", BigInteger, nullable=False, default=0),
    Column("duplicates", BigInteger, nullable=False, default=0),
    Column("rejected", BigInteger, nullable=False, default=0),
    _when("ok_at"),  # the last run that reached the API and read its answer
)
# (connector tables end)

# ── 13. Where warnings apply (issue 17) ────────────────────────────────────────────────
#: Tables whose rows decide a warning's area facts (``cities.targeting``): areas, their statistics,
#: places, and where sensors are. A trigger on each counts every change in ``geography_version``.
GEOGRAPHY_TABLES = ("admin_areas", "area_statistics", "places", "things", "locations", "thing_locations",
                    "datastreams")
#: One row (id 1) counting changes to :data:`GEOGRAPHY_TABLES`, bumped by database triggers (migration
#: 0018), so every path (pack, API, import, an operator's SQL) is seen: what was computed from the
#: geography at one count is still right while the count stands.
geography_version = Table(
    "geography_version", metadata,
    Column("id", Integer, primary_key=True),
    Column("version", BigInteger, nullable=False, default=0),
)
