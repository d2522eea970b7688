"""API keys: create (the secret is shown once), list, revoke, resolve."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
from creditgate.storage import key_rows as keys
from creditgate.storage import team_rows as teams
from creditgate.storage.database import Database

MAX_NAME = 100


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key: ApiKey
    secret: str  # the fc- key itself; never stored, never shown again


def _check_cap(cap: int | None) -> None:
    if cap is not None and (
        isinstance(cap, bool) or not isinstance(cap, int) or not 0 <= cap <= MAX_CREDITS
    ):
        raise InvalidInput(f"cap must be a whole number from 0 to {MAX_CREDITS}", field="cap")


def _check_rpm(rpm: int | None) -> None:
    if rpm is not None and (
        isinstance(rpm, bool) or not isinstance(rpm, int) or not 1 <= rpm <= keygen.MAX_RPM
    ):
        raise InvalidInput(f"rpm must be a whole number from 1 to {keygen.MAX_RPM}", field="rpm")


def _check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if metadata is None:
        return None
    problem = keygen.metadata_problem(metadata)
    if problem is not None:
        raise InvalidInput(problem, field="metadata")
    return dict(metadata)


def _check_expiry(expires_at: Instant | None, now: Instant) -> None:
    if expires_at is not None and expires_at <= now:
        raise InvalidInput("expiresAt must lie in the future", field="expiresAt")


def create_key(
    db: Database,
    team_id: str,
    now: Instant,
    name: str | None = None,
    cap: int | None = None,
    *,
    expires_at: Instant | None = None,
    rpm: int | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> CreatedKey:
    _check_cap(cap)
    _check_rpm(rpm)
    _check_expiry(expires_at, now)
    checked = _check_metadata(metadata)
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
            expires_at=expires_at,
            rpm=rpm,
            metadata=checked,
        )
        keys.insert_key(conn, key, keygen.hash_key(secret))
        return CreatedKey(key, secret)


_KEEP: Any = object()


def update_key(
    db: Database,
    key_id: str,
    now: Instant,
    *,
    metadata: Mapping[str, Any] | None = _KEEP,
    rpm: int | None = _KEEP,
    expires_at: Instant | None = _KEEP,
) -> ApiKey:
    """Change a key's metadata (replaced whole; None clears it), its own rate limit (None: no
    own limit) or its expiry (None: never; a past instant is refused: revoke instead)."""
    changes: dict[str, Any] = {}
    if metadata is not _KEEP:
        changes["metadata"] = _check_metadata(metadata)
    if rpm is not _KEEP:
        _check_rpm(rpm)
        changes["rpm"] = rpm
    if expires_at is not _KEEP:
        _check_expiry(expires_at, now)
        changes["expires_at"] = expires_at
    with db.write() as conn:
        key = keys.get_key(conn, key_id)
        if key is None:
            raise NotFound(f"API key {key_id} not found", keyId=key_id)
        keys.update_key(conn, key_id, **changes)
        updated = keys.get_key(conn, key_id)
        assert updated is not None
        return updated


ROTATED_SUFFIX = " (rotated {})"


@dataclass(frozen=True, slots=True)
class Rotation:
    new: CreatedKey  # takes the old key's name, cap, rate limit, metadata and expiry
    old: ApiKey  # renamed "<name> (rotated <id tail>)", expiring at the overlap's end


def rotate_key(db: Database, key_id: str, now: Instant, overlap_seconds: int = 0) -> Rotation:
    """Replace a live key by a new one (a new secret, shown once). Both work for
    `overlap_seconds`; then the old one expires (its expiry is set to that instant, so no
    background job is needed and authentication refuses it from then on, cached snapshots
    included). The new key takes the name and the same cap, rate limit, metadata and expiry;
    the old one keeps its history under a suffixed name. Both carry the chain's lineage, and
    the cap is checked against the usage of the whole chain in the period (storage/book.py):
    a rotation never gives a key a fresh cap."""
    if (
        isinstance(overlap_seconds, bool)
        or not isinstance(overlap_seconds, int)
        or not 0 <= overlap_seconds <= keygen.MAX_OVERLAP_SECONDS
    ):
        raise InvalidInput(
            f"overlapSeconds must be a whole number from 0 to {keygen.MAX_OVERLAP_SECONDS}",
            field="overlapSeconds",
        )
    with db.write() as conn:
        old = keys.get_key(conn, key_id)
        if old is None:
            raise NotFound(f"API key {key_id} not found", keyId=key_id)
        if teams.get_team_for_update(conn, old.team_id) is None:  # serialize with the team
            raise NotFound(f"Team {old.team_id} not found", teamId=old.team_id)
        old = keys.get_key(conn, key_id)
        assert old is not None
        if not old.live_at(now):
            raise Conflict(f"API key {key_id} is revoked or expired", keyId=key_id)
        successor = keys.successor_of(conn, key_id)
        if successor is not None:
            raise Conflict(
                f"API key {key_id} was already rotated (to {successor}): rotate that one",
                keyId=key_id,
                successorId=successor,
            )
        lineage = old.lineage or old.id
        suffix = ROTATED_SUFFIX.format(old.id[-8:])
        renamed = old.name[: MAX_NAME - len(suffix)] + suffix
        n = 2
        while keys.name_taken(conn, old.team_id, renamed):
            tail = f"{suffix[:-1]} {n})"
            renamed, n = old.name[: MAX_NAME - len(tail)] + tail, n + 1
        ends = now + overlap_seconds * 1000
        old_expiry = ends if old.expires_at is None else min(old.expires_at, ends)
        keys.update_key(conn, old.id, name=renamed, expires_at=old_expiry, lineage=lineage)
        secret = keygen.generate_key()
        new = ApiKey(
            id=new_id(now),
            team_id=old.team_id,
            name=old.name,
            hint=keygen.key_hint(secret),
            cap=old.cap,
            created_at=now,
            revoked_at=None,
            expires_at=old.expires_at,
            rpm=old.rpm,
            rotated_from=old.id,
            lineage=lineage,
            metadata=old.metadata,
        )
        keys.insert_key(conn, new, keygen.hash_key(secret))
        after = keys.get_key(conn, old.id)
        assert after is not None
        return Rotation(CreatedKey(new, secret), after)


def _default_name(conn: Connection, team_id: str) -> str:
    n = keys.count_keys(conn, team_id) + 1
    while keys.name_taken(conn, team_id, f"key-{n}"):
        n += 1
    return f"key-{n}"


def list_keys(db: Database, team_id: str) -> list[ApiKey]:
    with db.read() as conn:
        teams.require_team(conn, team_id)
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
        teams.require_team(conn, team_id)
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


class KeyUses:
    """When each key was last used, kept in memory and written in rounds (coalesced).

    A request costs a dict assignment (`record`); `flush` writes every key used since the last
    round in one UPDATE per batch of keys, moving `last_used_ms` only forward, so two processes
    (or a late round) never move it back. A process killed between rounds loses at most one
    round of last uses; nothing else depends on them.
    """

    def __init__(self) -> None:
        self._latest: dict[str, Instant] = {}
        self._lock = threading.Lock()  # only against a flush swapping the map

    def record(self, key_id: str, at: Instant) -> None:
        self._latest[key_id] = at

    def pending(self) -> dict[str, Instant]:
        return dict(self._latest)

    def flush(self, db: Database) -> int:
        """Write what was recorded since the last flush; the keys whose last use moved."""
        with self._lock:
            taken, self._latest = self._latest, {}
        if not taken:
            return 0
        try:
            with db.write() as conn:
                return keys.touch_keys(conn, taken)
        except Exception:
            with self._lock:  # put them back for the next round, the later instant winning
                for key_id, at in taken.items():
                    if at > self._latest.get(key_id, at - 1):
                        self._latest[key_id] = at
            raise


def authenticate(db: Database, token: str) -> tuple[ApiKey, Team] | None:
    """The key and team for a presented token, or None if it is unknown."""
    with db.read() as conn:
        return keys.get_key_and_team_by_hash(conn, keygen.hash_key(token))


def session_key(db: Database, key_id: str) -> tuple[ApiKey, Team, str] | None:
    """A dashboard session's key by id, with its team and stored hash (re-checked each request)."""
    with db.read() as conn:
        return keys.get_key_team_and_hash(conn, key_id)
