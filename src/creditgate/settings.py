"""Configuration, read from the environment (CREDITGATE_*) and overridable by CLI flags.

Secrets (the admin token, the upstream's key) come from the environment or from a file
(CREDITGATE_ADMIN_TOKEN_FILE, CREDITGATE_UPSTREAM_KEY_FILE): never only from argv, which every
local user can read in the process list.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from creditgate.domain.plans import ACCOUNT_ROUTES_RPM

SESSION_LABEL = b"creditgate dashboard session secret v1"
DEFAULT_DATABASE_URL = "sqlite:///.creditgate/creditgate.db"  # under the current directory


def default_database_url() -> str:
    """The default database with its path made absolute (the current directory's)."""
    return f"sqlite:///{(Path('.creditgate') / 'creditgate.db').absolute()}"


UPGRADE_URL_MAX = 2048


def check_upgrade_url(url: str) -> str:
    """`url` if clients can be sent to it from an error text: an absolute http(s) URL with a
    host, in one piece (no spaces, no control characters); else ValueError saying why."""
    if len(url) > UPGRADE_URL_MAX:
        raise ValueError(f"at most {UPGRADE_URL_MAX} characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise ValueError("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a bad port raises only when read)
    except ValueError as exc:
        raise ValueError(f"not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            "must be an absolute http:// or https:// URL, e.g. https://example.com/plans"
        )
    return url


class SecretError(ValueError):
    """A secret's file is missing, unreadable or empty, or the secret is given twice."""


ADMIN_TOKEN_MIN = 16


def read_secret(value: str | None, path: str | None, what: str, env: str) -> str | None:
    """The secret given as `value` or, with `path`, the file's text less its trailing newline."""
    if not path:
        return value or None
    if value:
        raise SecretError(f"give the {what} by {env} or by {env}_FILE, not both")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SecretError(f"cannot read the {what} from {path}: {reason}") from exc
    secret = text.rstrip("\r\n")
    if not secret.strip():
        raise SecretError(f"the {what} file {path} is empty")
    return secret


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CREDITGATE_", extra="ignore")

    database_url: str = Field(DEFAULT_DATABASE_URL, description="sqlite:///path or postgresql://")
    admin_token: str | None = Field(None, description="enables the admin API when set")
    admin_token_file: str | None = Field(None, description="a file holding the admin token")
    host: str = "127.0.0.1"
    port: int = 3100
    workers: int = Field(1, ge=1)
    account_rpm: int = Field(ACCOUNT_ROUTES_RPM, description="account route requests/min/team")
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = "info"
    log_format: Literal["text", "json"] = Field(
        "text", description="text or json: one line per request either way"
    )
    sqlite_synchronous: Literal["NORMAL", "FULL"] = Field(
        "NORMAL", description="FULL: an fsync per commit (survives power loss)"
    )
    sweep_seconds: float = Field(5.0, description="how often expired reservations are released")
    upstream_url: str | None = Field(None, description="the Firecrawl to front (gateway mode)")
    upstream_key: str | None = Field(None, description="the upstream's own API key, if any")
    upstream_key_file: str | None = Field(None, description="a file holding the upstream's key")
    redis_url: str | None = Field(None, description="share rate limits between processes")
    queue_wait_seconds: float = Field(
        30.0, description="the most a scrape, search or map waits for a slot (its timeout if less)"
    )
    queue_room: int = Field(
        100, description="a team's scrapes, searches and maps that may wait for a slot at once"
    )
    follow_seconds: float = 1.0
    upstream_connections: int = Field(
        200, ge=1, description="the process's upstream connection pool"
    )
    team_upstream_connections: int | None = Field(
        None, ge=1, description="a team's share of that pool (default: a quarter, at least 4)"
    )
    team_reads_in_flight: int = Field(
        16, ge=1, description="a team's job reads and cancels at once per process; more: 429"
    )
    page_grace_seconds: float = Field(
        60.0,
        description="how long a page may still run upstream after creditgate stopped waiting "
        "for it (a cancel, a timeout): its slot stays taken that long",
    )
    webhook_seconds: float = Field(
        1.0, description="how often due webhook deliveries are sent (0: never, from this process)"
    )
    routes: str | None = Field(None, description="extra gateway routes: a JSON list")
    prices: str | None = Field(
        None, description="extra price table rows: a JSON object (README, 'The price table')"
    )
    metering: bool = Field(True, description="off: the gateway only authenticates and forwards")
    leases: bool = Field(
        False,
        description="admit scrapes, maps and searches on credit leases, charged in batches "
        "(README, 'Credit leases')",
    )
    public_url: str | None = Field(None, description="where clients reach the gateway")
    upgrade_url: str | None = Field(
        None,
        description="the page 402 and 429 texts send a client to for a bigger plan "
        "(default: Firecrawl's, https://firecrawl.dev/pricing)",
    )
    trusted_proxies: str | None = Field(
        None, description="addresses whose X-Forwarded-For names the client (comma-separated)"
    )
    cors_origins: str = Field("*", description="comma-separated origins, or *")
    session_secret: str | None = Field(
        None, description="signs the dashboard's session cookie (default: derived, see README)"
    )
    session_secret_file: str | None = Field(None, description="a file holding the session secret")

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("upgrade_url")
    @classmethod
    def _upgrade_url(cls, value: str | None) -> str | None:
        return None if value is None else check_upgrade_url(value)

    @field_validator("sqlite_synchronous", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    db_timeout_seconds: float = Field(
        5.0,
        description="PostgreSQL: bound on connecting, each statement (server side) and each "
        "call of the server (client side); 0: none",
    )
    db_connections: int = Field(
        20,
        ge=3,
        description="PostgreSQL: the most connections a process opens, all its pools together",
    )

    def admin_secret(self) -> str | None:
        """The admin token, from CREDITGATE_ADMIN_TOKEN or its file (SecretError if unusable:
        shorter than ADMIN_TOKEN_MIN, since the dashboard lets a correct token sign in however
        many wrong ones its address has sent, and a short one could be guessed)."""
        token = read_secret(
            self.admin_token, self.admin_token_file, "admin token", "CREDITGATE_ADMIN_TOKEN"
        )
        if token is not None and len(token) < ADMIN_TOKEN_MIN:
            raise SecretError(
                f"the admin token must be at least {ADMIN_TOKEN_MIN} characters "
                "(e.g. `openssl rand -hex 32`)"
            )
        return token

    def session_key(self) -> str | None:
        """The dashboard's cookie-signing secret: CREDITGATE_SESSION_SECRET or its file; else
        derived from the admin token (HMAC-SHA256 under a fixed label: stable across workers and
        restarts, and it reveals nothing of the token; a new admin token ends every session);
        None when neither is set (`serve` then makes a random one for its workers)."""
        given = read_secret(
            self.session_secret,
            self.session_secret_file,
            "session secret",
            "CREDITGATE_SESSION_SECRET",
        )
        if given is not None:
            return given
        admin = self.admin_secret()
        if admin is None:
            return None
        return hmac.new(admin.encode(), SESSION_LABEL, hashlib.sha256).hexdigest()

    def upstream_secret(self) -> str | None:
        """The upstream's key, from CREDITGATE_UPSTREAM_KEY or its file."""
        return read_secret(
            self.upstream_key, self.upstream_key_file, "upstream key", "CREDITGATE_UPSTREAM_KEY"
        )
