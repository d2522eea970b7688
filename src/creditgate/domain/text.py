"""Text the ledger stores never holds a NUL character: PostgreSQL's text type cannot store one,
so it is refused as bad input on every database alike, before anything is read or written."""

from __future__ import annotations

from creditgate.domain.errors import InvalidInput

NUL = "\x00"


def refuse_nul(value: str | None, name: str, field: str | None = None) -> None:
    if value is not None and NUL in value:
        raise InvalidInput(f"{name} must not contain NUL characters", field=field or name)
