"""Runtime configuration, read once from ``HAECHI_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob an operator may turn; the defaults run the embedded set-up on a laptop."""

    model_config = SettingsConfigDict(env_prefix="HAECHI_", extra="ignore")

    database_url: str = Field(
        "sqlite:///haechi.db",
        description="SQLAlchemy URL of the integrated DB; SQLite file in the working directory by default.",
    )
    city: str = Field("seoul", description="City pack loaded by `make demo` and `haechi serve --load-city`.")
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = Field(
        None, description="Base URL people and webhooks reach this server at (behind a proxy); host:port if unset."
    )
    cap_sender: str = Field("haechi@seoul.go.kr", description="CAP <sender> of the alerts this server issues.")
    cap_signing_key: str = Field(
        "haechi-cap-signing-key.pem", description="PEM file of the RSA key every CAP alert is signed with "
        "(XML-DSig); made there on first start if missing. Its public key is served at /alerts/signing-key.pem.")
    river_forecasts: bool = Field(
        True, description="Run the river model on each new gauge reading, so forecast warnings come on their own.")
    # Webhook URLs come from subscribers: by default only public https addresses (haechi/alerts/egress.py).
    webhook_allow_http: bool = Field(False, description="Let webhooks use plain http (development and tests only).")
    webhook_allowed_networks: list[str] = Field(
        default_factory=list,
        description='Private networks webhooks may reach all the same, as JSON: ["127.0.0.1/32", "10.20.0.0/16"].',
    )
    mqtt_url: str | None = Field(None, description="mqtt://host:port of the broker to subscribe to.")
    bus_url: str | None = Field(None, description="nats://host:port for the scale-out bus; in-process when unset.")
    bus_prefix: str = Field(
        "haechi", description="Names this installation's NATS streams: events <PREFIX>_EVENTS on <prefix>.events.*, "
        "the ingest queue <PREFIX>_INGEST on <prefix>.ingest.* (another installation, or a test, on the same NATS "
        "uses its own).")
    max_ingest_bytes: int = Field(
        2_000_000_000, description="Largest bulk observation upload (streamed, never held whole in memory)."
    )
    max_sta_batch_bytes: int = Field(
        100_000_000, description="Largest SensorThings CreateObservations body (read whole, so bounded)."
    )
    silence_check_s: float = Field(60.0, description="How often the live state is checked for silent sensors.")
    road_graph: str = Field(
        "haechi-roads.npz", description="Road graph cache built by `haechi roads import FILE` (or `roads generate`)."
    )
    max_body_bytes: int = Field(
        1_000_000, description="Largest JSON body accepted by ordinary endpoints (bulk ingest has its own limit)."
    )
    # Care for the vulnerable (issue 6): positions are personal data, kept only this long.
    care_retention_h: float = Field(24.0, gt=0, description="Hours care positions and activity are kept before purge.")
    care_tick_s: float = Field(60.0, gt=0, description="How often care purges old positions and checks trips/welfare.")
    care_topic_prefix: str = Field(
        "haechi/care", description="MQTT prefix of care devices: <prefix>/<device>/position."
    )
    care_mqtt_url: str | None = Field(None, description="Broker of the care devices; mqtt_url when unset.")
    max_photo_bytes: int = Field(8_000_000, description="Largest photo a citizen may attach to a hazard report.")
    lake_dir: str = Field("lake", description="Folder of the Parquet lake and data marts (haechi lake/mart).")
    open_rate_per_s: float = Field(2.0, description="Open-data requests refilled per second per client.")
    open_burst: int = Field(30, description="Open-data requests a client may make at once (token bucket size).")
    trusted_proxies: list[str] = Field(
        ["127.0.0.1"], description='Proxies whose X-Forwarded-For names the client (rate limits count by it), '
        'as JSON: ["10.0.0.5", "10.20.0.0/16"]; from any other peer the header is ignored.')
    shedding_file: str | None = Field(
        None, description="A TOML of one's own write rate limits and read bound; haechi/api/shedding.toml if unset.")


@lru_cache
def get_settings() -> Settings:
    return Settings()
