"""Every knob of the gateway, read from ``PEERLINK_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
