"""API keys: create (the secret is shown once), list, revoke, resolve."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from creditgate.domain import keys as keygen
from creditgate.domain.errors import Conflict, InvalidInput, NotFound
from creditgate.domain.ids import new_id
from creditgate.domain.instants import Instant
from creditgate.domain.pricing import MAX_CREDITS
from creditgate.domain.teams import ApiKey, Team
from creditgate.domain.text import refuse_nul
from creditgate.services import pages
from creditgate.services.pages import Page
from creditgate.storage import keys, teams
from creditgate.storage.database import Database

MAX_NAME = 100


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key: ApiKey
    secret: str  # the fc- key itself; never stored, never shown again


def create_key(
    db: Database, team_id: str, now: Instant, name: str | None = None, cap: int | None = None
) -> CreatedKey:
    if cap is not None and (
        isinstance(cap, bool) or not isinstance(cap, int) or not 0 <= cap <= MAX_CREDITS
    ):
        raise InvalidInput(f"cap must be a whole number from 0 to {MAX_CREDITS}", field="cap")
    if name is not None and not 1 <= len(name.strip()) <= MAX_NAME:
        raise InvalidInput(f"name must be 1 to {MAX_NAME} characters", field="name")
    refuse_nul(name, "name")
    with db.write() as conn:
        if teams.get_team_for_update(conn, team_id) is None:
            raise NotFound(f"Team {team_id} not found", teamId=team_id)
        chosen = name.strip() if name else _default_name(conn, team_id)
        if keys.name_taken(conn, team_id, chosen):
            raise Conflict(f"A key named {chosen!r} already exists in this team", name=chosen)
        secret = keygen.generate_key()
        key = ApiKey(
            id=new_id(now),
            team_id=team_id,
            name=chosen,
            hint=keygen.key_hint(secret),
            cap=cap,
            created_at=now,
            revoked_at=None,
        )
        keys.insert_key(conn, key, keygen.hash_key(secret))
        return CreatedKey(key, secret)


def _default_name(conn: Connection, team_id: str) -> str:
    n = keys.count_keys(conn, team_id) + 1
    while keys.name_taken(conn, team_id, f"key-{n}"):
        n += 1
    return f"key-{n}"


def list_keys(db: Database, team_id: str) -> list[ApiKey]:
    with db.read() as conn:
        if teams.get_team(conn, team_id) is None:
            raise NotFound(f"Team {team_id} not found", teamId=team_id)
        return keys.list_keys(conn, team_id)


def page_keys(
    db: Database, team_id: str, limit: int = pages.DEFAULT_LIMIT, cursor: str | None = None
) -> Page[ApiKey]:
    """A team's keys in creation order, `limit` at a time from `cursor`."""
    pages.check_limit(limit)
    after = None
    if cursor is not None:
        created, key_id = pages.decode_cursor("keys", cursor, int, str)
        after = (int(created), str(key_id))
    with db.read() as conn:
        if teams.get_team(conn, team_id) is None:
            raise NotFound(f"Team {team_id} not found", teamId=team_id)
        found = keys.list_keys(conn, team_id, after, limit + 1)
    return pages.page(found, limit, lambda k: pages.encode_cursor("keys", k.created_at, k.id))


def revoke_key(db: Database, key_id: str, now: Instant) -> ApiKey:
    """Revoking is idempotent: a revoked key stays revoked at its first revocation time."""
    with db.write() as conn:
        key = keys.get_key(conn, key_id)
        if key is None:
            raise NotFound(f"API key {key_id} not found", keyId=key_id)
        keys.revoke_key(conn, key_id, now)
        revoked = keys.get_key(conn, key_id)
        assert revoked is not None
        return revoked


def resolve_key(conn: Connection, key_or_id: str) -> tuple[ApiKey, Team]:
    """Find a key by the fc- key itself or by its id."""
    refuse_nul(key_or_id, "key")
    if key_or_id.startswith("fc-"):
        found = keys.get_key_and_team_by_hash(conn, keygen.hash_key(key_or_id))
        if found is None:
            raise NotFound("API key not found")
        return found
    key = keys.get_key(conn, key_or_id)
    team = None if key is None else teams.get_team(conn, key.team_id)
    if key is None or team is None:
        raise NotFound(f"API key {key_or_id} not found", keyId=key_or_id)
    return key, team


def authenticate(db: Database, token: str) -> tuple[ApiKey, Team] | None:
    """The key and team for a presented token, or None if it is unknown."""
    with db.read() as conn:
        return keys.get_key_and_team_by_hash(conn, keygen.hash_key(token))


def session_key(db: Database, key_id: str) -> tuple[ApiKey, Team, str] | None:
    """A dashboard session's key by id, with its team and stored hash (re-checked each request)."""
    with db.read() as conn:
        return keys.get_key_team_and_hash(conn, key_id)
