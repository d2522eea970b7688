"""Where a command acts: a database, or a running server's admin API.

In this order: --database-url / CREDITGATE_DATABASE_URL or --server / CREDITGATE_SERVER (both
is a mistake, refused); else a profile (--profile / CREDITGATE_PROFILE, else the config file's
`default_profile`); else the embedded SQLite file. The config file is
$CREDITGATE_CONFIG, else $XDG_CONFIG_HOME/creditgate/config.toml (~/.config/... by default):

    default_profile = "prod"          # optional
    [profile.prod]
    server = "https://creditgate.example.com"
    token_file = "~/.config/creditgate/prod.token"
    [profile.local]
    database_url = "sqlite:////srv/creditgate/creditgate.db"

The admin token, for a server: --token-file, else the profile's `token_file`, else
CREDITGATE_ADMIN_TOKEN, else CREDITGATE_ADMIN_TOKEN_FILE. Never on the command line itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Location:
    database_url: str | None  # None: a server
    server: str | None
    token_file: str | None = None
    # A SQLite file under the current directory (the default, or a relative path given): the
    # URL above is made absolute, and commands name it on stderr (cli/where.py).
    relative: bool = False

    def token(self) -> str | None:
        """The admin token for the server (None: none given; the server will say 401)."""
        if self.token_file is not None:
            return _read_token(self.token_file)
        if os.environ.get("CREDITGATE_ADMIN_TOKEN"):
            return os.environ["CREDITGATE_ADMIN_TOKEN"]
        if os.environ.get("CREDITGATE_ADMIN_TOKEN_FILE"):
            return _read_token(os.environ["CREDITGATE_ADMIN_TOKEN_FILE"])
        return None


def _read_token(path: str) -> str:
    from creditgate.cli.output import Refused

    try:
        text = Path(path).expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise Refused(f"cannot read the admin token from {path}: {reason}", 400) from exc
    if not text:
        raise Refused(f"the admin token file {path} is empty", 400)
    return text


def config_path() -> Path:
    if os.environ.get("CREDITGATE_CONFIG"):
        return Path(os.environ["CREDITGATE_CONFIG"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "creditgate" / "config.toml"


def _config() -> dict[str, Any]:
    import tomllib

    path = config_path()
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read the config file {path}: {exc}") from exc


def locate(
    database_url: str | None,
    server: str | None,
    token_file: str | None,
    profile: str | None,
) -> Location:
    """Where to act, from the options (click fills them from their environment variables)."""
    if server and database_url:
        raise ValueError(
            "give a server (--server, CREDITGATE_SERVER) or a database (--database-url, "
            "CREDITGATE_DATABASE_URL), not both"
        )
    if server:
        return Location(None, server.rstrip("/"), token_file)
    if database_url:
        return _database(database_url)
    config = _config()
    name = profile or config.get("default_profile")
    if name:
        return _profile(config, str(name), token_file)
    return _database(None)


def _database(given: str | None) -> Location:
    """The database `given` (else the embedded SQLite file), by absolute path."""
    from creditgate.cli import where

    url, relative = where.chosen(given)
    return Location(url, None, relative=relative)


def _profile(config: dict[str, Any], name: str, token_file: str | None) -> Location:
    profiles = config.get("profile", {})
    found = profiles.get(name) if isinstance(profiles, dict) else None
    if not isinstance(found, dict):
        known = ", ".join(sorted(profiles)) if isinstance(profiles, dict) else ""
        raise ValueError(
            f"no profile {name!r} in {config_path()}" + (f" (it has: {known})" if known else "")
        )
    server, url = found.get("server"), found.get("database_url")
    if bool(server) == bool(url):
        raise ValueError(
            f"profile {name!r} in {config_path()} must give exactly one of server or database_url"
        )
    if url:
        return _database(str(url))
    given = token_file or found.get("token_file")
    return Location(None, str(server).rstrip("/"), None if given is None else str(given))
