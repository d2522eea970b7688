"""API key rows. Only hashes are stored; lookups go by hash."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    update,
)

from creditgate.domain.teams import ApiKey, Team
from creditgate.storage.rows import key_from_row, metadata_text, team_from_row
from creditgate.storage.tables import api_keys, teams


def insert_key(conn: Connection, key: ApiKey, key_hash: str) -> None:
    conn.execute(
        insert(api_keys).values(
            id=key.id,
            team_id=key.team_id,
            name=key.name,
            key_hash=key_hash,
            hint=key.hint,
            cap=key.cap,
            created_ms=key.created_at,
            revoked_ms=key.revoked_at,
            expires_ms=key.expires_at,
            rpm=key.rpm,
            rotated_from=key.rotated_from,
            lineage_id=key.lineage,
            metadata_json=metadata_text(key.metadata),
        )
    )


_UNSET: Any = object()


def update_key(
    conn: Connection,
    key_id: str,
    *,
    name: str = _UNSET,
    expires_at: int | None = _UNSET,
    rpm: int | None = _UNSET,
    lineage: str = _UNSET,
    metadata: Mapping[str, Any] | None = _UNSET,
) -> None:
    """Set the given fields of a key (the others are left as they are)."""
    values: dict[str, Any] = {}
    if name is not _UNSET:
        values["name"] = name
    if expires_at is not _UNSET:
        values["expires_ms"] = expires_at
    if rpm is not _UNSET:
        values["rpm"] = rpm
    if lineage is not _UNSET:
        values["lineage_id"] = lineage
    if metadata is not _UNSET:
        values["metadata_json"] = metadata_text(metadata)
    if values:
        conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(**values))


def successor_of(conn: Connection, key_id: str) -> str | None:
    """The id of the key that replaced `key_id` in a rotation, if any."""
    query = select(api_keys.c.id).where(api_keys.c.rotated_from == key_id)
    return conn.execute(query).scalar_one_or_none()


TOUCH_BATCH = 500  # keys per UPDATE statement


def touch_keys(conn: Connection, uses: Mapping[str, int]) -> int:
    """Move each key's last use forward to the instant given (never back: a process holding an
    older instant changes nothing). One UPDATE per TOUCH_BATCH keys; the rows changed."""
    changed = 0
    items = sorted(uses.items())
    for start in range(0, len(items), TOUCH_BATCH):
        batch = dict(items[start : start + TOUCH_BATCH])
        latest = case(batch, value=api_keys.c.id)
        result = conn.execute(
            update(api_keys)
            .where(
                api_keys.c.id.in_(list(batch)),
                or_(api_keys.c.last_used_ms.is_(None), api_keys.c.last_used_ms < latest),
            )
            .values(last_used_ms=latest)
        )
        changed += result.rowcount
    return changed


@cache
def _key_by_id() -> Select[Any]:
    return select(api_keys).where(api_keys.c.id == bindparam("id"))


def get_key(conn: Connection, key_id: str) -> ApiKey | None:
    row = conn.execute(_key_by_id(), {"id": key_id}).first()
    return None if row is None else key_from_row(row)


_KEY_AND_TEAM = select(*api_keys.c, *(c.label(f"team__{c.name}") for c in teams.c)).join(
    teams, teams.c.id == api_keys.c.team_id
)


@cache
def _key_and_team_by_hash() -> Select[Any]:
    return _KEY_AND_TEAM.where(api_keys.c.key_hash == bindparam("hash"))


def get_key_and_team_by_hash(conn: Connection, key_hash: str) -> tuple[ApiKey, Team] | None:
    """The one query authentication makes: the key and its team by the key's hash."""
    row = conn.execute(_key_and_team_by_hash(), {"hash": key_hash}).first()
    if row is None:
        return None
    return key_from_row(row), team_from_row(row, prefix="team__")


def list_keys(
    conn: Connection,
    team_id: str,
    after: tuple[int, str] | None = None,
    limit: int | None = None,
) -> list[ApiKey]:
    """A team's keys by creation time, then id; `after`: the (created_ms, id) a page ended at."""
    query = (
        select(api_keys)
        .where(api_keys.c.team_id == team_id)
        .order_by(api_keys.c.created_ms, api_keys.c.id)
        .limit(limit)
    )
    if after is not None:
        created, key_id = after
        query = query.where(
            or_(
                api_keys.c.created_ms > created,
                and_(api_keys.c.created_ms == created, api_keys.c.id > key_id),
            )
        )
    return [key_from_row(r) for r in conn.execute(query)]


def count_keys(conn: Connection, team_id: str) -> int:
    query = select(func.count()).select_from(api_keys).where(api_keys.c.team_id == team_id)
    return int(conn.execute(query).scalar_one())


def name_taken(conn: Connection, team_id: str, name: str) -> bool:
    query = select(api_keys.c.id).where(api_keys.c.team_id == team_id, api_keys.c.name == name)
    return conn.execute(query).first() is not None


def key_names(conn: Connection, team_id: str) -> dict[str, str]:
    query = select(api_keys.c.id, api_keys.c.name).where(api_keys.c.team_id == team_id)
    return {row.id: row.name for row in conn.execute(query)}


def revoke_key(conn: Connection, key_id: str, at: int) -> None:
    conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_ms.is_(None))
        .values(revoked_ms=at)
    )


@cache
def _key_and_team_by_id() -> Select[Any]:
    return _KEY_AND_TEAM.where(api_keys.c.id == bindparam("id"))


def get_key_team_and_hash(conn: Connection, key_id: str) -> tuple[ApiKey, Team, str] | None:
    """A key by its id with its team and stored hash: a dashboard session names its key by id
    and checks the hash on every request."""
    row = conn.execute(_key_and_team_by_id(), {"id": key_id}).first()
    if row is None:
        return None
    return key_from_row(row), team_from_row(row, prefix="team__"), str(row.key_hash)
