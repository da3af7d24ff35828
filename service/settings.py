"""Every knob of the gateway, read from ``PEERLINK_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PEERLINK_", extra="ignore")

    database_url: str = Field(
        default="sqlite+aiosqlite:///var/peerlink.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///FILE or postgresql+asyncpg://USER@HOST/DB.",
    )
    host: str = Field(default="127.0.0.1", description="Address the gateway listens on.")
    port: int = Field(default=8080, description="Port the gateway listens on.")
    default_program: str = Field(
        default="demo",
        description="Code of the program a peer API request acts for when it names none (PeerLink-Program header).",
    )
    max_body_bytes: int = Field(default=1_048_576, description="Largest request body accepted (413 above).")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level.")
    log_json: bool = Field(default=True, description="Structured JSON logs (false: console format).")
    db_echo: bool = Field(default=False, description="Log SQL statements (never enable with real data).")
    public_url: str | None = Field(
        default=None,
        description="The gateway's URL as clients see it (token audience and issuer); http://HOST:PORT when unset.",
    )
    keys_dir: Path = Field(
        default=Path("var/keys"),
        description="Folder of the token-signing keys (signing-keys.json) and the demo client's key pair.",
    )
    instruments_dir: Path | None = Field(
        default=None,
        description="Folder of the program's own outcome instruments and schedules (TOML, checked at start).",
    )
    payers_dir: Path | None = Field(
        default=None,
        description="Folder of the program's own payer rule files (TOML, checked at start; may replace a shipped one).",
    )
    matching_dir: Path | None = Field(
        default=None,
        description="Folder of the program's matching weights (weights.toml, weights-<program code>.toml) and "
        "reason-code table (areas.toml), checked at start.",
    )
    auth_required: bool = Field(
        default=True,
        description="Every /fhir and /peer request needs a bearer token. false only for local benchmarks.",
    )
    access_token_seconds: int = Field(default=300, ge=30, le=3600, description="Lifetime of issued access tokens.")
    auth_external_issuer: str | None = Field(
        default=None, description="Also accept access tokens from this issuer (a hospital's own IdP)."
    )
    auth_external_jwks_url: str | None = Field(default=None, description="JWKS URL of the external issuer.")
    auth_external_audience: str | None = Field(
        default=None, description="Audience the external issuer puts in tokens for PeerLink (default: public URL)."
    )
    http_timeout_seconds: float = Field(default=5.0, description="Timeout of outbound fetches (client JWKS URLs).")

    worker_in_process: bool = Field(
        default=False, description="`peerlink serve` also runs the outbox worker (make run sets it; not with replicas)."
    )
    outbox_batch: int = Field(default=50, ge=1, le=500, description="Changes a worker claims and sends at once.")
    outbox_lease_seconds: float = Field(
        default=60.0, gt=0, description="How long a claimed change is a worker's before another may take it."
    )
    worker_idle_seconds: float = Field(default=1.0, gt=0, description="Pause of a worker that found nothing to do.")
    retry_base_seconds: float = Field(default=1.0, gt=0, description="First retry delay (doubles, full jitter).")
    retry_cap_seconds: float = Field(default=300.0, gt=0, description="Longest retry delay.")
    retry_horizon_seconds: float = Field(
        default=86_400.0, gt=0, description="A change undelivered this long after it was made is dead-lettered."
    )
    outbox_bundles: bool = Field(
        default=True,
        description="Send a batch in one transaction Bundle when the EHR takes them (false: a request per resource).",
    )
    circuit_failures: int = Field(default=5, ge=1, description="Failures in a row that open a connection's circuit.")
    circuit_open_seconds: float = Field(default=30.0, gt=0, description="How long an open circuit rests.")

    audit_reads: bool = Field(
        default=True, description="Audit every read and search (false only to measure what auditing costs)."
    )
    audit_archive_dir: Path = Field(
        default=Path("var/audit-archive"),
        description="Where `peerlink audit archive` writes archived audit records (NDJSON files and anchors).",
    )
    audit_archive_after_days: int = Field(
        default=365, ge=0, description="`peerlink audit archive` moves audit records older than this to the archive."
    )
    export_dir: Path = Field(
        default=Path("var/exports"),
        description="Folder of the bulk export ($export) NDJSON files, a sub-folder per job.",
    )
    export_retention_seconds: float = Field(
        default=86_400.0, gt=0, description="A bulk export's files and job are deleted this long after it finished."
    )
    export_in_process: bool = Field(
        default=True,
        description="`peerlink serve` also runs bulk export jobs (`peerlink worker` always does); jobs are leased.",
    )
    export_lease_seconds: float = Field(
        default=30.0, gt=0, description="How long a running export is its worker's before another may restart it."
    )
    export_s3_bucket: str | None = Field(
        default=None,
        description="Keep export files in this S3-compatible bucket (every replica reads it) instead of the folder.",
    )
    export_s3_prefix: str = Field(default="exports", description="Key prefix of the export files in the bucket.")
    export_s3_endpoint_url: str | None = Field(
        default=None, description="Endpoint of an S3-compatible store (MinIO, Ceph ...); AWS S3 when unset."
    )
    export_s3_region: str = Field(default="us-east-1", description="Region of the bucket.")
    export_chunk_rows: int = Field(default=2000, ge=10, le=50_000, description="Rows an export reads per query.")
    subscription_retry_horizon_seconds: float = Field(
        default=86_400.0, gt=0, description="A notification undelivered this long after its event is dead-lettered."
    )
    subscription_retry_base_seconds: float = Field(
        default=5.0, gt=0, description="First retry delay of a notification (doubles, full jitter)."
    )
    subscription_retry_cap_seconds: float = Field(default=900.0, gt=0, description="Longest notification retry delay.")
    subscription_lease_seconds: float = Field(
        default=60.0, gt=0, description="How long a subscription's delivery is one worker's before another may take it."
    )
    otel_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP collector for OpenTelemetry traces (e.g. http://collector:4318); off if unset.",
    )

    # --- Console (issue 20): sign-in, sessions, lockout, OpenID Connect ---------------------------------
    console_idle_minutes: int = Field(
        default=30, ge=1, le=1440, description="A console session unused this long is over (sign in again)."
    )
    console_session_hours: int = Field(
        default=12, ge=1, le=168, description="A console session ends this long after sign-in, however used."
    )
    console_lockout_attempts: int = Field(
        default=5, ge=1, le=100, description="Failed console sign-ins in a row that lock the account."
    )
    console_lockout_minutes: int = Field(
        default=15, ge=1, le=1440, description="How long a locked console account stays locked."
    )
    console_oidc_issuer: str | None = Field(
        default=None, description="OpenID Connect issuer for console sign-in (its discovery document is read)."
    )
    console_oidc_client_id: str | None = Field(default=None, description="The console's client id at the issuer.")
    console_oidc_client_secret: str | None = Field(
        default=None, description="The console's client secret at the issuer (client_secret_post)."
    )
    console_oidc_scopes: str = Field(default="openid email", description="Scopes the console asks the issuer for.")

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
