"""Configuration, read from the environment (CREDITGATE_*) and overridable by CLI flags."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from creditgate.domain.plans import ACCOUNT_ROUTES_RPM

DEFAULT_DATABASE_URL = "sqlite:///.creditgate/creditgate.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CREDITGATE_", extra="ignore")

    database_url: str = Field(DEFAULT_DATABASE_URL, description="sqlite:///path or postgresql://")
    admin_token: str | None = Field(None, description="enables the admin API when set")
    host: str = "127.0.0.1"
    port: int = 3100
    workers: int = 1
    account_rpm: int = Field(ACCOUNT_ROUTES_RPM, description="account route requests/min/team")
    log_level: str = "info"
    sweep_seconds: float = Field(5.0, description="how often expired reservations are released")
    upstream_url: str | None = Field(None, description="the Firecrawl to front (gateway mode)")
    upstream_key: str | None = Field(None, description="the upstream's own API key, if any")
    redis_url: str | None = Field(None, description="share rate limits between processes")
    queue_wait_seconds: float = 30.0
    follow_seconds: float = 1.0
    routes: str | None = Field(None, description="extra gateway routes: a JSON list")
    public_url: str | None = Field(None, description="where clients reach the gateway")
    cors_origins: str = Field("*", description="comma-separated origins, or *")
